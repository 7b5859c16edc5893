package org.opensearch.mach.it;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.BeforeClass;
import org.junit.FixMethodOrder;
import org.junit.Test;
import org.junit.runners.MethodSorters;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;

/**
 * Index-side MACH (bucket_field) on the real node: products indexed with a mach_buckets field of the
 * deployed model's hash family score what the model gives them, a product the model never saw scores
 * from its buckets at once, updates re-hash, deletes vanish, bad families are 400s, and the node never
 * reads the model's catalog for these queries.
 * The expected scores come from _predict of a second copy of the bundle (so that the first one's catalog
 * stays unread) and, for untrained products, from its full per-repetition probabilities and this class's
 * own murmur3 (spec/bundle-format.md, "Hash families").
 */
@FixMethodOrder(MethodSorters.NAME_ASCENDING)
public class MachBucketsRestIT {
    static final String MODEL = "it-buckets";
    static final String REFERENCE = "it-buckets-ref"; // the same bundle, for _predict
    static final String INDEX = "mach-it-bucketed";
    static final String TEXT = "black bamboo";
    static final double EPS = 1e-6;

    static Rest rest;
    static List<String[]> products;
    static String family;
    static int R, B;

    @BeforeClass
    public static void setUp() throws Exception {
        Path nodeDir = Paths.get(MachRestIT.requiredProperty("mach.it.node.dir"));
        Path fixture = Paths.get(MachRestIT.requiredProperty("mach.it.fixture.dir"));
        rest = new Rest("http://127.0.0.1:" + java.nio.file.Files.readString(nodeDir.resolve("http.port")).trim());
        assertEquals(200, rest.get("/_cluster/health?wait_for_status=yellow&timeout=60s").status());
        MachRestIT.copyBundle(fixture.resolve("bundle"), nodeDir.resolve("models").resolve(MODEL));
        MachRestIT.copyBundle(fixture.resolve("bundle"), nodeDir.resolve("models").resolve(REFERENCE));
        products = MachRestIT.readTsv(fixture.resolve("products.tsv"));

        // The field's family, as the model states it: its card's product hash (family, or seeds + buckets).
        Rest.Response m = rest.get("/_plugins/_mach/models/" + MODEL);
        assertEquals(m.toString(), 200, m.status());
        JsonNode hash = m.json().findValue("product_hash");
        assertNotNull(m.body(), hash);
        R = hash.path("seeds").size();
        B = hash.path("buckets").asInt();
        family = hash.hasNonNull("family") ? hash.path("family").asText()
            : "murmur3_x86_32-r" + R + "-b" + B + "-s" + hash.path("seeds").get(0).asLong();

        rest.delete("/" + INDEX);
        Rest.Response created = rest.put("/" + INDEX, mapping(family, "\"index.mach.model\": \"" + MODEL + "\", \"index.mach.bucket_field\": \"buckets\""));
        assertEquals(created.toString(), 200, created.status());
        MachRestIT.bulkProducts(rest, INDEX, products);
    }

    static String mapping(String hashFamily, String settings) {
        return "{\"settings\": {\"number_of_shards\": 2, \"number_of_replicas\": 0" + (settings.isEmpty() ? "" : ", " + settings) + "},"
            + " \"mappings\": {\"properties\": {\"product_id\": {\"type\": \"keyword\", \"copy_to\": \"buckets\"}, \"title\": {\"type\": \"text\"},"
            + " \"buckets\": {\"type\": \"mach_buckets\", \"hash_family\": \"" + hashFamily + "\"}}}}";
    }

    // ---------------------------------------------------------------- scores

    @Test
    public void a1_machAloneScoresEveryProductAsPredictDoes() throws IOException {
        // every bucket sent exactly and taken as a candidate bucket: every document is a hit, scored its product's mean
        Map<String, Double> hits = search(mach(TEXT, ", \"scored_buckets\": " + B + ", \"buckets_per_repetition\": " + B));
        Map<String, Double> predicted = predictMeans(TEXT);
        assertEquals(products.size(), hits.size());
        assertEquals(predicted.keySet(), hits.keySet());
        for (var e : predicted.entrySet()) assertEquals(e.getKey(), e.getValue(), hits.get(e.getKey()), EPS);
        // the default candidates (top buckets only) are a subset, scored the same
        Map<String, Double> defaults = search(mach(TEXT, ""));
        assertFalse(defaults.isEmpty());
        assertTrue(defaults.size() < products.size());
        for (var e : defaults.entrySet()) assertEquals(e.getKey(), predicted.get(e.getKey()), e.getValue(), EPS);
    }

    @Test
    public void a2_boostAndHybridAddTheMachScoreToBm25() throws IOException {
        Map<String, Double> predicted = predictMeans(TEXT);
        Map<String, Double> bm25 = search("{\"match\": {\"title\": \"" + TEXT + "\"}}");
        assertTrue(bm25.size() > 10);
        double w = 3;
        String lexical = ", \"lexical\": {\"match\": {\"title\": \"" + TEXT + "\"}}, \"mach_weight\": " + w;
        Map<String, Double> boost = search(mach(TEXT, lexical + ", \"combine\": \"boost\""));
        assertEquals(bm25.keySet(), boost.keySet());
        for (var e : bm25.entrySet()) assertEquals(e.getKey(), e.getValue() + w * predicted.get(e.getKey()), boost.get(e.getKey()), 1e-4);
        Map<String, Double> hybrid = search(mach(TEXT, lexical + ", \"combine\": \"hybrid\""));
        Map<String, Double> alone = search(mach(TEXT, ""));
        assertEquals("hybrid = BM25 matches + MACH candidates", union(bm25, alone), hybrid.keySet());
        for (var e : hybrid.entrySet()) {
            assertEquals(e.getKey(), bm25.getOrDefault(e.getKey(), 0.0) + w * predicted.get(e.getKey()), e.getValue(), 1e-4);
        }
    }

    // ---------------------------------------------------------------- the index changes, the model does not

    @Test
    public void b1_aProductTheModelNeverSawIsScoredFromItsBuckets() throws IOException {
        String fresh = "NEW-PRODUCT-1";
        Map<String, Double> predicted = predictMeans(TEXT);
        assertFalse(predicted.containsKey(fresh));
        put("new", fresh, "Acme Black Bamboo Lamp");
        float[][] probs = probabilities(TEXT);
        double expected = 0;
        for (int r = 0; r < R; r++) expected += probs[r][bucket(fresh, r)];
        expected /= R;
        Map<String, Double> all = search(mach(TEXT, ", \"scored_buckets\": " + B + ", \"buckets_per_repetition\": " + B));
        assertEquals(products.size() + 1, all.size());
        assertEquals("the mean of its buckets' probabilities", expected, all.get(fresh), EPS);

        // its product id changes to a trained product's: it now scores that product's score
        String trained = products.get(7)[0];
        put("new", trained, "Acme Black Bamboo Lamp");
        all = search(mach(TEXT, ", \"scored_buckets\": " + B + ", \"buckets_per_repetition\": " + B));
        assertFalse(all.containsKey(fresh));
        assertEquals(predicted.get(trained), all.get(trained), EPS); // both documents of that product
        Map<String, Double> byDoc = searchByDocId(mach(TEXT, ", \"scored_buckets\": " + B + ", \"buckets_per_repetition\": " + B));
        assertEquals(predicted.get(trained), byDoc.get("new"), EPS);
        assertEquals(predicted.get(trained), byDoc.get(trained), EPS);

        // deleted: gone from every mode
        Rest.Response deleted = rest.delete("/" + INDEX + "/_doc/new?refresh=true");
        assertEquals(deleted.toString(), 200, deleted.status());
        byDoc = searchByDocId(mach(TEXT, ", \"scored_buckets\": " + B + ", \"buckets_per_repetition\": " + B));
        assertFalse(byDoc.containsKey("new"));
        assertEquals(products.size(), byDoc.size());
        String lexical = ", \"lexical\": {\"match\": {\"title\": \"lamp\"}}, \"combine\": \"hybrid\"";
        assertFalse(searchByDocId(mach(TEXT, lexical)).containsKey("new"));
    }

    // ---------------------------------------------------------------- errors

    @Test
    public void c1_aMappingWithAnUnknownFamilyIsA400() throws IOException {
        Rest.Response r = rest.put("/mach-it-bad-family", mapping("murmur3_x86_32-r4-b64", ""));
        MachRestIT.assertClientError(r, "hash_family");
        assertEquals(r.toString(), 400, r.status());
        r = rest.put("/mach-it-bad-family", mapping("sha1-r4-b64-s1", ""));
        assertEquals(r.toString(), 400, r.status());
    }

    @Test
    public void c2_aModelOfAnotherFamilyIsA400NamingBoth() throws IOException {
        String other = "murmur3_x86_32-r" + R + "-b" + B + "-s7";
        rest.delete("/mach-it-other-family");
        Rest.Response created = rest.put("/mach-it-other-family", mapping(other, ""));
        assertEquals(created.toString(), 200, created.status());
        Rest.Response r = rest.post("/mach-it-other-family/_search", "{\"query\": {\"mach\": {\"model_id\": \"" + MODEL
            + "\", \"query_text\": \"sofa\", \"bucket_field\": \"buckets\"}}}");
        assertEquals(r.toString(), 400, r.status());
        assertTrue(r.body(), r.body().contains(other) && r.body().contains(family));
        rest.delete("/mach-it-other-family");
    }

    // ---------------------------------------------------------------- the catalog

    @Test
    public void d1_theNodeNeverLoadedTheCatalogForTheseQueries() throws IOException {
        Rest.Response r = rest.get("/_plugins/_mach/models");
        assertEquals(r.toString(), 200, r.status());
        JsonNode served = r.json().path("loaded").path(MODEL);
        assertTrue(r.body(), served.isObject());
        assertFalse(r.body(), served.path("catalog_loaded").asBoolean(true));
        assertEquals(r.body(), 0, served.path("catalog_bytes").asLong(-1));
        assertTrue(r.body(), served.path("network_bytes").asLong(0) > 0);
        assertEquals(r.body(), served.path("network_bytes").asLong(), served.path("heap_and_native_bytes").asLong(-1));
        // the reference copy answered _predict: it holds its catalog (the stat can be true), counted apart from its network
        JsonNode reference = r.json().path("loaded").path(REFERENCE);
        assertTrue(r.body(), reference.path("catalog_loaded").asBoolean(false));
        assertTrue(r.body(), reference.path("catalog_bytes").asLong(0) > 0);
        assertEquals(r.body(), reference.path("network_bytes").asLong() + reference.path("catalog_bytes").asLong(),
            reference.path("heap_and_native_bytes").asLong(-1));
    }

    // ---------------------------------------------------------------- _reindex

    @Test
    public void e1_reindexIntoTheSameMappingScoresAlike() throws IOException {
        // a fresh source (no deleted documents, so BM25's statistics match the copy's), a document without a
        // product id among the products: the copy re-derives every document's buckets from its product id
        String source = "mach-it-reindex-source", copy = "mach-it-reindex-copy";
        String settings = "\"index.mach.model\": \"" + MODEL + "\", \"index.mach.bucket_field\": \"buckets\"";
        for (String index : List.of(source, copy)) {
            rest.delete("/" + index);
            Rest.Response created = rest.put("/" + index, mapping(family, settings));
            assertEquals(created.toString(), 200, created.status());
        }
        MachRestIT.bulkProducts(rest, source, products);
        Rest.Response noId = rest.put("/" + source + "/_doc/no-product-id?refresh=true", Map.of("title", "Black Bamboo Tray"));
        assertEquals(noId.toString(), 201, noId.status());

        Rest.Response reindexed = rest.post("/_reindex?refresh=true", "{\"source\": {\"index\": \"" + source + "\"}, \"dest\": {\"index\": \"" + copy + "\"}}");
        assertEquals(reindexed.toString(), 200, reindexed.status());
        assertEquals(reindexed.body(), products.size() + 1, reindexed.json().path("created").asInt());
        assertEquals(reindexed.body(), 0, reindexed.json().path("failures").size());

        String all = ", \"scored_buckets\": " + B + ", \"buckets_per_repetition\": " + B;
        String lexical = ", \"lexical\": {\"match\": {\"title\": \"" + TEXT + "\"}}, \"mach_weight\": 3";
        List<String> queries = List.of(
            mach(TEXT, ""),
            mach(TEXT, all),
            mach(TEXT, lexical + ", \"combine\": \"boost\""),
            mach(TEXT, lexical + ", \"combine\": \"hybrid\""),
            mach(TEXT, lexical + ", \"combine\": \"filter\""),
            "{\"match\": {\"title\": \"" + TEXT + "\"}}"
        );
        for (String query : queries) {
            Map<String, Double> before = scoresByDocId(source, query), after = scoresByDocId(copy, query);
            assertFalse(query, before.isEmpty());
            assertEquals(query, before, after); // the same documents, bit-identical scores
        }
        // the document without a product id: no MACH score, its BM25 score alone in boost, found by no MACH-only query
        Map<String, Double> bm25 = scoresByDocId(copy, "{\"match\": {\"title\": \"" + TEXT + "\"}}");
        Map<String, Double> boost = scoresByDocId(copy, mach(TEXT, lexical + ", \"combine\": \"boost\""));
        assertTrue(bm25.containsKey("no-product-id"));
        assertEquals(bm25.get("no-product-id"), boost.get("no-product-id"));
        assertFalse(scoresByDocId(copy, mach(TEXT, all)).containsKey("no-product-id"));
        assertEquals(products.size(), scoresByDocId(copy, mach(TEXT, all)).size());

        // partial updates (_update merges into _source and indexes again): a new title keeps the document's buckets,
        // a new product id moves it to that product's buckets, a product id given to the document without one scores it
        String doc = products.get(3)[0], other = products.get(5)[0];
        Map<String, Double> exact = scoresByDocId(copy, mach(TEXT, all));
        update(copy, doc, Map.of("title", "Black Bamboo Shelf"));
        assertEquals(exact.get(doc), scoresByDocId(copy, mach(TEXT, all)).get(doc));
        update(copy, doc, Map.of("product_id", other));
        assertEquals(exact.get(other), scoresByDocId(copy, mach(TEXT, all)).get(doc));
        update(copy, "no-product-id", Map.of("product_id", other));
        assertEquals(exact.get(other), scoresByDocId(copy, mach(TEXT, all)).get("no-product-id"));
        rest.delete("/" + source);
        rest.delete("/" + copy);
    }

    // ---------------------------------------------------------------- helpers

    static String mach(String text, String extra) {
        return "{\"mach\": {\"query_text\": \"" + text + "\", \"score\": \"mean\"" + extra + "}}";
    }

    static void put(String docId, String productId, String title) throws IOException {
        Rest.Response r = rest.put("/" + INDEX + "/_doc/" + docId + "?refresh=true", Map.of("product_id", productId, "title", title));
        assertTrue(r.toString(), r.status() == 200 || r.status() == 201);
    }

    static void update(String index, String docId, Map<String, String> fields) throws IOException {
        Rest.Response r = rest.post("/" + index + "/_update/" + docId + "?refresh=true", Map.of("doc", fields));
        assertEquals(r.toString(), 200, r.status());
    }

    /** product id -> score of every hit (documents of one product score alike). */
    static Map<String, Double> search(String query) throws IOException {
        Map<String, Double> out = new HashMap<>();
        for (JsonNode h : hits(query)) out.put(h.path("_source").path("product_id").asText(), h.path("_score").asDouble());
        return out;
    }

    static Map<String, Double> searchByDocId(String query) throws IOException {
        return scoresByDocId(INDEX, query);
    }

    /** document id -> score of every hit of a query on an index. */
    static Map<String, Double> scoresByDocId(String index, String query) throws IOException {
        Map<String, Double> out = new HashMap<>();
        for (JsonNode h : hits(index, query)) out.put(h.path("_id").asText(), h.path("_score").asDouble());
        return out;
    }

    static JsonNode hits(String query) throws IOException {
        return hits(INDEX, query);
    }

    static JsonNode hits(String index, String query) throws IOException {
        Rest.Response r = rest.post("/" + index + "/_search", "{\"size\": 1000, \"query\": " + query + "}");
        assertEquals(r.toString(), 200, r.status());
        return r.json().path("hits").path("hits");
    }

    /** product id -> the model's mean score for every trained product (_predict of the reference copy, exact decoding). */
    static Map<String, Double> predictMeans(String text) throws IOException {
        Rest.Response r = rest.post("/_plugins/_mach/models/" + REFERENCE + "/_predict",
            Map.of("query_text", text, "top_n", products.size(), "decoding", "exact", "score", "mean"));
        assertEquals(r.toString(), 200, r.status());
        Map<String, Double> out = new HashMap<>();
        for (JsonNode p : r.json().path("products")) out.put(p.path("product_id").asText(), p.path("mean").asDouble());
        assertEquals(r.body(), products.size(), out.size());
        return out;
    }

    /** The network's whole output [R][B] for a text (_predict's top_buckets = B). */
    static float[][] probabilities(String text) throws IOException {
        Rest.Response r = rest.post("/_plugins/_mach/models/" + REFERENCE + "/_predict", Map.of("query_text", text, "top_n", 1, "top_buckets", B));
        assertEquals(r.toString(), 200, r.status());
        float[][] probs = new float[R][B];
        for (JsonNode rep : r.json().path("repetitions")) {
            int n = 0;
            for (JsonNode b : rep.path("top_buckets")) {
                probs[rep.path("repetition").asInt()][b.path("bucket").asInt()] = (float) b.path("probability").asDouble();
                n++;
            }
            assertEquals(B, n);
        }
        return probs;
    }

    static java.util.Set<String> union(Map<String, ?> a, Map<String, ?> b) {
        java.util.Set<String> out = new java.util.HashSet<>(a.keySet());
        out.addAll(b.keySet());
        return out;
    }

    /** Bucket of a product id in repetition r under the family (spec: murmur3_x86_32(utf8, (s + 7919 r) mod 2^32) mod B, unsigned). */
    static int bucket(String productId, int r) {
        long firstSeed = Long.parseLong(family.substring(family.lastIndexOf("-s") + 2));
        int seed = (int) ((firstSeed + 7919L * r) & 0xffffffffL);
        return (int) (Integer.toUnsignedLong(murmur3(productId.getBytes(StandardCharsets.UTF_8), seed)) % B);
    }

    /** MurmurHash3 x86_32, written here from the reference algorithm (independent of the plugin's). */
    static int murmur3(byte[] data, int seed) {
        final int c1 = 0xcc9e2d51, c2 = 0x1b873593;
        int h = seed, n = data.length, i = 0;
        for (; i + 4 <= n; i += 4) {
            int k = (data[i] & 0xff) | (data[i + 1] & 0xff) << 8 | (data[i + 2] & 0xff) << 16 | (data[i + 3] & 0xff) << 24;
            k *= c1;
            k = Integer.rotateLeft(k, 15);
            k *= c2;
            h ^= k;
            h = Integer.rotateLeft(h, 13);
            h = h * 5 + 0xe6546b64;
        }
        int k = 0;
        switch (n & 3) {
            case 3:
                k ^= (data[i + 2] & 0xff) << 16;
            case 2:
                k ^= (data[i + 1] & 0xff) << 8;
            case 1:
                k ^= data[i] & 0xff;
                k *= c1;
                k = Integer.rotateLeft(k, 15);
                k *= c2;
                h ^= k;
        }
        h ^= n;
        h ^= h >>> 16;
        h *= 0x85ebca6b;
        h ^= h >>> 13;
        h *= 0xc2b2ae35;
        h ^= h >>> 16;
        return h;
    }
}
