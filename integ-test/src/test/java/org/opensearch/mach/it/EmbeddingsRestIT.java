package org.opensearch.mach.it;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

/**
 * A model with a mixed-dimension input layer (docs/embeddings.md; fixture tiny-mixed, made by
 * model-tools/scripts/make_plugin_fixture.sh --mixed) is served by the unchanged plugin: the id to
 * block/row mapping lives in model.onnx, so loading it (which re-runs parity.json through ONNX
 * Runtime) and answering mach queries needs nothing new. Same products and query log as MachRestIT.
 */
public class EmbeddingsRestIT {
    static final String MODEL = "tiny-mixed";
    static final String INDEX = "mach-it-embeddings";

    static Rest rest;
    static Path fixture;
    static List<String[]> products;
    static Map<String, Set<String>> queries;

    @BeforeClass
    public static void setUp() throws Exception {
        Path nodeDir = Paths.get(MachRestIT.requiredProperty("mach.it.node.dir"));
        fixture = Paths.get(MachRestIT.requiredProperty("mach.it.fixture.dir"));
        Path bundle = fixture.resolveSibling("tiny-mixed").resolve("bundle");
        assertTrue("fixture missing: " + bundle, Files.isDirectory(bundle));
        rest = new Rest("http://127.0.0.1:" + Files.readString(nodeDir.resolve("http.port")).trim());
        Rest.Response health = rest.get("/_cluster/health?wait_for_status=yellow&timeout=60s");
        assertEquals(health.toString(), 200, health.status());
        MachRestIT.copyBundle(bundle, nodeDir.resolve("models").resolve(MODEL));

        products = MachRestIT.readTsv(fixture.resolve("products.tsv"));
        queries = MachRestIT.readQueryLog(fixture.resolve("queries.tsv"));
        MachRestIT.indexProducts(rest, INDEX, 2, products);
    }

    @AfterClass
    public static void tearDown() throws IOException {
        if (rest != null) {
            rest.delete("/" + INDEX);
        }
    }

    @Test
    public void theBundleReallyHasAMixedInputLayer() throws IOException {
        JsonNode card = Rest.JSON.readTree(fixture.resolveSibling("tiny-mixed").resolve("bundle").resolve("mach.json").toFile());
        assertEquals("mixed", card.path("input_layer").path("kind").asText());
        long uniformBytes = 4L * card.path("featurizer").path("dimension").asLong() * card.path("H").asLong();
        assertTrue("input layer at least 4x smaller than the uniform table: " + card.path("input_layer"),
            card.path("input_layer").path("bytes").asLong() * 4 <= uniformBytes);
        Rest.Response models = rest.get("/_plugins/_mach/models");
        assertEquals(models.toString(), 200, models.status());
        assertTrue("model list should name " + MODEL + ": " + models.body(), models.body().contains("\"" + MODEL + "\""));
    }

    @Test
    public void machQueriesReturnThePredictedProductsWithTheirScores() throws IOException {
        for (String text : List.of("crimson couch", "red sofa")) {
            Map<String, Double> predicted = predict(text, 20);
            assertEquals(20, predicted.size());
            Map<String, Double> hits = search(text, 20);
            assertEquals("the query's hits are the model's top products for " + text, predicted.keySet(), hits.keySet());
            for (Map.Entry<String, Double> e : hits.entrySet()) {
                assertEquals("score of " + e.getKey(), predicted.get(e.getKey()), e.getValue(), MachRestIT.EPS);
            }
        }
    }

    @Test
    public void machFindsTheProductsTheQueryLogNames() throws IOException {
        // Trained queries, synonym ones included ("crimson couch" for a "red sofa" title): a product
        // the log names should be among the top 10 for most of them.
        int asked = 0, found = 0;
        List<String> misses = new ArrayList<>();
        for (Map.Entry<String, Set<String>> q : queries.entrySet()) {
            if (asked++ == 80) {
                break;
            }
            if (!MachRestIT.disjoint(search(q.getKey(), 10).keySet(), q.getValue())) {
                found++;
            } else if (misses.size() < 5) {
                misses.add(q.getKey());
            }
        }
        assertTrue("found " + found + " of " + asked + " (misses e.g. " + misses + ")", found >= 0.7 * asked);
    }

    static Map<String, Double> predict(String text, int topN) throws IOException {
        return MachRestIT.predict(rest, MODEL, text, topN);
    }

    static Map<String, Double> search(String text, int topN) throws IOException {
        Map<String, Object> mach = Map.of("model_id", MODEL, "query_text", text, "product_id_field", "product_id", "top_n", topN);
        return MachRestIT.search(rest, INDEX, Map.of("mach", mach), topN);
    }
}
