package org.opensearch.mach.inference;

import org.opensearch.mach.TestPaths;
import org.opensearch.mach.inference.Decoder.Options;
import org.opensearch.mach.inference.Decoder.ScoreMode;
import org.opensearch.mach.inference.Decoder.Strategy;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.MachModel;
import org.opensearch.test.OpenSearchTestCase;

import java.nio.file.Path;

public class PredictionCacheTests extends OpenSearchTestCase {
    private static final Options TOP10 = new Options(10, Strategy.AUTO, 10, 1, ScoreMode.MEAN);

    private static Path bundle() {
        return TestPaths.tinyFixture().resolve("bundle");
    }

    public void testSecondIdenticalQueryHitsAndGivesTheSameResult() throws Exception {
        PredictionCache cache = new PredictionCache(100);
        try (MachModel model = BundleLoader.load("tiny", bundle(), false)) {
            assertNull(cache.get(model, "amber trainers", TOP10));
            Prediction computed = MachInferenceService.predict(model, "amber trainers", TOP10);
            cache.put(model, "amber trainers", TOP10, computed);

            Prediction hit = cache.get(model, "amber trainers", TOP10);
            assertNotNull(hit);
            assertArrayEquals(computed.result().products(), hit.result().products());
            assertArrayEquals(computed.result().scores(), hit.result().scores(), 0f);
            assertEquals(computed.productId(0), hit.productId(0));
            // same tokens after NFKC + lower-casing: same model input, same entry
            assertNotNull(cache.get(model, "  AMBER, Trainers! ", TOP10));
            assertEquals(new PredictionCache.Stats(2, 1), cache.stats("tiny"));

            // other decoding parameters or another text: misses
            assertNull(cache.get(model, "amber trainers", new Options(20, Strategy.AUTO, 10, 1, ScoreMode.MEAN)));
            assertNull(cache.get(model, "amber trainers", new Options(10, Strategy.EXACT, 10, 1, ScoreMode.CALIBRATED)));
            assertNull(cache.get(model, "amber trainer", TOP10));
            assertEquals(new PredictionCache.Stats(2, 4), cache.stats("tiny"));
            assertEquals(1, cache.entries());
        }
    }

    public void testAnotherLoadOfTheModelMisses() throws Exception {
        PredictionCache cache = new PredictionCache(100);
        try (MachModel first = BundleLoader.load("tiny", bundle(), false); MachModel second = BundleLoader.load("tiny", bundle(), false)) {
            assertNotEquals(first.loadId(), second.loadId());
            cache.put(first, "vertex sweater", TOP10, MachInferenceService.predict(first, "vertex sweater", TOP10));
            assertNotNull(cache.get(first, "vertex sweater", TOP10));
            assertNull(cache.get(second, "vertex sweater", TOP10));
            assertEquals(new PredictionCache.Stats(1, 1), cache.stats("tiny"));
        }
    }

    public void testBoundedAndDisabled() throws Exception {
        PredictionCache small = new PredictionCache(3);
        PredictionCache off = new PredictionCache(0);
        assertFalse(off.enabled());
        try (MachModel model = BundleLoader.load("tiny", bundle(), false)) {
            Prediction p = MachInferenceService.predict(model, "amber trainers", TOP10);
            for (int i = 0; i < 20; i++) {
                small.put(model, "text " + i, TOP10, p);
                off.put(model, "text " + i, TOP10, p);
            }
            assertTrue("entries " + small.entries(), small.entries() <= 3);
            assertTrue(small.evictions() >= 17);
            assertNotNull(small.get(model, "text 19", TOP10)); // most recent kept
            assertNull(off.get(model, "text 19", TOP10));
            assertEquals(0, off.entries());
        }
        expectThrows(IllegalArgumentException.class, () -> new PredictionCache(-1));
    }
}
