package org.opensearch.mach.inference;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.EncoderBundleFixture;
import org.opensearch.mach.model.MachBundleException;
import org.opensearch.mach.model.MachModel;
import org.opensearch.mach.model.ModelCard;
import org.opensearch.mach.model.ModelRegistry;
import org.opensearch.test.OpenSearchTestCase;
import org.junit.AfterClass;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Format 2 bundles end to end: the real int8 all-MiniLM-L6-v2 encoder + tiny heads load, pass their
 * parity file, predict (alone and batched), share one encoder session, and every broken copy is
 * refused with a message naming the problem, leaking no session.
 */
public class EncoderBundleTests extends OpenSearchTestCase {
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final Decoder.Options TOP_10 = new Decoder.Options(10, Decoder.Strategy.EXACT, 10, 1, Decoder.ScoreMode.MEAN);

    /** Bundles built once per suite (their parity file costs two ONNX Runtime sessions); each test edits its own copy. */
    private static final Map<Boolean, Path> BUILT = new HashMap<>();

    @AfterClass
    public static void forgetBuilt() {
        BUILT.clear();
    }

    private Path bundle(boolean withFeatures) throws Exception {
        Path built = BUILT.get(withFeatures);
        if (built == null) {
            built = EncoderBundleFixture.build(createTempDir().resolve("v2"), withFeatures);
            BUILT.put(withFeatures, built);
        }
        Path dir = createTempDir().resolve("v2");
        Files.createDirectories(dir);
        for (String f : EncoderBundleFixture.FILES) {
            Files.copy(built.resolve(f), dir.resolve(f));
        }
        return dir;
    }

    public void testLoadsAndPredicts() throws Exception {
        int sessionsBefore = EncoderSession.openSessions();
        try (MachModel model = BundleLoader.load("v2", bundle(false), false)) {
            ModelCard card = model.card();
            assertEquals(2, card.formatVersion);
            assertEquals(ModelCard.Input.ENCODER, card.input);
            assertNull(model.featurizer());
            assertEquals("cpu", model.device());
            assertEquals(List.of("encoder.onnx", "model.onnx"), card.networkFiles());
            assertEquals(sessionsBefore + 1, EncoderSession.openSessions());

            Prediction p = MachInferenceService.predict(model, "crimson couch", TOP_10);
            assertEquals(10, p.size());
            float[][] probs = p.probabilities();
            assertEquals(EncoderBundleFixture.R, probs.length);
            for (float[] row : probs) {
                double sum = 0;
                for (float x : row) sum += x;
                assertEquals(1.0, sum, 1e-4);
            }
            // nothing to read: no products, like a format 1 text without features
            for (String blank : new String[] { "   ", "\u0000\u200b" }) {
                assertTrue(model.network().encode(blank).isEmpty());
                assertEquals(0, MachInferenceService.predict(model, blank, TOP_10).size());
            }
            assertFalse(model.network().encode("?").isEmpty()); // punctuation is a word piece
        }
        assertEquals("the encoder session closes with its last model", sessionsBefore, EncoderSession.openSessions());
    }

    /** The fp32 encoder (a different file: its own session) loads and passes its parity file too. */
    public void testFp32Encoder() throws Exception {
        try (MachModel model = BundleLoader.load("fp32", EncoderBundleFixture.build(createTempDir().resolve("v2"), false, "all-minilm-l6-v2"), false)) {
            assertEquals("fp32", model.card().encoder.variant());
            assertEquals(10, MachInferenceService.predict(model, "red sofa", TOP_10).size());
        }
    }

    /**
     * Low-rank int8 heads (mach_tools compress + quantize: MatMulInteger [384, 32] then [32, R*B]) load
     * and predict like the one-layer float heads they were made from, up to int8 rounding.
     */
    public void testLowRankInt8Heads() throws Exception {
        Path lowRank = EncoderBundleFixture.build(createTempDir().resolve("v2"), false, "all-minilm-l6-v2-q", "heads-low-rank-int8.onnx");
        try (MachModel low = BundleLoader.load("low-rank", lowRank, false); MachModel full = BundleLoader.load("full", bundle(false), false)) {
            int agree = 0, rows = 0;
            for (String text : EncoderBundleFixture.HAND_CHECKED_IDS.keySet()) {
                float[][] a = MachInferenceService.predict(low, text, TOP_10).probabilities();
                float[][] b = MachInferenceService.predict(full, text, TOP_10).probabilities();
                for (int r = 0; r < EncoderBundleFixture.R; r++, rows++) {
                    for (int k = 0; k < EncoderBundleFixture.B; k++) {
                        assertEquals(text + " r" + r + " b" + k, b[r][k], a[r][k], 0.15);
                    }
                    agree += argmax(a[r]) == argmax(b[r]) ? 1 : 0;
                }
            }
            assertTrue(agree + " of " + rows + " top buckets agree", agree >= rows * 3 / 4);
        }
    }

    private static int argmax(float[] row) {
        int best = 0;
        for (int k = 1; k < row.length; k++) {
            if (row[k] > row[best]) best = k;
        }
        return best;
    }

    /** The pooled embeddings are the sentence encoder's: unit length, and closer for synonyms than for unrelated text. */
    public void testEmbeddingsAreSentenceEmbeddings() throws Exception {
        try (MachModel model = BundleLoader.load("v2", bundle(false), false)) {
            EncoderNetwork network = (EncoderNetwork) model.network();
            float[][] e = network.embed(List.of(
                network.encode("crimson couch"), network.encode("red sofa"), network.encode("cordless drill with two batteries")));
            for (float[] v : e) assertEquals(1.0, dot(v, v), 1e-5);
            double synonyms = dot(e[0], e[1]);
            double unrelated = dot(e[0], e[2]);
            assertTrue("cos(crimson couch, red sofa) = " + synonyms + " vs cordless drill " + unrelated, synonyms > unrelated + 0.2);
        }
    }

    /** A batch gives each text exactly what it gets alone (the encoder runs once per text, the heads once per batch). */
    public void testBatchEqualsSingleQueries() throws Exception {
        for (boolean withFeatures : new boolean[] { false, true }) {
            try (MachModel model = BundleLoader.load("v2", bundle(withFeatures), false)) {
                List<String> texts = List.of("sofa", "Crimson COUCH!", "a long query about a comfortable three seat sofa in dark red velvet", "Café sofas");
                List<QueryInput> inputs = new ArrayList<>();
                for (String t : texts) inputs.add(model.network().encode(t));
                float[][][] batch = MachInference.probabilities(model, inputs);
                for (int i = 0; i < texts.size(); i++) {
                    float[][] single = MachInference.probabilities(model, texts.get(i));
                    for (int r = 0; r < single.length; r++) {
                        assertArrayEquals(texts.get(i) + " repetition " + r, single[r], batch[i][r], 1e-6f);
                    }
                }
            }
        }
    }

    public void testEncoderPlusFeatures() throws Exception {
        try (MachModel model = BundleLoader.load("v2f", bundle(true), false)) {
            assertEquals(ModelCard.Input.ENCODER_AND_FEATURES, model.card().input);
            QueryInput in = model.network().encode("Crimson COUCH!");
            assertArrayEquals(new int[] { 101, 11466, 6411, 999, 102 }, in.tokenIds());
            assertArrayEquals(model.featurizer().featureIds("Crimson COUCH!"), in.featureIds());
            assertEquals(10, MachInferenceService.predict(model, "crimson couch", TOP_10).size());
            assertEquals(0, MachInferenceService.predict(model, " \t ", TOP_10).size());
        }
    }

    /** Models with the same encoder file share one session, which closes with the last of them. */
    public void testModelsShareTheEncoderSession() throws Exception {
        int before = EncoderSession.openSessions();
        MachModel a = BundleLoader.load("a", bundle(false), false);
        MachModel b = BundleLoader.load("b", bundle(true), false);
        assertEquals(before + 1, EncoderSession.openSessions());
        a.close();
        assertEquals(before + 1, EncoderSession.openSessions());
        assertEquals(10, MachInferenceService.predict(b, "red sofa", TOP_10).size());
        b.close();
        assertEquals(before, EncoderSession.openSessions());
    }

    /** Cache keys: the token ids, so case, accents and spacing fold; punctuation (a word piece) does not. */
    public void testInputKey() throws Exception {
        try (MachModel model = BundleLoader.load("v2", bundle(false), false)) {
            QueryNetwork n = model.network();
            assertEquals(n.inputKey("crimson couch!"), n.inputKey("  Crimson   CÕUCH !"));
            assertNotEquals(n.inputKey("crimson couch"), n.inputKey("crimson couch!"));
        }
    }

    public void testZippedBundleInRegistry() throws Exception {
        Path models = createTempDir();
        Path dir = bundle(false);
        // the bundle's files only: the test file system may add extra entries to temp directories
        try (java.util.zip.ZipOutputStream out = new java.util.zip.ZipOutputStream(Files.newOutputStream(models.resolve("v2.zip")))) {
            for (String f : EncoderBundleFixture.FILES) {
                out.putNextEntry(new java.util.zip.ZipEntry(f));
                Files.copy(dir.resolve(f), out);
                out.closeEntry();
            }
        }
        try (ModelRegistry registry = new ModelRegistry(models, false)) {
            MachModel m = registry.get("v2");
            assertEquals(2, m.card().formatVersion);
            assertEquals(10, MachInferenceService.predict(m, "red sofa", TOP_10).size()); // the sessions outlive the extracted files
        }
    }

    // ---- refusals: each names the problem, and no encoder session is left open

    private String loadError(Path dir) {
        int before = EncoderSession.openSessions();
        MachBundleException e = expectThrows(MachBundleException.class, () -> BundleLoader.load("t", dir, false).close());
        assertEquals("a refused bundle leaves no encoder session open", before, EncoderSession.openSessions());
        return e.getMessage();
    }

    private static void edit(Path dir, String file, Consumer<ObjectNode> edit) throws Exception {
        ObjectNode json = (ObjectNode) MAPPER.readTree(dir.resolve(file).toFile());
        edit.accept(json);
        MAPPER.writeValue(dir.resolve(file).toFile(), json);
        if (!file.equals(ModelCard.CARD_FILE)) rehash(dir, file);
    }

    private static void rehash(Path dir, String file) throws Exception {
        String sha = BundleLoader.sha256(dir.resolve(file));
        edit(dir, ModelCard.CARD_FILE, c -> ((ObjectNode) c.get("files")).put(file, sha));
    }

    public void testTokenizerMismatchIsRefused() throws Exception {
        Path dir = bundle(false);
        edit(dir, "parity.json", p -> ((ArrayNode) p.get("cases").get(1).get("token_ids")).set(1, 7669));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("parity.json case 1 [Café sofas]: the plugin's tokenizer gives [101, 7668, 10682, 2015, 102]"));
        assertTrue(msg, msg.contains("the trainer gave [101, 7669, 10682, 2015, 102] (tokenizer mismatch)"));
    }

    public void testProbabilityMismatchIsRefused() throws Exception {
        Path dir = bundle(false);
        edit(dir, "parity.json", p -> {
            ArrayNode probs = (ArrayNode) p.get("cases").get(0).get("top_probs").get(2);
            probs.set(0, probs.get(0).asDouble() - 0.01);
        });
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("parity.json case 0 [Crimson COUCH!]: repetition 2") && msg.contains("(tolerance 0.002)"));
    }

    public void testMissingTokenIdsIsRefused() throws Exception {
        Path dir = bundle(false);
        edit(dir, "parity.json", p -> ((ObjectNode) p.get("cases").get(0)).remove("token_ids"));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("[token_ids] must be an array (encoder bundles)"));
    }

    public void testHeadsWithoutTheFeatureInputAreRefused() throws Exception {
        Path dir = bundle(true);
        Files.copy(bundle(false).resolve("model.onnx"), dir.resolve("model.onnx"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        rehash(dir, "model.onnx");
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("[model.onnx]: inputs are [embedding], mach.json onnx.inputs names expects exactly [embedding, feature_ids]"));
    }

    public void testEncoderOutputNameIsChecked() throws Exception {
        Path dir = bundle(false);
        edit(dir, ModelCard.CARD_FILE, c -> ((ObjectNode) c.get("encoder")).put("onnx_output", "pooler_output"));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("[encoder.onnx]: outputs are") && msg.contains("encoder.onnx_output expects [pooler_output]"));
    }

    public void testEncoderDimensionIsChecked() throws Exception {
        // a consistent card for a 768-wide encoder against the 384-wide one
        Path dir = bundle(false);
        edit(dir, ModelCard.CARD_FILE, c -> {
            ((ObjectNode) c.get("encoder")).put("dimension", 768);
            ((ArrayNode) c.get("onnx").get("inputs").get(0).get("shape")).set(1, 768);
        });
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("[encoder.onnx]: output [last_hidden_state] has shape [-1, -1, 384], mach.json expects [-1, -1, 768]"));
    }

    public void testVocabularyIsChecked() throws Exception {
        Path dir = bundle(false);
        String vocab = Files.readString(dir.resolve("vocab.txt"), StandardCharsets.UTF_8);
        Files.writeString(dir.resolve("vocab.txt"), vocab.replace("\n[CLS]\n", "\n[CLX]\n"), StandardCharsets.UTF_8);
        rehash(dir, "vocab.txt");
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("[vocab.txt]: cls_token [[CLS]] is not in the vocabulary"));

        Path dir2 = bundle(false);
        edit(dir2, ModelCard.CARD_FILE, c -> ((ObjectNode) c.get("encoder").get("tokenizer")).put("pad_id", 30522));
        msg = loadError(dir2);
        assertTrue(msg, msg.contains("encoder.tokenizer.pad_id [30522] is not an id of [vocab.txt] (30522 tokens)"));
    }

    public void testMissingEncoderFile() throws Exception {
        Path dir = bundle(false);
        Files.delete(dir.resolve("encoder.onnx"));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("missing file [encoder.onnx]"));
    }

    private static double dot(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }
}
