package org.opensearch.mach.model;

import org.opensearch.mach.TestPaths;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.test.OpenSearchTestCase;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Bundles whose output heads mach_tools rewrote after training load in the unchanged plugin: ONNX Runtime
 * runs their graphs, reproduces the parity file the NumPy evaluator wrote (checked at load), and their
 * rankings stay close to the float model's.
 * <ul>
 * <li>fixtures/tiny-int8: int8 heads, made by
 * {@code python3 -m mach_tools quantize plugin/src/test/resources/fixtures/tiny/bundle --out plugin/src/test/resources/fixtures/tiny-int8/bundle --name tiny-synth-r4-b64-int8}</li>
 * <li>fixtures/tiny-low-rank-int8: low-rank int8 heads of the hashed network (MatMul [32, 31] after the
 * hidden ReLU, then [31, R*B], both int8), made in model-tools/ by
 * {@code python3 -m mach_tools compress ../plugin/src/test/resources/fixtures/tiny/bundle --rank 31 --pairs ../plugin/src/test/resources/fixtures/tiny/queries.tsv --out /tmp/tiny-lr31}
 * then {@code python3 -m mach_tools quantize /tmp/tiny-lr31 --out ../plugin/src/test/resources/fixtures/tiny-low-rank-int8/bundle --name tiny-synth-r4-b64-lr31-int8}.
 * Rank 31 of 32: this tiny model's softmaxes are so peaked that a lower rank reorders its top products.</li>
 * </ul>
 */
public class QuantizedBundleTests extends OpenSearchTestCase {

    public void testInt8HeadsLoadAndRankLikeTheFloatModel() throws Exception {
        try (MachModel int8 = BundleLoader.load("int8", sibling("tiny-int8"), false)) {
            assertEquals("int8", int8.card().raw.path("heads").path("dtype").asText());
            // 7-bit weights (no int16 saturation on AVX2 CPUs) on this tiny H=32 model: up to ~0.02 apart
            assertRanksLikeTheFloatModel(int8, 0.9, 0.9, 0.03f);
        }
    }

    public void testLowRankInt8HeadsOfAHashedNetworkLoadAndRankLikeTheFloatModel() throws Exception {
        try (MachModel low = BundleLoader.load("low-rank-int8", sibling("tiny-low-rank-int8"), false)) {
            assertEquals(1, low.card().raw.path("format_version").asInt());
            assertEquals("int8", low.card().raw.path("heads").path("dtype").asText());
            assertEquals(31, low.card().raw.path("low_rank").path("rank").asInt());
            // offline (NumPy evaluator, the same 100 queries): top-10 overlap 0.89, same top 0.90, top score within 0.053
            assertRanksLikeTheFloatModel(low, 0.85, 0.85, 0.08f);
        }
    }

    private static Path sibling(String fixture) {
        return TestPaths.tinyFixture().resolveSibling(fixture).resolve("bundle");
    }

    /** Exact top 10 of the first 100 fixture queries against the float model's. */
    private static void assertRanksLikeTheFloatModel(MachModel model, double minOverlap, double minSameTop1, float scoreDelta)
        throws Exception {
        try (MachModel f32 = BundleLoader.load("f32", TestPaths.tinyFixture().resolve("bundle"), false)) {
            Decoder.Options top10 = new Decoder.Options(10, Decoder.Strategy.EXACT, 10, 1, Decoder.ScoreMode.MEAN);
            List<String> lines = Files.readAllLines(TestPaths.tinyFixture().resolve("queries.tsv"));
            int sameTop1 = 0, queries = 0;
            double overlap = 0;
            for (String line : lines.subList(1, Math.min(lines.size(), 101))) {
                String text = line.split("\t")[0];
                Prediction a = MachInferenceService.predict(f32, text, top10);
                Prediction b = MachInferenceService.predict(model, text, top10);
                Set<String> ta = new HashSet<>(), tb = new HashSet<>();
                for (int i = 0; i < a.size(); i++) ta.add(a.productId(i));
                for (int i = 0; i < b.size(); i++) tb.add(b.productId(i));
                tb.retainAll(ta);
                overlap += tb.size() / 10.0;
                if (a.productId(0).equals(b.productId(0))) sameTop1++;
                queries++;
                assertEquals("top score of [" + text + "]", a.result().scores()[0], b.result().scores()[0], scoreDelta);
            }
            assertTrue("top-10 overlap " + overlap / queries, overlap / queries >= minOverlap);
            assertTrue("same top product in " + sameTop1 + " of " + queries, sameTop1 >= minSameTop1 * queries);
        }
    }
}
