package org.opensearch.mach.cluster;

import com.fasterxml.jackson.databind.JsonNode;

import org.opensearch.common.settings.Settings;
import org.opensearch.mach.TestPaths;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.test.OpenSearchIntegTestCase;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Index-side MACH does not depend on how the index is split: 3 nodes, the tiny fixture's 300 products
 * in a 6-shard index with a replica and in a 1-shard index; every mode of the bucket_field query gives
 * the same hits with bit-identical scores and explanations in both (explanations included, tree for tree), whichever copy answers.
 * The MACH side is per document (its R bucket codes against the table the coordinator sends), so it
 * cannot depend on the shard; the lexical side's BM25 statistics are per shard, so those queries run
 * with search_type=dfs_query_then_fetch, which gives every shard the index-wide statistics.
 */
@OpenSearchIntegTestCase.ClusterScope(scope = OpenSearchIntegTestCase.Scope.SUITE, numDataNodes = 3, numClientNodes = 0, supportsDedicatedMasters = false)
public class MachBucketsShardParityClusterTests extends MachClusterTestCase {
    private static final String MODEL = "tiny";
    private static final String SHARDED = "sharded";
    private static final String SINGLE = "single";
    private static final Pattern LOCAL_DOC = Pattern.compile(" in \\d+\\)");
    private static Path modelsDir;
    private static String family;

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
                family = BundleLoader.load(MODEL, TestPaths.tinyFixture().resolve("bundle"), false).card().hashFamily.name();
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        }
        return modelsDir;
    }

    private void index(String index, int shards) throws IOException {
        if (indexExists(index)) return;
        rest("PUT", "/" + index, "{\"settings\": {\"number_of_shards\": " + shards + ", \"number_of_replicas\": 1, \"index.mach.model\": \"" + MODEL
            + "\", \"index.mach.bucket_field\": \"buckets\"}, \"mappings\": {\"properties\": {"
            + "\"product_id\": {\"type\": \"keyword\", \"copy_to\": \"buckets\"}, \"title\": {\"type\": \"text\"},"
            + "\"buckets\": {\"type\": \"mach_buckets\", \"hash_family\": \"" + family + "\"}}}}", 200);
        StringBuilder bulk = new StringBuilder();
        for (String[] p : tsv("products.tsv")) {
            bulk.append("{\"index\": {\"_id\": \"").append(p[0]).append("\"}}\n");
            bulk.append(JSON.writeValueAsString(Map.of("product_id", p[0], "title", p[1]))).append('\n');
        }
        JsonNode r = rest("POST", "/" + index + "/_bulk?refresh=true", bulk.toString(), 200);
        assertFalse(r.toString(), r.path("errors").asBoolean());
        ensureGreen(index);
    }

    private static Map<String, String> hits(String index, String query, String preference) throws IOException {
        return hits(index, query, preference, "dfs_query_then_fetch");
    }

    /** id -> "score explanation" of every hit (the whole explanation tree); asserts that each explanation's value is its score. */
    private static Map<String, String> hits(String index, String query, String preference, String searchType) throws IOException {
        String params = "?search_type=" + searchType + (preference == null ? "" : "&preference=" + preference);
        JsonNode r = rest("POST", "/" + index + "/_search" + params, "{\"size\": 400, \"explain\": true, \"query\": " + query + "}", 200);
        assertEquals(r.toString(), 0, r.path("_shards").path("failed").asInt());
        Map<String, String> out = new HashMap<>();
        for (JsonNode h : r.path("hits").path("hits")) {
            float score = (float) h.path("_score").asDouble();
            float explained = (float) h.path("_explanation").path("value").asDouble();
            assertEquals(index + " " + query + " " + h.path("_id").asText() + " explain", score, explained, 0f);
            // Lucene's explanations name the shard-local doc id ("weight(title:black in 31)"): the one thing allowed to differ
            out.put(h.path("_id").asText(), score + " " + LOCAL_DOC.matcher(h.path("_explanation").toString()).replaceAll(" in #)"));
        }
        return out;
    }

    private static String mach(String text, String extra) {
        return "{\"mach\": {\"query_text\": \"" + text + "\"" + extra + "}}";
    }

    private static String lexical(String text, String combine, String extra) {
        return ", \"lexical\": {\"match\": {\"title\": \"" + text + "\"}}, \"combine\": \"" + combine + "\"" + extra;
    }

    /** Every mode of the index-side query, raw and normalized. */
    private static List<String> queries(String text) {
        return List.of(
            mach(text, ""),
            mach(text, ", \"normalize\": true"),
            mach(text, ", \"score\": \"calibrated\""),
            mach(text, ", \"buckets_per_repetition\": 3, \"min_repetitions\": 2"),
            mach(text, ", \"scored_buckets\": 8"), // quantized rest
            mach(text, ", \"scored_buckets\": 8, \"rest_buckets\": \"residual\""),
            mach(text, lexical(text, "filter", "")),
            mach(text, lexical(text, "boost", ", \"mach_weight\": 3")),
            mach(text, lexical(text, "boost", ", \"mach_weight\": 3, \"normalize\": true")),
            mach(text, lexical(text, "hybrid", ", \"mach_weight\": 3")),
            mach(text, lexical(text, "hybrid", ", \"mach_weight\": 3, \"normalize\": true")),
            mach(text, lexical(text, "boost", ", \"normalization\": \"min_max\", \"mach_weight\": 0.4")),
            mach(text, lexical(text, "hybrid", ", \"normalization\": \"min_max\", \"mach_weight\": 0.4")),
            mach(text, lexical(text, "hybrid", ", \"normalization\": \"min_max\", \"mach_weight\": 0.4, \"normalize\": true"))
        );
    }

    public void testSixShardsScoreAsOne() throws IOException {
        index(SHARDED, 6);
        index(SINGLE, 1);
        int nonEmpty = 0;
        for (String text : new String[] { "black bamboo", "crimson couch", "red sofa" }) {
            for (String q : queries(text)) {
                Map<String, String> single = hits(SINGLE, q, null);
                if (single.isEmpty() == false) nonEmpty++;
                assertEquals(q, single, hits(SHARDED, q, null));
                assertEquals(q + " replicas", single, hits(SHARDED, q, "_replica"));
                assertEquals(q + " primaries", single, hits(SHARDED, q, "_primary"));
                assertEquals(q + " single replica", single, hits(SINGLE, q, "_replica"));
            }
        }
        assertTrue("most queries have hits: " + nonEmpty, nonEmpty >= 36);
    }

    /**
     * Without dfs: the MACH side alone still agrees exactly (it reads no index statistics), while BM25's
     * per-shard statistics make the lexical modes differ, which is why the parity test above uses dfs.
     */
    public void testWithoutDfsOnlyTheLexicalSideDependsOnTheShards() throws IOException {
        index(SHARDED, 6);
        index(SINGLE, 1);
        int lexicalDiffer = 0;
        for (String q : queries("black bamboo")) {
            Map<String, String> single = hits(SINGLE, q, null, "query_then_fetch");
            Map<String, String> sharded = hits(SHARDED, q, null, "query_then_fetch");
            if (q.contains("lexical") == false) {
                assertEquals(q, single, sharded);
            } else if (single.equals(sharded) == false) {
                lexicalDiffer++;
            }
        }
        assertTrue("BM25 statistics differ per shard without dfs", lexicalDiffer > 0);
    }
}
