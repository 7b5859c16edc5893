package org.opensearch.mach.it;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.AfterClass;
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
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

/**
 * An encoder bundle (format 2: MACH heads over the int8 all-MiniLM-L6-v2) on the real node. The heads
 * were trained by model-tools ({@code make_plugin_fixture.sh --encoder}: R 4, B 64, the tiny fixture's
 * catalog and query log) and committed without the encoder; the bundle is completed here with the
 * encoder the build unpacks (encoder.onnx as shipped, vocab.txt from its tokenizer.json, both
 * checked against the card's sha256), uploaded in chunks, registered and deployed. Loading re-runs
 * the trainer's parity file through the plugin's WordPiece and ONNX Runtime, so a served model is
 * one on which trainer and plugin agree.
 */
@FixMethodOrder(MethodSorters.NAME_ASCENDING) // the node-log check runs last (zz_)
public class EncoderRestIT {
    static final String MODEL = "it-encoder";
    static final String INDEX = "mach-it-encoder";
    static final int CHUNK = 4 << 20;

    static Rest rest;
    static Path nodeDir;
    static List<String[]> products;
    /** product id -> title */
    static Map<String, String> titles;
    /** the fixture's training queries: query -> products it names */
    static Map<String, Set<String>> queries;

    @BeforeClass
    public static void setUp() throws Exception {
        nodeDir = Paths.get(MachRestIT.requiredProperty("mach.it.node.dir"));
        Path fixture = Paths.get(MachRestIT.requiredProperty("mach.it.fixture.dir"));
        Path heads = fixture.resolveSibling("tiny-encoder");
        Path encoder = Paths.get(MachRestIT.requiredProperty("mach.it.encoder.dir"));
        assertTrue("fixture missing: " + heads, Files.isRegularFile(heads.resolve("model.onnx")));
        assertTrue("encoder missing (the plugin build unpacks it): " + encoder, Files.isRegularFile(encoder.resolve("encoder.onnx")));
        rest = new Rest("http://127.0.0.1:" + Files.readString(nodeDir.resolve("http.port")).trim());
        Rest.Response health = rest.get("/_cluster/health?wait_for_status=yellow&timeout=60s");
        assertEquals(health.toString(), 200, health.status());

        Path bundle = assemble(heads, encoder, Paths.get(MachRestIT.requiredProperty("mach.it.work.dir")).resolve("encoder-bundle"));
        byte[] zip = LifecycleRestIT.zipOf(bundle);
        String upload = LifecycleRestIT.upload(rest, zip, CHUNK, -1, -1);
        int chunks = (zip.length + CHUNK - 1) / CHUNK;
        assertTrue("a bundle of several chunks: " + zip.length + " bytes", chunks >= 3);
        Rest.Response r = rest.post("/_plugins/_mach/models/" + MODEL + "/_register",
            Map.of("upload_id", upload, "chunks", chunks, "sha256", LifecycleRestIT.sha256(zip), "deploy", true));
        assertEquals(r.toString(), 201, r.status());
        assertEquals(r.toString(), "deployed", r.json().path("state").asText());

        products = MachRestIT.readTsv(fixture.resolve("products.tsv"));
        titles = new LinkedHashMap<>();
        for (String[] p : products) titles.put(p[0], p[1]);
        queries = MachRestIT.readQueryLog(fixture.resolve("queries.tsv"));
        MachRestIT.indexProducts(rest, INDEX, 2, products);
    }

    @AfterClass
    public static void tearDown() throws IOException {
        if (rest == null) return;
        rest.delete("/" + INDEX);
        rest.post("/_plugins/_mach/models/" + MODEL + "/_undeploy", null);
        rest.delete("/_plugins/_mach/models/" + MODEL);
    }

    /** The committed heads plus encoder.onnx and vocab.txt from the encoder directory, which must be the files the card names. */
    static Path assemble(Path heads, Path encoder, Path out) throws Exception {
        Files.createDirectories(out);
        try (var files = Files.list(heads)) {
            for (Path f : files.toList()) Files.copy(f, out.resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING);
        }
        Files.copy(encoder.resolve("encoder.onnx"), out.resolve("encoder.onnx"), StandardCopyOption.REPLACE_EXISTING);
        // vocab.txt: tokenizer.json's model.vocab (token -> id) in id order, one token a line
        JsonNode vocab = Rest.JSON.readTree(encoder.resolve("tokenizer.json").toFile()).path("model").path("vocab");
        TreeMap<Integer, String> byId = new TreeMap<>();
        vocab.fields().forEachRemaining(e -> byId.put(e.getValue().asInt(), e.getKey()));
        assertEquals("vocabulary ids are 0..n-1", byId.size() - 1, (int) byId.lastKey());
        StringBuilder lines = new StringBuilder();
        for (String token : byId.values()) lines.append(token).append('\n');
        Files.writeString(out.resolve("vocab.txt"), lines, StandardCharsets.UTF_8);

        JsonNode card = Rest.JSON.readTree(out.resolve("mach.json").toFile());
        assertEquals(2, card.path("format_version").asInt());
        for (String f : List.of("encoder.onnx", "vocab.txt")) {
            assertEquals(f + " is the file the heads were trained over", card.path("files").path(f).asText(),
                LifecycleRestIT.sha256(Files.readAllBytes(out.resolve(f))));
        }
        return out;
    }

    @Test
    public void a_theDeployedModelIsAnEncoderModel() throws IOException {
        Rest.Response r = rest.get("/_plugins/_mach/models/" + MODEL);
        assertEquals(r.toString(), 200, r.status());
        JsonNode card = r.json().path("card");
        assertEquals(r.body(), 2, card.path("format_version").asInt());
        assertEquals(r.body(), "encoder", card.path("input").asText());
        assertEquals(r.body(), "all-MiniLM-L6-v2", card.path("encoder").path("name").asText());
        assertTrue(r.body(), r.json().path("deployed").asBoolean());
    }

    @Test
    public void b_machHitsArePredictsTopProductsWithTheirScores() throws IOException {
        for (String text : List.of("crimson couch", "red sofa", "Café SOFAS!")) {
            Map<String, Double> predicted = predict(text, 20);
            assertEquals(text, 20, predicted.size());
            Map<String, Double> hits = search(Map.of("mach", mach(text, 20)), 20);
            assertEquals("the hits are the model's top products for " + text, predicted.keySet(), hits.keySet());
            for (Map.Entry<String, Double> e : hits.entrySet()) {
                assertEquals("score of " + e.getKey(), predicted.get(e.getKey()), e.getValue(), MachRestIT.EPS);
            }
        }
    }

    @Test
    public void c_synonymQueriesFindTheirProductsWhereBm25FindsNothing() throws IOException {
        // "crimson couch" is logged for red sofas; no title says crimson or couch
        assertTrue("BM25 matches nothing", search(MachRestIT.lexical("crimson couch"), 10).isEmpty());
        List<String> top = new ArrayList<>(search(Map.of("mach", mach("crimson couch", 10)), 10).keySet());
        assertTrue("a red sofa in the top 10: " + titlesOf(top), top.stream().map(titles::get)
            .anyMatch(t -> t.toLowerCase(Locale.ROOT).contains("red") && t.toLowerCase(Locale.ROOT).contains("sofa")));

        // every logged query whose words no title has: a logged product in the top 10 for most
        int asked = 0, found = 0;
        List<String> misses = new ArrayList<>();
        for (Map.Entry<String, Set<String>> q : queries.entrySet()) {
            if (asked == 60) break;
            if (!search(MachRestIT.lexical(q.getKey()), 1).isEmpty()) continue;
            asked++;
            if (!MachRestIT.disjoint(search(Map.of("mach", mach(q.getKey(), 10)), 10).keySet(), q.getValue())) found++;
            else if (misses.size() < 5) misses.add(q.getKey());
        }
        assertEquals("60 synonym queries in the log", 60, asked);
        System.out.printf(Locale.ROOT, "EncoderRestIT: a logged product in the top 10 for %d of %d synonym queries%n", found, asked);
        assertTrue("found " + found + " of " + asked + " (misses e.g. " + misses + ")", found >= 0.7 * asked);
    }

    @Test
    public void d_hybridIsTheUnionWithSummedScores() throws IOException {
        String text = "crimson sofa"; // half synonym, half title word: both sides contribute
        double w = 3.0;
        Map<String, Double> candidates = predict(text, 30);
        Map<String, Double> lexical = search(MachRestIT.lexical(text), 300);
        assertTrue("BM25 matches some sofas", lexical.isEmpty() == false);
        Map<String, Object> q = mach(text, 30);
        q.put("lexical", MachRestIT.lexical(text));
        q.put("combine", "hybrid");
        q.put("mach_weight", w);
        Map<String, Double> hits = search(Map.of("mach", q), 400);
        Set<String> union = new HashSet<>(lexical.keySet());
        union.addAll(candidates.keySet());
        assertTrue("MACH adds products BM25 misses", union.size() > lexical.size());
        assertEquals("hybrid returns the union of lexical matches and MACH candidates", union, hits.keySet());
        for (Map.Entry<String, Double> e : hits.entrySet()) {
            double expected = lexical.getOrDefault(e.getKey(), 0.0) + w * candidates.getOrDefault(e.getKey(), 0.0);
            assertEquals("hybrid score of " + e.getKey(), expected, e.getValue(), MachRestIT.EPS * Math.max(1, expected));
        }
    }

    @Test
    public void zz_nodeLogHasNoUnexpectedErrors() throws IOException {
        List<String> problems = NodeLog.unexpectedProblems(nodeDir.resolve("logs").resolve("mach-it.log"));
        assertTrue("unexpected errors in the node log:\n" + String.join("\n", problems), problems.isEmpty());
    }

    static Map<String, Object> mach(String text, int topN) {
        Map<String, Object> q = new LinkedHashMap<>();
        q.put("model_id", MODEL);
        q.put("query_text", text);
        q.put("product_id_field", "product_id");
        q.put("top_n", topN);
        return q;
    }

    static Map<String, Double> predict(String text, int topN) throws IOException {
        return MachRestIT.predict(rest, MODEL, text, topN);
    }

    static Map<String, Double> search(Map<String, ?> query, int size) throws IOException {
        return MachRestIT.search(rest, INDEX, query, size);
    }

    static List<String> titlesOf(List<String> ids) {
        return ids.stream().map(titles::get).toList();
    }
}
