package org.opensearch.mach.featurize;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.opensearch.mach.TestPaths;
import org.opensearch.test.OpenSearchTestCase;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
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
                // the ONNX input row, built from the vector's ids and the spec: the ids first, then padding_id to max_features
                long[] expectedRow = new long[spec.get("max_features").asInt()];
                for (int i = 0; i < expectedRow.length; i++) {
                    expectedRow[i] = i < expectedIds.length ? expectedIds[i] : spec.get("padding_id").asLong();
                }
                assertArrayEquals("padded ids of [" + text + "]", expectedRow, f.paddedFeatureIds(text));
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

    /**
     * The "hash_family" section (index-side MACH): a family name gives R, B, the seeds and each product's
     * R index-time codes r * B + b, and the names both readers must refuse.
     */
    public void testHashFamily() throws Exception {
        JsonNode section = vectors().get("hash_family");
        int checked = 0;
        for (JsonNode group : section.get("families")) {
            String name = group.get("name").asText();
            HashFamily family = HashFamily.parse(name);
            assertEquals(name, family.name());
            assertEquals(name, group.get("R").asInt(), family.repetitions());
            assertEquals(name, group.get("B").asInt(), family.buckets());
            long[] seeds = new long[group.get("seeds").size()];
            for (int i = 0; i < seeds.length; i++) {
                seeds[i] = group.get("seeds").get(i).asLong();
            }
            assertArrayEquals("seeds of " + name, seeds, family.seeds());
            assertEquals(family, HashFamily.of(seeds, family.buckets()));
            for (JsonNode c : group.get("cases")) {
                String id = c.get("product_id").asText();
                int[] expected = new int[c.get("codes").size()];
                for (int i = 0; i < expected.length; i++) {
                    expected[i] = c.get("codes").get(i).asInt();
                }
                assertArrayEquals("codes of [" + id + "] in " + name, expected, family.codesOf(id));
                int[] buckets = family.productHash().bucketsOf(id);
                for (int r = 0; r < buckets.length; r++) {
                    assertEquals(expected[r], family.code(r, buckets[r]));
                }
                checked++;
            }
        }
        assertTrue("no hash family cases", checked > 0);
        int refused = 0;
        for (JsonNode bad : section.get("bad_names")) {
            expectThrows(IllegalArgumentException.class, () -> HashFamily.parse(bad.asText()));
            refused++;
        }
        assertTrue("no bad family names", refused > 0);
    }

    /**
     * The "wordpiece" section (model-tools' tokenizer against the vocabulary of the unpacked
     * all-MiniLM-L6-v2 encoder): tokens without [CLS] / [SEP] and not truncated, ids with them,
     * truncated to max_tokens. Skipped while the file has no such section.
     */
    public void testWordPiece() throws Exception {
        JsonNode section = vectors().get("wordpiece");
        assumeTrue("spec/test-vectors.json has no wordpiece section yet", section != null);
        Path json = TestPaths.encoderDir("all-minilm-l6-v2-q").resolve("tokenizer.json");
        List<String> vocab = WordPieceTokenizer.readTokenizerJson(json);
        byte[] vocabTxt = (String.join("\n", vocab) + "\n").getBytes(StandardCharsets.UTF_8);
        String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(vocabTxt));
        assertEquals("vocab_sha256 (vocab.txt written from tokenizer.json)", section.get("vocab_sha256").asText(), sha);
        WordPieceTokenizer tokenizer = new WordPieceTokenizer(vocab, "[UNK]", "[CLS]", "[SEP]", section.get("max_tokens").asInt(), 100);
        int checked = 0;
        for (JsonNode c : section.get("cases")) {
            String text = c.get("text").asText();
            List<String> tokens = new ArrayList<>();
            c.get("tokens").forEach(n -> tokens.add(n.asText()));
            assertEquals("tokens of [" + text + "]", tokens, tokenizer.tokens(text));
            int[] ids = new int[c.get("ids").size()];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = c.get("ids").get(i).asInt();
            }
            assertArrayEquals("ids of [" + text + "]", ids, tokenizer.ids(text));
            checked++;
        }
        assertTrue("no wordpiece cases", checked > 0);
    }

    /**
     * The aggregation cases: the catalog decoder (exact) gives every product its mean and log_mean score, and an
     * exact bucket table (every bucket sent) the same floors and log_mean scores from its dense lookup.
     */
    public void testAggregation() throws Exception {
        JsonNode section = vectors().get("aggregation");
        assertNotNull("spec/test-vectors.json has no aggregation section", section);
        int checked = 0;
        for (JsonNode c : section.get("cases")) {
            String name = c.get("name").asText();
            int R = c.get("R").asInt(), B = c.get("B").asInt();
            float[][] probs = new float[R][B];
            for (int r = 0; r < R; r++) for (int b = 0; b < B; b++) probs[r][b] = (float) c.get("probabilities").get(r).get(b).asDouble();
            JsonNode products = c.get("product_buckets");
            int K = products.size();
            int[][] bucketOf = new int[R][K];
            for (int k = 0; k < K; k++) for (int r = 0; r < R; r++) bucketOf[r][k] = products.get(k).get(r).asInt();
            org.opensearch.mach.model.ProductIndex index = new org.opensearch.mach.model.ProductIndex(bucketOf, B);
            org.opensearch.mach.query.BucketTable table = org.opensearch.mach.query.BucketTable.of(probs, B)
                .withAggregation(org.opensearch.mach.inference.Aggregation.LOG_MEAN);
            float[] dense = table.dense();
            for (int r = 0; r < R; r++) {
                double f = c.get("floors").get(r).asDouble();
                assertEquals(name + " floor " + r, f, table.floor(r), 1e-6 * f);
            }
            org.opensearch.mach.inference.Decoder.Options all = new org.opensearch.mach.inference.Decoder.Options(
                K, org.opensearch.mach.inference.Decoder.Strategy.EXACT, 1, 1, org.opensearch.mach.inference.Decoder.ScoreMode.MEAN
            );
            for (org.opensearch.mach.inference.Aggregation a : org.opensearch.mach.inference.Aggregation.values()) {
                org.opensearch.mach.inference.Decoder.Result res = org.opensearch.mach.inference.Decoder.decode(index, probs, all, a);
                assertEquals(K, res.products().length);
                for (int i = 0; i < K; i++) {
                    int k = res.products()[i];
                    assertEquals(name + " " + a.value() + " product " + k, c.get(a.value()).get(k).asDouble(), res.scores()[i], 1e-5);
                }
            }
            for (int k = 0; k < K; k++) {
                double sum = 0;
                for (int r = 0; r < R; r++) sum += dense[r * B + bucketOf[r][k]];
                assertEquals(name + " table log_mean product " + k, c.get("log_mean").get(k).asDouble(), sum / R, 1e-5);
                checked++;
            }
        }
        assertTrue("aggregation cases checked: " + checked, checked >= 20);
    }
}
