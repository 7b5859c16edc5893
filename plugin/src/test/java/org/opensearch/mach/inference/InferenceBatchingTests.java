package org.opensearch.mach.inference;

import org.opensearch.action.support.PlainActionFuture;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.unit.TimeValue;
import org.opensearch.mach.TestPaths;
import org.opensearch.mach.model.MachModel;
import org.opensearch.mach.model.ModelRegistry;
import org.opensearch.test.OpenSearchTestCase;
import org.opensearch.threadpool.FixedExecutorBuilder;
import org.opensearch.threadpool.TestThreadPool;
import org.opensearch.threadpool.ThreadPool;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Batched inference gives each query exactly what it gets alone, through the service's dynamic batching too. */
public class InferenceBatchingTests extends OpenSearchTestCase {
    private static final Decoder.Options TOP10 = new Decoder.Options(10, Decoder.Strategy.AUTO, 10, 1, Decoder.ScoreMode.MEAN);

    private static List<String> texts() throws Exception {
        List<String> out = new ArrayList<>();
        for (String line : Files.readAllLines(TestPaths.tinyFixture().resolve("queries.tsv")).subList(1, 41)) out.add(line.split("\t")[0]);
        out.add("!!!"); // no features: no products, in the middle of a batch
        out.add("crimson couch");
        return out;
    }

    private static void assertSame(Prediction alone, Prediction batched) {
        assertEquals(alone.size(), batched.size());
        for (int i = 0; i < alone.size(); i++) {
            assertEquals(alone.result().scores()[i], batched.result().scores()[i], 1e-6f);
        }
        // ids equal up to ties within float noise
        for (int i = 0; i < alone.size(); i++) {
            if (i + 1 < alone.size() && Math.abs(alone.result().scores()[i] - alone.result().scores()[i + 1]) < 1e-6f) continue;
            if (i > 0 && Math.abs(alone.result().scores()[i] - alone.result().scores()[i - 1]) < 1e-6f) continue;
            assertEquals("rank " + i, alone.productId(i), batched.productId(i));
        }
    }

    public void testABatchEqualsEachQueryAlone() throws Exception {
        Path bundle = TestPaths.tinyFixture().resolve("bundle");
        try (MachModel model = org.opensearch.mach.model.BundleLoader.load("tiny", bundle, false)) {
            List<String> texts = texts();
            List<Decoder.Options> options = new ArrayList<>();
            for (int i = 0; i < texts.size(); i++) options.add(i % 2 == 0 ? TOP10 : new Decoder.Options(5, Decoder.Strategy.EXACT, 10, 1, Decoder.ScoreMode.CALIBRATED));
            List<Prediction> batched = MachInferenceService.predict(model, texts, options);
            for (int i = 0; i < texts.size(); i++) {
                assertSame(MachInferenceService.predict(model, texts.get(i), options.get(i)), batched.get(i));
            }
            assertEquals("a text without features gets no products", 0, batched.get(texts.size() - 2).size());
        }
    }

    public void testConcurrentQueriesThroughTheBatchingService() throws Exception {
        Path models = createTempDir();
        Path dir = models.resolve("tiny");
        Files.createDirectories(dir);
        for (Path f : (Iterable<Path>) Files.list(TestPaths.tinyFixture().resolve("bundle"))::iterator) {
            Files.copy(f, dir.resolve(f.getFileName().toString()));
        }
        ThreadPool pool = new TestThreadPool("batching", new FixedExecutorBuilder(Settings.EMPTY, MachInferenceService.THREAD_POOL, 2, 1000, "mach"));
        ModelRegistry registry = new ModelRegistry(models, false);
        try {
            int batchSize = randomIntBetween(2, 8);
            MachInferenceService service = new MachInferenceService(registry, pool, new PredictionCache(0), 2, batchSize);
            List<String> texts = texts();
            List<PlainActionFuture<Prediction>> futures = new ArrayList<>();
            for (int round = 0; round < 5; round++) {
                for (String t : texts) {
                    PlainActionFuture<Prediction> f = PlainActionFuture.newFuture();
                    service.predict("tiny", t, TOP10, f);
                    futures.add(f);
                }
            }
            MachModel model = registry.get("tiny");
            for (int i = 0; i < futures.size(); i++) {
                String t = texts.get(i % texts.size());
                assertSame(MachInferenceService.predict(model, t, TOP10), futures.get(i).actionGet(TimeValue.timeValueSeconds(30)));
            }
            int largest = service.largestBatch(model);
            assertTrue("210 queries on 2 workers queue up and run in batches: largest " + largest, largest > 1 && largest <= batchSize);
        } finally {
            registry.close();
            terminate(pool);
        }
    }
}
