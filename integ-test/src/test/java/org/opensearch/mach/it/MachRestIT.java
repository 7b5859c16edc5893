package org.opensearch.mach.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.BeforeClass;
import org.junit.FixMethodOrder;
import org.junit.Test;
import org.junit.runners.MethodSorters;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

/**
 * REST tests against a real OpenSearch node with the plugin installed (started by node.sh in
 * pre-integration-test). Uses the tiny synthetic fixture of model-tools: 300 products whose titles
 * say "red sofa" while the query log says "crimson couch".
 */
@FixMethodOrder(MethodSorters.NAME_ASCENDING) // the node-log check runs last (zz_)
public class MachRestIT {
    static final String MODEL = "tiny";
    static final String INDEX = "mach-it-products";
    static final double EPS = 1e-4;

    static Rest rest;
    static Path nodeDir;
    static List<String[]> products;
    /** training queries of the fixture: query -> products it names */
    static Map<String, Set<String>> queries;

    @BeforeClass
    public static void setUp() throws Exception {
        nodeDir = Paths.get(requiredProperty("mach.it.node.dir"));
        Path fixture = Paths.get(requiredProperty("mach.it.fixture.dir"));
        assertTrue("fixture missing: " + fixture, Files.isDirectory(fixture.resolve("bundle")));
        String port = Files.readString(nodeDir.resolve("http.port")).trim();
        rest = new Rest("http://127.0.0.1:" + port);
        Rest.Response health = rest.get("/_cluster/health?wait_for_status=yellow&timeout=60s");
        assertEquals(health.toString(), 200, health.status());

        // Register the bundle: a subdirectory of mach.models.dir named after the model id.
        copyBundle(fixture.resolve("bundle"), nodeDir.resolve("models").resolve(MODEL));

        products = readTsv(fixture.resolve("products.tsv"));
        queries = readQueryLog(fixture.resolve("queries.tsv"));

        rest.delete("/" + INDEX);
        Rest.Response created = rest.put("/" + INDEX, Rest.JSON.readTree("""
            {"settings": {"number_of_shards": 2, "number_of_replicas": 0},
             "mappings": {"properties": {
               "product_id": {"type": "keyword"},
               "title": {"type": "text", "analyzer": "english"},
               "price": {"type": "float"}}}}"""));
        assertEquals(created.toString(), 200, created.status());

        StringBuilder bulk = new StringBuilder();
        int i = 0;
        for (String[] p : products) {
            bulk.append(Rest.toJson(Map.of("index", Map.of("_id", p[0])))).append('\n');
            bulk.append(Rest.toJson(Map.of("product_id", p[0], "title", p[1], "price", i++ % 100))).append('\n');
        }
        Rest.Response indexed = rest.send("POST", "/" + INDEX + "/_bulk?refresh=true", bulk.toString(), "application/x-ndjson");
        assertEquals(indexed.toString(), 200, indexed.status());
        assertFalse("bulk errors: " + indexed.body(), indexed.json().path("errors").asBoolean(true));
    }

    // ---------------------------------------------------------------- model endpoints

    @Test
    public void a1_modelsEndpointListsTheBundle() throws IOException {
        Rest.Response r = rest.get("/_plugins/_mach/models");
        assertEquals(r.toString(), 200, r.status());
        assertTrue("model list should name " + MODEL + ": " + r.body(), r.body().contains("\"" + MODEL + "\""));
    }

    @Test
    public void a1b_aBundleCopiedWhileTheNodeRunsIsServed() throws IOException {
        Path copy = nodeDir.resolve("models").resolve(MODEL + "-copy");
        copyBundle(nodeDir.resolve("models").resolve(MODEL), copy);
        assertTrue(rest.get("/_plugins/_mach/models").body().contains("\"" + MODEL + "-copy\""));
        ObjectNode q = mach("crimson couch", 10);
        q.put("model_id", MODEL + "-copy");
        assertEquals("the same bundle under another id ranks the same", predict("crimson couch", 10), search(Map.of("mach", q), 10));
    }

    @Test
    public void a1c_aZippedBundleIsServed() throws IOException {
        Path zip = nodeDir.resolve("models").resolve(MODEL + "-zip.zip");
        try (ZipOutputStream out = new ZipOutputStream(Files.newOutputStream(zip));
             Stream<Path> files = Files.list(nodeDir.resolve("models").resolve(MODEL))) {
            for (Path f : files.sorted().toList()) {
                out.putNextEntry(new ZipEntry(f.getFileName().toString())); // files at the zip root
                Files.copy(f, out);
                out.closeEntry();
            }
        }
        readableByNode(zip);
        ObjectNode q = mach("crimson couch", 10);
        q.put("model_id", MODEL + "-zip");
        assertEquals("the zipped bundle ranks as the directory does", predict("crimson couch", 10), search(Map.of("mach", q), 10));
    }

    @Test
    public void a2_predictReturnsRankedKnownProducts() throws IOException {
        Map<String, Double> top = predict("crimson couch", 10);
        assertEquals(10, top.size());
        Set<String> ids = new HashSet<>();
        products.forEach(p -> ids.add(p[0]));
        double prev = Double.MAX_VALUE;
        for (Map.Entry<String, Double> e : top.entrySet()) {
            assertTrue("unknown product " + e.getKey(), ids.contains(e.getKey()));
            assertTrue("scores must not increase: " + top, e.getValue() <= prev + 1e-9);
            prev = e.getValue();
        }
    }

    // ---------------------------------------------------------------- mach alone

    @Test
    public void b1_machAloneReturnsThePredictedProductsWithTheirScores() throws IOException {
        String text = "crimson couch";
        Map<String, Double> predicted = predict(text, 20);
        Map<String, Double> hits = search(Map.of("mach", mach(text, 20)), 20);
        assertEquals("the query's hits are the model's top products", predicted.keySet(), hits.keySet());
        for (Map.Entry<String, Double> e : hits.entrySet()) {
            assertEquals("score of " + e.getKey(), predicted.get(e.getKey()), e.getValue(), EPS);
        }
        // top_n caps the candidates whatever the size
        assertEquals(5, search(Map.of("mach", mach(text, 5)), 50).size());
    }

    @Test
    public void b2_machFindsSynonymQueriesThatBm25Misses() throws IOException {
        int bm25Misses = 0, machFinds = 0;
        List<String> examples = new ArrayList<>();
        for (Map.Entry<String, Set<String>> q : queries.entrySet()) {
            Map<String, Double> bm25 = search(Map.of("match", Map.of("title", q.getKey())), 10);
            if (!disjoint(bm25.keySet(), q.getValue())) {
                continue; // lexical search already finds it
            }
            bm25Misses++;
            Map<String, Double> mach = search(Map.of("mach", mach(q.getKey(), 10)), 10);
            if (!disjoint(mach.keySet(), q.getValue())) {
                machFinds++;
                if (examples.size() < 3) {
                    examples.add(q.getKey());
                }
            }
            if (bm25Misses == 60) {
                break;
            }
        }
        assertTrue("the fixture should have synonym queries BM25 cannot match", bm25Misses >= 20);
        // trained queries: the model should find a product for most of them
        assertTrue("MACH found " + machFinds + " of " + bm25Misses + " queries that BM25 misses",
            machFinds >= 0.8 * bm25Misses);
        System.out.println("MACH finds " + machFinds + "/" + bm25Misses + " queries BM25 misses, e.g. " + examples);
    }

    // ---------------------------------------------------------------- combine modes

    @Test
    public void c1_filterRanksLexicallyWithinMachCandidates() throws IOException {
        String text = "red sofa";
        Map<String, Double> candidates = predict(text, 30);
        Map<String, Double> lexical = search(lexical(text), 300);
        Map<String, Double> hits = search(Map.of("mach", combined(text, 30, "filter", null)), 300);
        assertFalse("filter should return some products", hits.isEmpty());
        for (Map.Entry<String, Double> e : hits.entrySet()) {
            assertTrue(e.getKey() + " is not a MACH candidate", candidates.containsKey(e.getKey()));
            assertTrue(e.getKey() + " does not match lexically", lexical.containsKey(e.getKey()));
            assertEquals("filter keeps the BM25 score of " + e.getKey(), lexical.get(e.getKey()), e.getValue(), EPS);
        }
        // every candidate that matches lexically is there
        for (String id : candidates.keySet()) {
            assertEquals(id, lexical.containsKey(id), hits.containsKey(id));
        }
    }

    @Test
    public void c2_boostAddsWeightedMachScoreToLexicalMatches() throws IOException {
        String text = "red sofa";
        double w = 7.5;
        Map<String, Double> candidates = predict(text, 30);
        Map<String, Double> lexical = search(lexical(text), 300);
        Map<String, Double> hits = search(Map.of("mach", combined(text, 30, "boost", w)), 300);
        assertEquals("boost keeps exactly the lexical matches", lexical.keySet(), hits.keySet());
        for (Map.Entry<String, Double> e : hits.entrySet()) {
            double expected = lexical.get(e.getKey()) + w * candidates.getOrDefault(e.getKey(), 0.0);
            assertEquals("boost score of " + e.getKey(), expected, e.getValue(), EPS * Math.max(1, expected));
        }
    }

    @Test
    public void c3_hybridIsTheUnionWithSummedScores() throws IOException {
        String text = "crimson sofa"; // half synonym, half title word: both sides contribute
        double w = 3.0;
        Map<String, Double> candidates = predict(text, 30);
        Map<String, Double> lexical = search(lexical(text), 300);
        Map<String, Double> hits = search(Map.of("mach", combined(text, 30, "hybrid", w)), 400);
        Set<String> union = new HashSet<>(lexical.keySet());
        union.addAll(candidates.keySet());
        assertEquals("hybrid returns the union of lexical matches and MACH candidates", union, hits.keySet());
        for (Map.Entry<String, Double> e : hits.entrySet()) {
            double expected = lexical.getOrDefault(e.getKey(), 0.0) + w * candidates.getOrDefault(e.getKey(), 0.0);
            assertEquals("hybrid score of " + e.getKey(), expected, e.getValue(), EPS * Math.max(1, expected));
        }
    }

    @Test
    public void c3b_minMaxIsTheWeightedMeanOfNormalizedScores() throws IOException {
        String text = "crimson sofa";
        double w = 0.4;
        int window = 20;
        Map<String, Double> candidates = predict(text, 30);
        List<Double> machScores = new ArrayList<>(candidates.values());
        Map<String, Double> lexical = search(lexical(text), 300);
        List<Double> lexScores = new ArrayList<>(lexical.values());
        assertTrue("more lexical matches than the window", lexScores.size() > window);
        double lexMax = lexScores.get(0), lexMin = lexScores.get(window - 1);
        double machMax = machScores.get(0), machMin = machScores.get(machScores.size() - 1);
        ObjectNode q = combined(text, 30, "hybrid", w);
        q.put("normalization", "min_max");
        q.put("lexical_window", window);
        Map<String, Double> hits = search(Map.of("mach", q), 400);
        Set<String> union = new HashSet<>(lexical.keySet());
        union.addAll(candidates.keySet());
        assertEquals(union, hits.keySet());
        for (Map.Entry<String, Double> e : hits.entrySet()) {
            double l = lexical.containsKey(e.getKey()) ? Math.max(0, (lexical.get(e.getKey()) - lexMin) / (lexMax - lexMin)) : 0;
            double m = candidates.containsKey(e.getKey()) ? (candidates.get(e.getKey()) - machMin) / (machMax - machMin) : 0;
            double expected = (1 - w) * l + w * m;
            assertEquals("min_max score of " + e.getKey(), expected, e.getValue(), EPS);
        }
    }

    @Test
    public void c4_machComposesInsideBool() throws IOException {
        String text = "crimson couch";
        Map<String, Double> predicted = predict(text, 20);
        String first = predicted.keySet().iterator().next();

        // bool filter narrows the MACH hits, the score stays the MACH score
        Map<String, Object> narrowed = Map.of("bool", Map.of(
            "must", List.of(Map.of("mach", mach(text, 20))),
            "filter", List.of(Map.of("term", Map.of("product_id", first)))));
        Map<String, Double> hits = search(narrowed, 10);
        assertEquals(Set.of(first), hits.keySet());
        assertEquals(predicted.get(first), hits.get(first), EPS);

        // must_not removes it
        Map<String, Object> excluded = Map.of("bool", Map.of(
            "must", List.of(Map.of("mach", mach(text, 20))),
            "must_not", List.of(Map.of("term", Map.of("product_id", first)))));
        hits = search(excluded, 50);
        assertFalse(hits.containsKey(first));
        assertEquals(predicted.size() - 1, hits.size());

        // should: a lexical clause and a mach clause add up
        Map<String, Object> both = Map.of("bool", Map.of("should", List.of(
            Map.of("match", Map.of("title", text)), Map.of("mach", mach(text, 20)))));
        Map<String, Double> lexical = search(lexical(text), 300);
        hits = search(both, 400);
        for (Map.Entry<String, Double> e : hits.entrySet()) {
            double expected = lexical.getOrDefault(e.getKey(), 0.0) + predicted.getOrDefault(e.getKey(), 0.0);
            assertEquals("bool should score of " + e.getKey(), expected, e.getValue(), EPS * Math.max(1, expected));
        }

        // a range filter on another field composes too
        Map<String, Object> ranged = Map.of("bool", Map.of(
            "must", List.of(Map.of("mach", mach(text, 20))),
            "filter", List.of(Map.of("range", Map.of("price", Map.of("lt", 50))))));
        Rest.Response r = rest.post("/" + INDEX + "/_search", Map.of("query", ranged, "size", 50));
        assertEquals(r.toString(), 200, r.status());
        for (JsonNode h : r.json().path("hits").path("hits")) {
            assertTrue(h.toString(), h.path("_source").path("price").asDouble() < 50);
            assertTrue(h.toString(), predicted.containsKey(h.path("_source").path("product_id").asText()));
        }
    }

    // ---------------------------------------------------------------- bad requests

    @Test
    public void d1_unknownModelIsAClientError() throws IOException {
        ObjectNode q = mach("red sofa", 10);
        q.put("model_id", "no-such-model");
        expectError(Map.of("mach", q), "no-such-model");
        Rest.Response r = rest.post("/_plugins/_mach/models/no-such-model/_predict", Map.of("query_text", "red sofa"));
        assertClientError(r, "no-such-model");
    }

    @Test
    public void d2_badProductIdFieldIsAClientError() throws IOException {
        ObjectNode q = mach("red sofa", 10);
        q.put("product_id_field", "no_such_field");
        expectError(Map.of("mach", q), "no_such_field");
        q.put("product_id_field", "title"); // text, not keyword
        expectError(Map.of("mach", q), "title");
    }

    @Test
    public void d3_emptyOrMissingTextIsAClientError() throws IOException {
        expectError(Map.of("mach", mach("", 10)), "query_text");
        expectError(Map.of("mach", mach("   ", 10)), "query_text");
        ObjectNode q = mach("x", 10);
        q.remove("query_text");
        expectError(Map.of("mach", q), "query_text");
    }

    @Test
    public void d4_badTopNIsAClientError() throws IOException {
        expectError(Map.of("mach", mach("red sofa", 0)), "top_n");
        expectError(Map.of("mach", mach("red sofa", -3)), "top_n");
        expectError(Map.of("mach", mach("red sofa", 100_000_000)), "top_n");
        ObjectNode q = mach("red sofa", 10);
        q.put("top_n", "ten");
        expectError(Map.of("mach", q), "top_n");
    }

    @Test
    public void d5_unknownCombineOrMissingLexicalIsAClientError() throws IOException {
        expectError(Map.of("mach", combined("red sofa", 10, "blend", null)), "blend");
        ObjectNode q = mach("red sofa", 10);
        q.put("combine", "filter"); // a combine mode without a lexical query
        expectError(Map.of("mach", q), "lexical");
    }

    @Test
    public void d6_unknownParameterAndMalformedJsonAreClientErrors() throws IOException {
        ObjectNode q = mach("red sofa", 10);
        q.put("no_such_param", 1);
        expectError(Map.of("mach", q), "no_such_param");
        Rest.Response r = rest.send("POST", "/" + INDEX + "/_search",
            "{\"query\": {\"mach\": {\"model_id\": \"" + MODEL + "\", \"query_text\": ", "application/json");
        assertClientError(r, null);
        r = rest.send("POST", "/_plugins/_mach/models/" + MODEL + "/_predict", "{not json", "application/json");
        assertClientError(r, null);
    }

    @Test
    public void d7_brokenBundleOrBadModelIdIsAClientError() throws IOException {
        Path broken = nodeDir.resolve("models").resolve(MODEL + "-broken");
        copyBundle(nodeDir.resolve("models").resolve(MODEL), broken);
        Files.writeString(broken.resolve("labels.txt"), "P1\nP2\n"); // sha256 and count no longer match the card
        ObjectNode q = mach("red sofa", 10);
        q.put("model_id", MODEL + "-broken");
        expectError(Map.of("mach", q), "labels.txt");
        q.put("model_id", "../" + MODEL);
        expectError(Map.of("mach", q), "model_id");
    }

    // ---------------------------------------------------------------- node log

    @Test
    public void zz_nodeLogHasNoUnexpectedErrors() throws IOException {
        List<String> problems = NodeLog.unexpectedProblems(nodeDir.resolve("logs").resolve("mach-it.log"));
        assertTrue("unexpected errors in the node log:\n" + String.join("\n", problems), problems.isEmpty());
    }

    // ---------------------------------------------------------------- helpers

    static ObjectNode mach(String text, int topN) {
        ObjectNode q = Rest.JSON.createObjectNode();
        q.put("model_id", MODEL);
        q.put("query_text", text);
        q.put("product_id_field", "product_id");
        q.put("top_n", topN);
        return q;
    }

    static ObjectNode combined(String text, int topN, String combine, Double weight) {
        ObjectNode q = mach(text, topN);
        q.set("lexical", Rest.JSON.valueToTree(lexical(text)));
        q.put("combine", combine);
        if (weight != null) {
            q.put("mach_weight", weight);
        }
        return q;
    }

    static Map<String, Object> lexical(String text) {
        return Map.of("match", Map.of("title", text));
    }

    /** product id -> score of the top products the model predicts for a text. */
    static Map<String, Double> predict(String text, int topN) throws IOException {
        return predict(rest, MODEL, text, topN);
    }

    /** product id -> score of a model's _predict answer, in rank order (shared by the real-node ITs). */
    static Map<String, Double> predict(Rest rest, String model, String text, int topN) throws IOException {
        Rest.Response r = rest.post("/_plugins/_mach/models/" + model + "/_predict", Map.of("query_text", text, "top_n", topN));
        assertEquals(r.toString(), 200, r.status());
        JsonNode list = r.json().path("products");
        assertTrue("predict answer has no products list: " + r.body(), list.isArray());
        Map<String, Double> out = new LinkedHashMap<>();
        for (JsonNode p : list) {
            out.put(p.path("product_id").asText(), p.path("score").asDouble());
        }
        return out;
    }

    static Map<String, Double> search(Map<String, ?> query, int size) throws IOException {
        return search(rest, INDEX, query, size);
    }

    /** product id -> score of the hits, in rank order (shared by the real-node ITs). */
    static Map<String, Double> search(Rest rest, String index, Map<String, ?> query, int size) throws IOException {
        Rest.Response r = rest.post("/" + index + "/_search", Map.of("query", query, "size", size));
        assertEquals(r.toString(), 200, r.status());
        Map<String, Double> out = new LinkedHashMap<>();
        for (JsonNode h : r.json().path("hits").path("hits")) {
            out.put(h.path("_source").path("product_id").asText(), h.path("_score").asDouble());
        }
        return out;
    }

    static void expectError(Map<String, ?> query, String mustMention) throws IOException {
        assertClientError(rest.post("/" + INDEX + "/_search", Map.of("query", query)), mustMention);
    }

    /** A 4xx with an error reason that names the problem (no 500, no bare stack trace). */
    static void assertClientError(Rest.Response r, String mustMention) {
        assertTrue("expected a 4xx, got " + r, r.status() >= 400 && r.status() < 500);
        assertNotNull("error body is not JSON: " + r.body(), r.json());
        String reason = r.json().path("error").path("reason").asText("")
            + " " + r.json().path("error").path("root_cause").toString();
        if (mustMention != null && !reason.contains(mustMention)) {
            fail("error should mention [" + mustMention + "]: " + r.body());
        }
    }

    /** (Re)creates {@code index} (product_id keyword, title text, {@code shards} shards) holding the fixture's products. */
    static void indexProducts(Rest rest, String index, int shards, List<String[]> products) throws IOException {
        rest.delete("/" + index);
        Rest.Response created = rest.put("/" + index, Map.of(
            "settings", Map.of("number_of_shards", shards, "number_of_replicas", 0),
            "mappings", Map.of("properties", Map.of("product_id", Map.of("type", "keyword"), "title", Map.of("type", "text")))
        ));
        assertEquals(created.toString(), 200, created.status());
        bulkProducts(rest, index, products);
    }

    /** The fixture's products (product_id, title; id = product id) into {@code index}, refreshed; asserts that none failed. */
    static void bulkProducts(Rest rest, String index, List<String[]> products) throws IOException {
        StringBuilder bulk = new StringBuilder();
        for (String[] p : products) {
            bulk.append(Rest.toJson(Map.of("index", Map.of("_id", p[0])))).append('\n');
            bulk.append(Rest.toJson(Map.of("product_id", p[0], "title", p[1]))).append('\n');
        }
        Rest.Response indexed = rest.send("POST", "/" + index + "/_bulk?refresh=true", bulk.toString(), "application/x-ndjson");
        assertEquals(indexed.toString(), 200, indexed.status());
        assertFalse("bulk errors: " + indexed.body(), indexed.json().path("errors").asBoolean(true));
    }

    static void copyBundle(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (Stream<Path> files = Files.list(from)) {
            for (Path f : files.toList()) {
                readableByNode(Files.copy(f, to.resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING));
            }
        }
        readableByNode(to);
    }

    /**
     * What the tests put in the node's home, they write as themselves (root in CI) while the node runs as
     * its own user (node.sh): open it to every user, whatever the umask, so that the node can read it.
     */
    static Path readableByNode(Path p) {
        p.toFile().setReadable(true, false);
        if (Files.isDirectory(p)) p.toFile().setExecutable(true, false);
        return p;
    }

    static boolean disjoint(Set<String> a, Set<String> b) {
        for (String x : a) {
            if (b.contains(x)) {
                return false;
            }
        }
        return true;
    }

    static List<String[]> readTsv(Path file) throws IOException {
        List<String[]> rows = new ArrayList<>();
        List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        for (String line : lines.subList(1, lines.size())) { // header first
            if (!line.isBlank()) {
                rows.add(line.split("\t", -1));
            }
        }
        return rows;
    }

    /** A query log TSV (query, product_id) as query -> its logged products, in file order. */
    static Map<String, Set<String>> readQueryLog(Path file) throws IOException {
        Map<String, Set<String>> log = new LinkedHashMap<>();
        for (String[] row : readTsv(file)) {
            log.computeIfAbsent(row[0], q -> new LinkedHashSet<>()).add(row[1]);
        }
        return log;
    }

    static String requiredProperty(String name) {
        String v = System.getProperty(name);
        if (v == null || v.isBlank()) {
            throw new IllegalStateException("system property " + name + " is not set: run through `mvn verify` in integ-test/");
        }
        return v;
    }
}
