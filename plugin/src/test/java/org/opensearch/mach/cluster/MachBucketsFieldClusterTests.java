package org.opensearch.mach.cluster;

import com.fasterxml.jackson.databind.JsonNode;

import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.test.OpenSearchIntegTestCase;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The mach_buckets field in a real (in-JVM) cluster through HTTP: filled by copy_to from the product-id
 * keyword at bulk time, re-hashed when a document's product id changes, gone with the document, absent
 * for documents without a product id, and the 400s of a bad mapping or a two-product document.
 * (_reindex is not tested: the reindex module is not a dependency of this build.)
 */
@OpenSearchIntegTestCase.ClusterScope(scope = OpenSearchIntegTestCase.Scope.SUITE, numDataNodes = 2, numClientNodes = 0, supportsDedicatedMasters = false)
public class MachBucketsFieldClusterTests extends MachClusterTestCase {
    private static final String FAMILY = "murmur3_x86_32-r16-b4096-s1296122696";
    private static final HashFamily F = HashFamily.parse(FAMILY);
    private static final String IDX = "bucketed";

    private static String mapping(String family) {
        return "{\"settings\": {\"number_of_shards\": 3, \"number_of_replicas\": 1}, \"mappings\": {\"properties\": {"
            + "\"product_id\": {\"type\": \"keyword\", \"copy_to\": \"buckets\"}, \"title\": {\"type\": \"text\"},"
            + "\"buckets\": {\"type\": \"mach_buckets\", \"hash_family\": \"" + family + "\"}}}}";
    }

    private static long count(String query) throws IOException {
        return rest("POST", "/" + IDX + "/_count", "{\"query\": " + query + "}", 200).path("count").asLong();
    }

    private static long productCount(String productId) throws IOException {
        return count("{\"term\": {\"buckets\": \"" + productId + "\"}}");
    }

    /** The document's codes from docvalue_fields. */
    private static int[] codes(String docId) throws IOException {
        JsonNode hits = rest(
            "POST",
            "/" + IDX + "/_search",
            "{\"query\": {\"ids\": {\"values\": [\"" + docId + "\"]}}, \"docvalue_fields\": [\"buckets\"], \"_source\": false}",
            200
        ).path("hits").path("hits");
        assertEquals(1, hits.size());
        JsonNode values = hits.get(0).path("fields").path("buckets");
        int[] out = new int[values.size()];
        for (int i = 0; i < out.length; i++) out[i] = values.get(i).asInt();
        return out;
    }

    public void testIndexUpdateDelete() throws IOException {
        rest("PUT", "/" + IDX, mapping(FAMILY), 200);
        ensureGreen(IDX);
        StringBuilder bulk = new StringBuilder();
        List<String> products = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            String p = "P-" + i;
            products.add(p);
            bulk.append("{\"index\": {\"_id\": \"").append(i).append("\"}}\n");
            bulk.append("{\"product_id\": \"").append(p).append("\", \"title\": \"thing ").append(i).append("\"}\n");
        }
        bulk.append("{\"index\": {\"_id\": \"no-product\"}}\n{\"title\": \"a banner, not a product\"}\n");
        bulk.append("{\"index\": {\"_id\": \"null-product\"}}\n{\"product_id\": null, \"title\": \"another banner\"}\n");
        JsonNode resp = rest("POST", "/" + IDX + "/_bulk?refresh=true", bulk.toString(), 200);
        assertFalse(resp.toString(), resp.path("errors").asBoolean());

        assertEquals(52, count("{\"match_all\": {}}"));
        assertEquals(50, count("{\"exists\": {\"field\": \"buckets\"}}"));
        for (String p : products.subList(0, 10)) {
            assertEquals(p, 1, productCount(p));
        }
        assertArrayEquals(F.codesOf("P-7"), codes("7"));
        assertEquals(0, codes("no-product").length);

        // a new product id re-hashes the document
        rest("PUT", "/" + IDX + "/_doc/7?refresh=true", "{\"product_id\": \"Q-7\", \"title\": \"renamed\"}", 200);
        assertArrayEquals(F.codesOf("Q-7"), codes("7"));
        assertEquals(0, productCount("P-7"));
        assertEquals(1, productCount("Q-7"));
        // a partial update that leaves the product id keeps the codes
        rest("POST", "/" + IDX + "/_update/8?refresh=true", "{\"doc\": {\"title\": \"retitled\"}}", 200);
        assertArrayEquals(F.codesOf("P-8"), codes("8"));

        rest("DELETE", "/" + IDX + "/_doc/9?refresh=true", null, 200);
        assertEquals(0, productCount("P-9"));
        assertEquals(49, count("{\"exists\": {\"field\": \"buckets\"}}"));

        // one product per document: the bulk item is a 400, the rest of the bulk goes in
        String two = "{\"index\": {\"_id\": \"two\"}}\n{\"product_id\": [\"A\", \"B\"]}\n{\"index\": {\"_id\": \"one\"}}\n{\"product_id\": \"C\"}\n";
        resp = rest("POST", "/" + IDX + "/_bulk?refresh=true", two, 200);
        assertTrue(resp.path("errors").asBoolean());
        JsonNode failed = resp.path("items").get(0).path("index");
        assertEquals(400, failed.path("status").asInt());
        assertTrue(failed.toString(), failed.path("error").toString().contains("a document is one product"));
        assertEquals(201, resp.path("items").get(1).path("index").path("status").asInt());
        assertEquals(1, productCount("C"));
    }

    public void testMappingErrors() throws IOException {
        JsonNode e = rest("PUT", "/bad-family", mapping("murmur3_x86_32-r16-b4096"), 400);
        assertTrue(e.toString(), e.toString().contains("field [buckets]: parameter [hash_family]"));
        e = rest("PUT", "/no-family", "{\"mappings\": {\"properties\": {\"buckets\": {\"type\": \"mach_buckets\"}}}}", 400);
        assertTrue(e.toString(), e.toString().contains("parameter [hash_family] is required"));

        rest("PUT", "/family-fixed", mapping(FAMILY), 200);
        e = rest(
            "PUT",
            "/family-fixed/_mapping",
            "{\"properties\": {\"buckets\": {\"type\": \"mach_buckets\", \"hash_family\": \"murmur3_x86_32-r32-b20000-s1296122696\"}}}",
            400
        );
        assertTrue(e.toString(), e.toString().contains("Cannot update parameter [hash_family]"));
    }
}
