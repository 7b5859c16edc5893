package org.opensearch.mach.model;

import org.opensearch.mach.TestPaths;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.test.OpenSearchTestCase;

import java.nio.file.Files;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A bundle with int8 output heads (fixtures/tiny-int8, made by
 * {@code python3 -m mach_tools quantize plugin/src/test/resources/fixtures/tiny/bundle --out plugin/src/test/resources/fixtures/tiny-int8/bundle --name tiny-synth-r4-b64-int8})
 * loads in the unchanged plugin: ONNX Runtime runs DynamicQuantizeLinear + MatMulInteger and
 * reproduces the parity file the NumPy evaluator wrote; its rankings stay close to the float model's.
 */
public class QuantizedBundleTests extends OpenSearchTestCase {

    public void testInt8HeadsLoadAndRankLikeTheFloatModel() throws Exception {
        try (
            MachModel f32 = BundleLoader.load("f32", TestPaths.tinyFixture().resolve("bundle"), false);
            MachModel int8 = BundleLoader.load("int8", TestPaths.tinyFixture().resolveSibling("tiny-int8").resolve("bundle"), false)
        ) {
            assertEquals("int8", int8.card().raw.path("heads").path("dtype").asText());
            Decoder.Options top10 = new Decoder.Options(10, Decoder.Strategy.EXACT, 10, 1, Decoder.ScoreMode.MEAN);
            List<String> lines = Files.readAllLines(TestPaths.tinyFixture().resolve("queries.tsv"));
            int sameTop1 = 0, queries = 0;
            double overlap = 0;
            for (String line : lines.subList(1, Math.min(lines.size(), 101))) {
                String text = line.split("\t")[0];
                Prediction a = MachInferenceService.predict(f32, text, top10);
                Prediction b = MachInferenceService.predict(int8, text, top10);
                Set<String> ta = new HashSet<>(), tb = new HashSet<>();
                for (int i = 0; i < a.size(); i++) ta.add(a.productId(i));
                for (int i = 0; i < b.size(); i++) tb.add(b.productId(i));
                tb.retainAll(ta);
                overlap += tb.size() / 10.0;
                if (a.productId(0).equals(b.productId(0))) sameTop1++;
                queries++;
                // 7-bit weights (no int16 saturation on AVX2 CPUs) on this tiny H=32 model: up to ~0.02 apart
                assertEquals("top score of [" + text + "]", a.result().scores()[0], b.result().scores()[0], 0.03f);
            }
            assertTrue("top-10 overlap " + overlap / queries, overlap / queries >= 0.9);
            assertTrue("same top product in " + sameTop1 + " of " + queries, sameTop1 >= 0.9 * queries);
        }
    }
}
