package org.opensearch.mach.cluster;

import com.fasterxml.jackson.databind.JsonNode;

import org.opensearch.common.settings.Settings;
import org.opensearch.mach.TestPaths;
import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.MachModel;
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
    private static final String MODEL = "tiny";
    private static final String IDX = "bucketed";
    private static Path modelsDir;
    private static MachModel model;

    @Override
    protected Settings nodeSettings(int nodeOrdinal) {
        return Settings.builder().put(super.nodeSettings(nodeOrdinal)).put("mach.models.dir", modelsDir().toString()).build();
    }

    private static synchronized Path modelsDir() {
        if (modelsDir == null) {
            try {
                modelsDir = createTempDir().resolve("mach-models");
                Path target = modelsDir.resolve(MODEL);
                Files.createDirectories(target);
                try (DirectoryStream<Path> files = Files.newDirectoryStream(TestPaths.tinyFixture().resolve("bundle"))) {
                    for (Path f : files) Files.copy(f, target.resolve(f.getFileName().toString()));
                }
                model = BundleLoader.load(MODEL, TestPaths.tinyFixture().resolve("bundle"), false);
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        }
        return modelsDir;
    }

    private static String mapping(String family, String settings) {
        return "{\"settings\": {\"number_of_shards\": 3, \"number_of_replicas\": 1" + settings + "}, \"mappings\": {\"properties\": {"
            + "\"product_id\": {\"type\": \"keyword\", \"copy_to\": \"buckets\"}, \"title\": {\"type\": \"text\"},"
            + "\"buckets\": {\"type\": \"mach_buckets\", \"hash_family\": \"" + family + "\"}}}}";
    }

    private void indexProducts(String index, String family, String settings) throws IOException {
        if (indexExists(index)) return;
        rest("PUT", "/" + index, mapping(family, settings), 200);
        StringBuilder bulk = new StringBuilder();
        for (String[] p : tsv("products.tsv")) {
            bulk.append("{\"index\": {\"_id\": \"").append(p[0]).append("\"}}\n");
            bulk.append(JSON.writeValueAsString(Map.of("product_id", p[0], "title", p[1]))).append('\n');
        }
        org.opensearch.client.Request req = new org.opensearch.client.Request("POST", "/" + index + "/_bulk?refresh=true");
        req.setJsonEntity(bulk.toString());
        getRestClient().performRequest(req);
        ensureGreen(index);
    }

    private HashFamily family() {
        modelsDir();
        return model.card().hashFamily;
    }

    private void indexed() throws IOException {
        indexProducts(IDX, family().name(), ", \"index.mach.model\": \"" + MODEL + "\", \"index.mach.bucket_field\": \"buckets\"");
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
            Prediction p = MachInferenceService.predict(model, text, new Decoder.Options(300, Decoder.Strategy.CANDIDATES, m, f, mode));
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
        Prediction p = MachInferenceService.predict(model, text, new Decoder.Options(300, Decoder.Strategy.EXACT, 1, 1, Decoder.ScoreMode.MEAN));
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

    public void testNormalizeAndMinMax() throws IOException {
        indexed();
        String text = "black bamboo";
        Prediction p = MachInferenceService.predict(model, text, new Decoder.Options(300, Decoder.Strategy.EXACT, 1, 1, Decoder.ScoreMode.MEAN));
        Map<String, Float> exact = decoded(p);
        // normalize: divided by the table's bound, the same for every document
        Map<String, Float> raw = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"mach\": {\"query_text\": \"" + text + "\"}}}", 200));
        Map<String, Float> normalized = hits(rest("POST", "/" + IDX + "/_search", "{\"size\": 400, \"query\": {\"mach\": {\"query_text\": \"" + text
            + "\", \"normalize\": true}}}", 200));
        assertEquals(raw.keySet(), normalized.keySet());
        String any = raw.keySet().iterator().next();
        float bound = raw.get(any) / normalized.get(any);
        assertTrue("the bound is at least the best score", bound >= p.result().scores()[0] - 1e-6f);
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
    }

    public void testWrongFieldOrFamilyIsA400() throws IOException {
        indexed();
        String other = "murmur3_x86_32-r4-b64-s7";
        indexProducts("other-family", other, "");
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
