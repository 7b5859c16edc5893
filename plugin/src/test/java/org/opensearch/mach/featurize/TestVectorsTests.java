package org.opensearch.mach.featurize;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.opensearch.mach.TestPaths;
import org.opensearch.test.OpenSearchTestCase;

import java.util.ArrayList;
import java.util.List;

/** Every case of spec/test-vectors.json, the cross-language contract with model-tools. */
public class TestVectorsTests extends OpenSearchTestCase {

    private static JsonNode vectors() throws Exception {
        return new ObjectMapper().readTree(TestPaths.testVectors().toFile());
    }

    public void testMurmur3() throws Exception {
        JsonNode cases = vectors().get("murmur3_x86_32");
        assertTrue("no murmur cases", cases.size() > 0);
        for (JsonNode c : cases) {
            String text = c.get("utf8").asText();
            long seed = c.get("seed").asLong();
            assertEquals("murmur3(" + text + ", " + seed + ")", c.get("hash_unsigned").asLong(), Murmur3.hashUnsigned(text, seed));
        }
    }

    public void testFeaturizer() throws Exception {
        JsonNode groups = vectors().get("featurizer");
        int checked = 0;
        for (JsonNode group : groups) {
            JsonNode spec = group.get("spec");
            assertEquals(Featurizer.NORMALIZATION, spec.get("normalization").asText());
            assertEquals(Featurizer.TOKENIZATION, spec.get("tokenization").asText());
            assertEquals(Featurizer.HASH, spec.get("hash").asText());
            Featurizer f = new Featurizer(spec.get("seed").asLong(), spec.get("dimension").asInt(), spec.get("max_features").asInt(),
                spec.get("padding_id").asInt());
            for (JsonNode c : group.get("cases")) {
                String text = c.get("text").asText();
                List<String> expectedFeatures = new ArrayList<>();
                c.get("features").forEach(n -> expectedFeatures.add(n.asText()));
                assertEquals("features of [" + text + "]", expectedFeatures, f.featureStrings(text));
                long[] expectedIds = new long[c.get("ids").size()];
                for (int i = 0; i < expectedIds.length; i++) {
                    expectedIds[i] = c.get("ids").get(i).asLong();
                }
                assertArrayEquals("ids of [" + text + "]", expectedIds, f.featureIds(text));
                long[] padded = f.paddedFeatureIds(text);
                assertEquals(f.maxFeatures(), padded.length);
                for (int i = expectedIds.length; i < padded.length; i++) {
                    assertEquals(f.paddingId(), padded[i]);
                }
                checked++;
            }
        }
        assertTrue("no featurizer cases", checked > 0);
    }

    public void testProductHash() throws Exception {
        JsonNode groups = vectors().get("product_hash");
        int checked = 0;
        for (JsonNode group : groups) {
            JsonNode spec = group.get("spec");
            assertEquals(ProductHash.FUNCTION, spec.get("function").asText());
            long[] seeds = new long[spec.get("seeds").size()];
            for (int i = 0; i < seeds.length; i++) {
                seeds[i] = spec.get("seeds").get(i).asLong();
            }
            ProductHash hash = new ProductHash(seeds, spec.get("buckets").asInt());
            for (JsonNode c : group.get("cases")) {
                String id = c.get("product_id").asText();
                int[] expected = new int[c.get("buckets").size()];
                for (int i = 0; i < expected.length; i++) {
                    expected[i] = c.get("buckets").get(i).asInt();
                }
                assertArrayEquals("buckets of [" + id + "]", expected, hash.bucketsOf(id));
                for (int r = 0; r < expected.length; r++) {
                    assertEquals(expected[r], hash.bucket(id, r));
                }
                checked++;
            }
        }
        assertTrue("no product hash cases", checked > 0);
    }
}
