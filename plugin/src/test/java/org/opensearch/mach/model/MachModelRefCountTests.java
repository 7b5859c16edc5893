package org.opensearch.mach.model;

import org.opensearch.mach.TestPaths;
import org.opensearch.mach.inference.MachInference;
import org.opensearch.mach.inference.ModelRetiredException;
import org.opensearch.test.OpenSearchTestCase;

/** The ONNX Runtime session lives until the owner and every running query are done with it, then closes (no leak, no use after free). */
public class MachModelRefCountTests extends OpenSearchTestCase {

    public void testSessionClosesWhenTheLastUserIsDone() throws Exception {
        MachModel model = BundleLoader.load("tiny", TestPaths.tinyFixture().resolve("bundle"), false);
        float[][] before = MachInference.probabilities(model, "crimson couch");

        assertTrue("a running query takes a reference", model.tryIncRef());
        model.close(); // the owner (a deployment being undeployed) lets go
        assertEquals(1, model.refCount());
        assertArrayEquals("the query still runs on the open session", before[0], MachInference.probabilities(model, "crimson couch")[0], 0f);

        model.decRef(); // the query is done: now the session closes
        assertEquals(0, model.refCount());
        assertFalse(model.tryIncRef());
        expectThrows(ModelRetiredException.class, () -> MachInference.probabilities(model, "crimson couch"));
        IllegalStateException closed = expectThrows(
            IllegalStateException.class,
            () -> model.network().run(java.util.List.of(model.network().encode("crimson couch")))
        );
        assertTrue(closed.getMessage(), closed.getMessage().toLowerCase(java.util.Locale.ROOT).contains("closed"));
    }
}
