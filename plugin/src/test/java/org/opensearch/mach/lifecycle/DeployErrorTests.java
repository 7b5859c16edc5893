package org.opensearch.mach.lifecycle;

import ai.onnxruntime.OrtException;

import org.opensearch.OpenSearchStatusException;
import org.opensearch.common.util.concurrent.UncategorizedExecutionException;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.mach.model.MachBundleException;
import org.opensearch.test.OpenSearchTestCase;
import org.opensearch.transport.RemoteTransportException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/** The error a failed deploy shows in the models API: the reason, never a wrapper's text. */
public class DeployErrorTests extends OpenSearchTestCase {

    public void testWrappersAreUnwrappedToTheCause() {
        OrtException ort = new OrtException(OrtException.OrtErrorCode.ORT_INVALID_GRAPH, "Load model from memory failed: invalid graph");
        String ortReason = ort.getMessage();
        assertEquals(ortReason, ModelDeployer.reason(ort));
        assertEquals(ortReason, ModelDeployer.reason(new ExecutionException(ort)));
        assertEquals(ortReason, ModelDeployer.reason(new RuntimeException(ort))); // a message that is just the cause's text
        assertEquals(ortReason, ModelDeployer.reason(new CompletionException(new ExecutionException(ort))));
        assertEquals(ortReason, ModelDeployer.reason(new UncategorizedExecutionException("Failed execution", new ExecutionException(ort))));
        assertEquals("No space left on device", ModelDeployer.reason(new UncheckedIOException(new IOException("No space left on device"))));
        OpenSearchStatusException incomplete = new OpenSearchStatusException("the bundle is incomplete: chunk [2] of 3 is missing", RestStatus.BAD_REQUEST);
        assertEquals(incomplete.getMessage(), ModelDeployer.reason(new RemoteTransportException("[node-1][transport]", incomplete)));
    }

    public void testMeaningfulMessagesAreKept() {
        // a bundle error says what is wrong with the bundle, whatever it wraps
        MachBundleException bundle = new MachBundleException("model.onnx does not match the card's sha256", new IOException("x"));
        assertEquals(bundle.getMessage(), ModelDeployer.reason(new ExecutionException(bundle)));
        assertEquals(bundle.getMessage(), ModelDeployer.reason(bundle));
        // an exception that adds its own words to a cause keeps them
        IllegalStateException own = new IllegalStateException("memory limit reached for model [m]", new IOException("inner"));
        assertEquals(own.getMessage(), ModelDeployer.reason(own));
        // no message anywhere: the exception's class, never null
        assertEquals("java.lang.IllegalStateException", ModelDeployer.reason(new ExecutionException(new IllegalStateException())));
    }
}
