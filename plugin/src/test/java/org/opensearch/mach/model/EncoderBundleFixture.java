package org.opensearch.mach.model;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.opensearch.mach.TestPaths;
import org.opensearch.mach.featurize.Featurizer;
import org.opensearch.mach.featurize.WordPieceTokenizer;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Format 2 test bundles: the int8 all-MiniLM-L6-v2 encoder the build unpacks, its vocabulary as
 * vocab.txt, a tiny heads graph (fixtures/encoder-heads, made by make_heads.py: R = 4, B = 8), the
 * tiny fixture's 300 product ids, a card, and a parity file whose expectations are computed here
 * apart from the plugin's query path: hand-checked token ids (looked up in vocab.txt), the
 * encoder and heads run one text at a time, pooling written out below.
 */
public final class EncoderBundleFixture {
    public static final int R = 4;
    public static final int B = 8;
    public static final int DIMENSION = 384;
    /** the featurizer of the encoder+features heads: D = 64, L = 16 */
    public static final int FEATURE_DIMENSION = 64;
    public static final int MAX_FEATURES = 16;
    /** every file of a bundle {@link #build} writes */
    public static final List<String> FILES = List.of(ModelCard.CARD_FILE, "encoder.onnx", "vocab.txt", "model.onnx", "labels.txt", "parity.json");

    /** Texts and their ids as read off vocab.txt by hand: café -> cafe (accents stripped), sofas -> sofa ##s. */
    public static final Map<String, long[]> HAND_CHECKED_IDS = new LinkedHashMap<>();
    static {
        HAND_CHECKED_IDS.put("Crimson COUCH!", new long[] { 101, 11466, 6411, 999, 102 });
        HAND_CHECKED_IDS.put("Café sofas", new long[] { 101, 7668, 10682, 2015, 102 });
        HAND_CHECKED_IDS.put("red sofa", new long[] { 101, 2417, 10682, 102 });
    }

    private static final ObjectMapper MAPPER = new ObjectMapper();

    private EncoderBundleFixture() {}

    /** A valid format 2 card (file checksums are placeholders until {@link #build} writes the files). */
    public static ObjectNode card(boolean withFeatures) throws Exception {
        String json = """
            {
             "format_version": 2, "name": "tiny-encoder", "created": "2026-11-29T00:00:00Z", "R": 4, "B": 8, "H": 384,
             "product_hash": {"function": "murmur3_x86_32", "encoding": "utf-8", "buckets": 8,
                              "seeds": [1296122696, 1296130615, 1296138534, 1296146453]},
             "input": "encoder",
             "encoder": {
               "file": "encoder.onnx", "name": "all-MiniLM-L6-v2", "variant": "int8", "dimension": 384,
               "pooling": "mean", "normalize": "l2",
               "onnx_inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask", "token_type_ids": "token_type_ids"},
               "onnx_output": "last_hidden_state",
               "tokenizer": {"kind": "bert_wordpiece", "vocab": "vocab.txt", "clean_text": true, "handle_chinese_chars": true,
                             "lowercase": true, "strip_accents": true, "unk_token": "[UNK]", "cls_token": "[CLS]",
                             "sep_token": "[SEP]", "pad_id": 0, "max_tokens": 128, "max_input_chars_per_word": 100}
             },
             "onnx": {"file": "model.onnx", "opset": 17,
                      "inputs": [{"name": "embedding", "dtype": "float32", "shape": [-1, 384]}],
                      "output": {"name": "probabilities", "dtype": "float32", "shape": [-1, 4, 8]}},
             "labels": {"file": "labels.txt", "count": 300},
             "training": {"note": "test fixture: random heads"},
             "files": {}
            }
            """;
        ObjectNode card = (ObjectNode) MAPPER.readTree(json);
        if (withFeatures) {
            card.put("input", "encoder+features");
            card.set("featurizer", MAPPER.readTree("""
                {"normalization": "nfkc_lower", "tokenization": "unicode_letter_number_runs",
                 "features": ["word", "word_bigram", "char_trigram"], "hash": "murmur3_x86_32",
                 "seed": 24301, "dimension": 64, "max_features": 16, "padding_id": 0}
                """));
            ((ArrayNode) card.get("onnx").get("inputs")).add(MAPPER.readTree("""
                {"name": "feature_ids", "dtype": "int64", "shape": [-1, 16]}
                """));
        }
        String zeros = "0".repeat(64);
        ObjectNode files = (ObjectNode) card.get("files");
        for (String f : List.of("encoder.onnx", "vocab.txt", "model.onnx", "labels.txt")) {
            files.put(f, zeros);
        }
        return card;
    }

    /** Writes a complete, valid format 2 bundle with the int8 encoder into {@code dir} (created if needed) and returns it. */
    public static Path build(Path dir, boolean withFeatures) throws Exception {
        return build(dir, withFeatures, "all-minilm-l6-v2-q");
    }

    /** @param encoder the encoder directory: {@code all-minilm-l6-v2-q} (int8) or {@code all-minilm-l6-v2} (fp32) */
    public static Path build(Path dir, boolean withFeatures, String encoder) throws Exception {
        return build(dir, withFeatures, encoder, withFeatures ? "heads-features.onnx" : "heads.onnx");
    }

    /** @param headsFile a graph of fixtures/encoder-heads, e.g. {@code heads-low-rank-int8.onnx} (same input and output as heads.onnx) */
    public static Path build(Path dir, boolean withFeatures, String encoder, String headsFile) throws Exception {
        Files.createDirectories(dir);
        Path encoderDir = TestPaths.encoderDir(encoder);
        Files.copy(encoderDir.resolve("encoder.onnx"), dir.resolve("encoder.onnx"));
        List<String> vocab = WordPieceTokenizer.readTokenizerJson(encoderDir.resolve("tokenizer.json"));
        Files.writeString(dir.resolve("vocab.txt"), String.join("\n", vocab) + "\n", StandardCharsets.UTF_8);
        Path heads = TestPaths.projectRoot().resolve("plugin/src/test/resources/fixtures/encoder-heads").resolve(headsFile);
        Files.copy(heads, dir.resolve("model.onnx"));
        Files.copy(TestPaths.tinyFixture().resolve("bundle/labels.txt"), dir.resolve("labels.txt"));

        ObjectNode card = card(withFeatures);
        ((ObjectNode) card.get("encoder")).put("variant", encoder.endsWith("-q") ? "int8" : "fp32");
        Files.write(dir.resolve("parity.json"), MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(parity(dir, withFeatures)));
        ObjectNode files = (ObjectNode) card.get("files");
        for (String f : List.of("encoder.onnx", "vocab.txt", "model.onnx", "labels.txt", "parity.json")) {
            files.put(f, BundleLoader.sha256(dir.resolve(f)));
        }
        MAPPER.writerWithDefaultPrettyPrinter().writeValue(dir.resolve(ModelCard.CARD_FILE).toFile(), card);
        return dir;
    }

    private static ObjectNode parity(Path dir, boolean withFeatures) throws Exception {
        ObjectNode parity = MAPPER.createObjectNode();
        parity.put("tolerance", 0.002);
        parity.put("top", 5);
        ArrayNode cases = parity.putArray("cases");
        Featurizer featurizer = new Featurizer(24301, FEATURE_DIMENSION, MAX_FEATURES, 0);
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (
            OrtSession encoder = env.createSession(dir.resolve("encoder.onnx").toString());
            OrtSession heads = env.createSession(dir.resolve("model.onnx").toString())
        ) {
            for (Map.Entry<String, long[]> e : HAND_CHECKED_IDS.entrySet()) {
                long[] featureIds = withFeatures ? featurizer.featureIds(e.getKey()) : null;
                float[][] probs = probabilities(env, encoder, heads, e.getValue(), featureIds == null ? null : featurizer.pad(featureIds));
                ObjectNode c = cases.addObject();
                c.put("text", e.getKey());
                ArrayNode tokenIds = c.putArray("token_ids");
                for (long id : e.getValue()) tokenIds.add(id);
                if (featureIds != null) {
                    ArrayNode ids = c.putArray("feature_ids");
                    for (long id : featureIds) ids.add(id);
                }
                ArrayNode topBuckets = c.putArray("top_buckets");
                ArrayNode topProbs = c.putArray("top_probs");
                for (float[] row : probs) {
                    Integer[] order = new Integer[row.length];
                    for (int b = 0; b < order.length; b++) order[b] = b;
                    Arrays.sort(order, (a, b) -> Float.compare(row[b], row[a]));
                    ArrayNode bs = topBuckets.addArray();
                    ArrayNode ps = topProbs.addArray();
                    for (int i = 0; i < 5; i++) {
                        bs.add(order[i]);
                        ps.add(row[order[i]]);
                    }
                }
            }
        }
        return parity;
    }

    /**
     * One text, no padding: the encoder's hidden states averaged over all tokens (every one is
     * real), L2-normalized, through the heads: [R][B].
     */
    public static float[][] probabilities(OrtEnvironment env, OrtSession encoder, OrtSession heads, long[] tokenIds, long[] paddedFeatureIds)
        throws Exception {
        long[][] ids = { tokenIds };
        long[][] mask = { new long[tokenIds.length] };
        Arrays.fill(mask[0], 1);
        long[][] types = { new long[tokenIds.length] };
        float[] embedding = new float[DIMENSION];
        try (
            OnnxTensor a = OnnxTensor.createTensor(env, ids);
            OnnxTensor m = OnnxTensor.createTensor(env, mask);
            OnnxTensor t = OnnxTensor.createTensor(env, types);
            OrtSession.Result r = encoder.run(Map.of("input_ids", a, "attention_mask", m, "token_type_ids", t), Set.of("last_hidden_state"))
        ) {
            float[][] hidden = ((float[][][]) r.get(0).getValue())[0];
            for (float[] token : hidden) {
                for (int k = 0; k < DIMENSION; k++) embedding[k] += token[k] / hidden.length;
            }
        }
        float norm = 0;
        for (float x : embedding) norm += x * x;
        norm = (float) Math.sqrt(norm);
        for (int k = 0; k < DIMENSION; k++) embedding[k] /= norm;
        try (OnnxTensor emb = OnnxTensor.createTensor(env, new float[][] { embedding })) {
            if (paddedFeatureIds == null) {
                try (OrtSession.Result r = heads.run(Map.of("embedding", emb))) {
                    return ((float[][][]) r.get(0).getValue())[0];
                }
            }
            try (
                OnnxTensor f = OnnxTensor.createTensor(env, new long[][] { paddedFeatureIds });
                OrtSession.Result r = heads.run(Map.of("embedding", emb, "feature_ids", f))
            ) {
                return ((float[][][]) r.get(0).getValue())[0];
            }
        }
    }
}
