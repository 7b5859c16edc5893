package org.opensearch.mach.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.mach.inference.Aggregation;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.test.OpenSearchIntegTestCase;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * Index-side MACH through HTTP on 2 nodes and 3 shards: the tiny bundle (R 4, B 64, a hash family),
 * its 300 products with a mach_buckets field filled by copy_to. With every bucket sent
 * (scored_buckets = B) the shards' candidates and scores equal the model's own candidate decoding,
 * every lexical hit of boost gets BM25 + w x its exact MACH score, and a wrong field or family is a 400.
 */
@OpenSearchIntegTestCase.ClusterScope(scope = OpenSearchIntegTestCase.Scope.SUITE, numDataNodes = 2, numClientNodes = 0, supportsDedicatedMasters = false)
public class MachBucketsQueryClusterTests extends MachClusterTestCase {
    private static final String IDX = "bucketed";

    @Override
    protected boolean servesTinyModel() {
        return true;
    }

    private static HashFamily family() {
        return tinyModel().card().hashFamily;
    }

    private void indexed() throws IOException {
        indexBucketedProducts(IDX, 3, family().name(), ", \"index.mach.model\": \"" + MODEL + "\", \"index.mach.bucket_field\": \"buckets\"");
    }

    private static Map<String, Float> hits(JsonNode response) {
        Map<String, Float> out = new HashMap<>();
        for (JsonNode h : response.path("hits").path("hits")) out.put(h.path("_id").asText(), (float) h.path("_score").asDouble());
        return out;
    }

    private static Map<String, Float> decoded(Prediction p) {
        Map<String, Float> out = new HashMap<>();
        for (int i = 0; i < p.size(); i++) out.put(p.productId(i), Math.max(0f, p.result().scores()[i]));
        return out;
    }

    public void testCandidatesAndScoresEqualTheModelsDecoding() throws IOException {
        indexed();
        int B = family().buckets(), R = family().repetitions();
        for (String text : new String[] { "crimson couch", "black bamboo wrench", "refrigerator" }) {
            int m = randomIntBetween(1, 6), f = randomIntBetween(1, 2);
            Decoder.ScoreMode mode = randomFrom(Decoder.ScoreMode.values());
            Prediction p = MachInferenceService.predict(tinyModel(), text, new Decoder.Options(300, Decoder.Strategy.CANDIDATES, m, f, mode));
            JsonNode r = rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"mach\": {\"query_text\": \"" + text + "\", \"scored_buckets\": " + B
                + ", \"buckets_per_repetition\": " + m + ", \"min_repetitions\": " + f + ", \"score\": \"" + mode.value() + "\"}}}", 200);
            Map<String, Float> expected = decoded(p), got = hits(r);
            assertEquals(text + " m " + m + " f " + f, expected.keySet(), got.keySet());
            for (var e : expected.entrySet()) assertEquals(e.getKey(), e.getValue(), got.get(e.getKey()), 1e-6f);
        }
        // explain names the buckets of each repetition
        JsonNode ex = rest("POST", "/" + IDX + "/_search", "{\"size\": 1, \"explain\": true, \"query\": {\"mach\": {\"query_text\": \"refrigerator\"}}}", 200);
        String explanation = ex.path("hits").path("hits").get(0).path("_explanation").toString();
        assertTrue(explanation, explanation.contains("repetition " + (R - 1) + ", bucket "));
    }

    public void testBoostScoresEveryLexicalHit() throws IOException {
        indexed();
        String text = "black bamboo";
        int B = family().buckets();
        Prediction p = MachInferenceService.predict(tinyModel(), text, new Decoder.Options(300, Decoder.Strategy.EXACT, 1, 1, Decoder.ScoreMode.MEAN));
        Map<String, Float> exact = decoded(p);
        Map<String, Float> bm25 = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"match\": {\"title\": \"" + text + "\"}}}", 200));
        assertTrue(bm25.size() > 10);
        float w = 3f;
        Map<String, Float> fused = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"mach\": {\"query_text\": \"" + text
            + "\", \"scored_buckets\": " + B + ", \"lexical\": {\"match\": {\"title\": \"" + text + "\"}}, \"combine\": \"boost\", \"mach_weight\": " + w + "}}}", 200));
        assertEquals(bm25.keySet(), fused.keySet());
        for (var e : bm25.entrySet()) assertEquals(e.getKey(), e.getValue() + w * exact.get(e.getKey()), fused.get(e.getKey()), 1e-4f);
        // a text the network cannot read: no MACH side (nothing alone, the lexical hits in boost)
        assertEquals(0, hits(rest("POST", "/" + IDX + "/_search", "{\"query\": {\"mach\": {\"query_text\": \"!!!\"}}}", 200)).size());
        Map<String, Float> unread = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"mach\": {\"query_text\": \"!!!\", "
            + "\"lexical\": {\"match\": {\"title\": \"" + text + "\"}}}}}", 200));
        assertEquals(bm25, unread);
        // hybrid: MACH's candidates join, all scored the same way
        Map<String, Float> hybrid = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"mach\": {\"query_text\": \"" + text
            + "\", \"scored_buckets\": " + B + ", \"lexical\": {\"match\": {\"title\": \"" + text + "\"}}, \"combine\": \"hybrid\", \"mach_weight\": " + w + "}}}", 200));
        assertTrue(hybrid.keySet().containsAll(bm25.keySet()));
        assertTrue("MACH candidates join", hybrid.size() > bm25.size());
        for (var e : hybrid.entrySet()) assertEquals(e.getKey(), bm25.getOrDefault(e.getKey(), 0f) + w * exact.get(e.getKey()), e.getValue(), 1e-4f);
    }

    public void testNormalizeAndMinMax() throws Exception {
        indexed();
        String text = "black bamboo";
        Prediction p = MachInferenceService.predict(tinyModel(), text, new Decoder.Options(300, Decoder.Strategy.EXACT, 1, 1, Decoder.ScoreMode.MEAN));
        Map<String, Float> exact = decoded(p);
        // normalize: divided by the table's bound, the same for every document
        Map<String, Float> raw = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"mach\": {\"query_text\": \"" + text + "\"}}}", 200));
        Map<String, Float> normalized = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"mach\": {\"query_text\": \"" + text
            + "\", \"normalize\": true}}}", 200));
        assertEquals(raw.keySet(), normalized.keySet());
        String any = raw.keySet().iterator().next();
        float bound = raw.get(any) / normalized.get(any);
        assertTrue("the bound is at least the best score", bound >= p.result().scores()[0] - 1e-6f);
        // the bound is the table's (plugin/README.md): mean over r of max_b p_r(b), here from the model's own output
        float[][] probs = org.opensearch.mach.inference.MachInference.probabilities(tinyModel(), text);
        double maxMean = 0;
        for (float[] row : probs) {
            float max = 0;
            for (float v : row) max = Math.max(max, v);
            maxMean += (double) max / probs.length;
        }
        assertEquals("normalize divides by mean_r max_b p_r(b)", maxMean, bound, 1e-5 * maxMean);
        for (var e : raw.entrySet()) {
            assertEquals(e.getKey(), e.getValue() / bound, normalized.get(e.getKey()), 1e-5f);
            assertTrue(normalized.get(e.getKey()) <= 1f);
        }
        // min_max hybrid: each side on [0, 1], weighted; the best MACH candidate gets the whole MACH share
        float w = 0.4f;
        Map<String, Float> mm = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"mach\": {\"query_text\": \"" + text
            + "\", \"lexical\": {\"match\": {\"title\": \"" + text + "\"}}, \"combine\": \"hybrid\", \"normalization\": \"min_max\", "
            + "\"mach_weight\": " + w + "}}}", 200));
        String best = p.productId(0);
        assertTrue(mm.toString(), mm.get(best) >= w - 1e-5f);
        for (var e : mm.entrySet()) assertTrue(e.toString(), e.getValue() >= 0f && e.getValue() <= 1f + 1e-5f);
        assertTrue(exact.size() >= mm.size());
        // every hit by the formula (plugin/README.md): (1 - w) mm_lex(BM25) + w mm_mach(MACH), each side's range the min and
        // max of its own top lexical_window (= top_n) hits: BM25 alone, and MACH alone (its candidates)
        Map<String, Float> bm25 = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"match\": {\"title\": \"" + text + "\"}}}", 200));
        Map<String, Float> alone = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"mach\": {\"query_text\": \"" + text + "\"}}}", 200));
        int window = org.opensearch.mach.query.MachOptions.DEFAULT_TOP_N;
        float[] lexRange = topRange(bm25, window), machRange = topRange(alone, window);
        assertTrue("both ranges have a spread", lexRange[1] > lexRange[0] && machRange[1] > machRange[0]);
        java.util.Set<String> union = new java.util.HashSet<>(bm25.keySet());
        union.addAll(alone.keySet());
        assertEquals("hybrid = BM25 matches + MACH candidates", union, mm.keySet());
        for (String id : union) {
            float lex = bm25.containsKey(id) ? (1 - w) * minMax(bm25.get(id), lexRange) : 0f;
            assertEquals(id, lex + w * minMax(exact.get(id), machRange), mm.get(id), 1e-4f);
        }
    }

    /** {min, max} of the {@code window} highest scores. */
    private static float[] topRange(Map<String, Float> scores, int window) {
        float[] top = scores.values().stream().sorted(java.util.Comparator.reverseOrder()).limit(window)
            .collect(java.util.stream.Collectors.collectingAndThen(java.util.stream.Collectors.toList(), l -> {
                float[] a = new float[l.size()];
                for (int i = 0; i < a.length; i++) a[i] = l.get(i);
                return a;
            }));
        return new float[] { top[top.length - 1], top[0] };
    }

    /** max(0, (s - min) / (max - min)). */
    private static float minMax(float s, float[] range) {
        return Math.max(0f, (s - range[0]) / (range[1] - range[0]));
    }

    /** The tiny bundle with {@code "aggregation": "log_mean"} in its card (mach.json is not among the checksummed files). */
    private static final String LOG_MODEL = "tiny-log-mean";

    @Override
    protected void addModels(Path tiny) throws IOException {
        Path copy = tiny.resolveSibling(LOG_MODEL);
        Files.createDirectories(copy);
        try (DirectoryStream<Path> files = Files.newDirectoryStream(tiny)) {
            for (Path f : files) Files.copy(f, copy.resolve(f.getFileName().toString()));
        }
        ObjectNode card = (ObjectNode) JSON.readTree(Files.readString(copy.resolve("mach.json")));
        card.put("aggregation", "log_mean");
        Files.writeString(copy.resolve("mach.json"), JSON.writeValueAsString(card));
    }

    /** The tiny model's log-mean decoding of a text, id -> score. */
    private static Map<String, Float> logMean(String text, Decoder.Options options) {
        float[][] probs = MachInferenceService.predict(tinyModel(), text, options).probabilities();
        Decoder.Result r = Decoder.decode(tinyModel().index(), probs, options, Aggregation.LOG_MEAN);
        return decoded(new Prediction(tinyModel(), probs, r, 0, 0));
    }

    /**
     * A log_mean model: index-side candidates and fusion (every bucket sent), the top_n product_id_field path and
     * _predict all give the reference log-mean decoding of the same network output; calibrated is a 400.
     */
    public void testLogMeanModel() throws IOException {
        indexed();
        int B = family().buckets();
        String text = "black bamboo";
        int m = randomIntBetween(1, 6), f = randomIntBetween(1, 2);
        Map<String, Float> candidates = logMean(text, new Decoder.Options(300, Decoder.Strategy.CANDIDATES, m, f, Decoder.ScoreMode.MEAN));
        Map<String, Float> got = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"mach\": {\"model_id\": \"" + LOG_MODEL
            + "\", \"query_text\": \"" + text + "\", \"scored_buckets\": " + B + ", \"buckets_per_repetition\": " + m + ", \"min_repetitions\": " + f + "}}}", 200));
        assertEquals(candidates.keySet(), got.keySet());
        for (var e : candidates.entrySet()) assertEquals(e.getKey(), e.getValue(), got.get(e.getKey()), 1e-5f);

        Map<String, Float> exact = logMean(text, new Decoder.Options(300, Decoder.Strategy.EXACT, 1, 1, Decoder.ScoreMode.MEAN));
        Map<String, Float> mean = decoded(MachInferenceService.predict(tinyModel(), text, new Decoder.Options(300, Decoder.Strategy.EXACT, 1, 1, Decoder.ScoreMode.MEAN)));
        assertNotEquals("log-mean scores are not probabilities", mean, exact);
        Map<String, Float> bm25 = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"match\": {\"title\": \"" + text + "\"}}}", 200));
        float w = 2f;
        Map<String, Float> fused = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"mach\": {\"model_id\": \"" + LOG_MODEL
            + "\", \"query_text\": \"" + text + "\", \"scored_buckets\": " + B + ", \"lexical\": {\"match\": {\"title\": \"" + text
            + "\"}}, \"combine\": \"boost\", \"mach_weight\": " + w + "}}}", 200));
        assertEquals(bm25.keySet(), fused.keySet());
        for (var e : bm25.entrySet()) assertEquals(e.getKey(), e.getValue() + w * exact.get(e.getKey()), fused.get(e.getKey()), 1e-4f);

        // the catalog path (product_id_field, top_n): the coordinator decodes with the model's aggregation
        Map<String, Float> topN = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"mach\": {\"model_id\": \"" + LOG_MODEL
            + "\", \"query_text\": \"" + text + "\", \"product_id_field\": \"product_id\", \"top_n\": 20, \"decoding\": \"exact\"}}}", 200));
        assertEquals(20, topN.size());
        for (var e : topN.entrySet()) assertEquals(e.getKey(), exact.get(e.getKey()), e.getValue(), 1e-6f);
        JsonNode predicted = rest("POST", "/_plugins/_mach/models/" + LOG_MODEL + "/_predict", "{\"query_text\": \"" + text + "\", \"top_n\": 5}", 200);
        assertEquals("log_mean", predicted.path("aggregation").asText());
        for (JsonNode product : predicted.path("products")) {
            String id = product.path("product_id").asText();
            assertEquals(id, exact.get(id), (float) product.path("score").asDouble(), 1e-6f);
        }

        for (String field : new String[] { "\"bucket_field\": \"buckets\"", "\"product_id_field\": \"product_id\"" }) {
            JsonNode e = rest("POST", "/" + IDX + "/_search", "{\"query\": {\"mach\": {\"model_id\": \"" + LOG_MODEL + "\", \"query_text\": \"sofa\", "
                + field + ", \"score\": \"calibrated\"}}}", 400);
            assertTrue(e.toString(), e.toString().contains("[score] [calibrated]"));
        }
    }

    public void testWrongFieldOrFamilyIsA400() throws IOException {
        indexed();
        String other = "murmur3_x86_32-r4-b64-s7";
        indexBucketedProducts("other-family", 3, other, "");
        JsonNode e = rest("POST", "/other-family/_search", "{\"query\": {\"mach\": {\"model_id\": \"tiny\", \"query_text\": \"sofa\", \"bucket_field\": \"buckets\"}}}", 400);
        assertTrue(e.toString(), e.toString().contains("hash family [" + other + "]") && e.toString().contains("[" + family().name() + "]"));
        e = rest("POST", "/" + IDX + "/_search", "{\"query\": {\"mach\": {\"query_text\": \"sofa\", \"bucket_field\": \"title\"}}}", 400);
        assertTrue(e.toString(), e.toString().contains("[field] [title] is of type [text]"));
        e = rest("POST", "/" + IDX + "/_search", "{\"query\": {\"mach\": {\"query_text\": \"sofa\", \"bucket_field\": \"buckets\", \"product_id_field\": \"product_id\"}}}", 400);
        assertTrue(e.toString(), e.toString().contains("not both"));
        e = rest("POST", "/other-family/_search", "{\"query\": {\"mach\": {\"model_id\": \"tiny\", \"query_text\": \"sofa\"}}}", 400);
        assertTrue(e.toString(), e.toString().contains("[product_id_field] or [bucket_field]"));
    }
}
