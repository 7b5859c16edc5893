package org.opensearch.mach.model;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.opensearch.mach.featurize.Featurizer;
import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.mach.featurize.ProductHash;
import org.opensearch.mach.featurize.WordPieceTokenizer;
import org.opensearch.mach.inference.Aggregation;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The bundle card {@code mach.json} (spec/bundle-format.md, format_version 1 and 2), parsed with
 * Jackson and checked for internal consistency. File-level checks (checksums, ONNX shapes, labels) are in {@link BundleLoader}.
 */
public final class ModelCard {
    /** format_version 1: hashed n-gram features in; 2: a sentence encoder in front of the heads. */
    public static final int FORMAT_VERSION = 2;
    public static final String CARD_FILE = "mach.json";
    public static final String PARITY_FILE = "parity.json";

    private static final ObjectMapper MAPPER = new ObjectMapper();

    /** What the network reads of a query. */
    public enum Input {
        /** format 1: hashed feature ids */
        FEATURES(null),
        /** format 2: the sentence embedding */
        ENCODER("encoder"),
        /** format 2: the sentence embedding and the hashed feature ids */
        ENCODER_AND_FEATURES("encoder+features");

        /** the card's {@code input} value (format 2) */
        public final String cardName;

        Input(String cardName) {
            this.cardName = cardName;
        }

        public boolean usesFeatures() {
            return this != ENCODER;
        }

        public boolean usesEncoder() {
            return this != FEATURES;
        }
    }

    /**
     * The sentence encoder of a format 2 card ({@code encoder}): its ONNX file, tensor names and
     * tokenizer. Pooling is mean over the attention mask, then L2 normalization: the only kind read.
     */
    public record Encoder(
        String file,
        String name,
        String variant,
        int dimension,
        String inputIds,
        String attentionMask,
        String tokenTypeIds,
        String output,
        Tokenizer tokenizer
    ) {}

    /** The encoder's {@code bert_wordpiece} tokenizer (normalization flags all true: the only kind read). */
    public record Tokenizer(String vocab, String unkToken, String clsToken, String sepToken, int padId, int maxTokens, int maxInputCharsPerWord) {
        public WordPieceTokenizer create(List<String> vocabulary) {
            return new WordPieceTokenizer(vocabulary, unkToken, clsToken, sepToken, maxTokens, maxInputCharsPerWord);
        }
    }

    public final int formatVersion;
    public final String name;
    public final int repetitions;
    public final int buckets;
    public final long[] productHashSeeds;
    /** The product hash as a named family (spec: "Hash families"), or null when its seeds are not a family's. */
    public final HashFamily hashFamily;
    public final Input input;
    /** How the repetitions' probabilities make a product's score ({@code aggregation}; absent: mean): the estimator the heads were trained for. */
    public final Aggregation aggregation;
    /** the featurizer's fields are set only when {@link Input#usesFeatures()} */
    public final long featurizerSeed;
    public final int dimension;
    public final int maxFeatures;
    public final int paddingId;
    /** only when {@link Input#usesEncoder()}, else null */
    public final Encoder encoder;
    /** the heads network (format 1: the whole network) */
    public final String onnxFile;
    /** the feature ids input of the network, null when it has none */
    public final String inputName;
    /** the sentence embedding input of the heads, null in format 1 */
    public final String embeddingInputName;
    public final String outputName;
    /** null when the bundle has no catalog (a hash-family model for index-side queries only) */
    public final String labelsFile;
    /** 0 when the bundle has no catalog */
    public final int labelCount;
    /** file name -> sha256 hex */
    public final Map<String, String> files;
    /** the card as read, for display */
    public final JsonNode raw;

    private ModelCard(JsonNode root) throws MachBundleException {
        this.raw = root;
        this.formatVersion = intField(root, "format_version");
        if (formatVersion != 1 && formatVersion != 2) {
            throw new MachBundleException(
                "mach.json: unknown format_version [" + formatVersion + "]; this plugin reads format_version 1 and 2"
            );
        }
        this.name = root.path("name").asText("");
        this.repetitions = intField(root, "R");
        this.buckets = intField(root, "B");
        if (repetitions < 1) throw new MachBundleException("mach.json: R must be >= 1, found " + repetitions);
        if (buckets < 2) throw new MachBundleException("mach.json: B must be >= 2, found " + buckets);

        JsonNode ph = object(root, "product_hash");
        expectText(ph, "product_hash.function", "function", ProductHash.FUNCTION);
        if (ph.has("encoding")) expectText(ph, "product_hash.encoding", "encoding", "utf-8");
        int phBuckets = intField(ph, "buckets", "product_hash.buckets");
        if (phBuckets != buckets) {
            throw new MachBundleException("mach.json: product_hash.buckets [" + phBuckets + "] must equal B [" + buckets + "]");
        }
        JsonNode seeds = ph.get("seeds");
        if (seeds == null || !seeds.isArray()) throw new MachBundleException("mach.json: product_hash.seeds must be an array of integers");
        if (seeds.size() != repetitions) {
            throw new MachBundleException(
                "mach.json: product_hash.seeds has " + seeds.size() + " seeds, expected R = " + repetitions
            );
        }
        this.productHashSeeds = new long[repetitions];
        for (int r = 0; r < repetitions; r++) {
            if (!seeds.get(r).canConvertToLong()) throw new MachBundleException("mach.json: product_hash.seeds[" + r + "] is not an integer");
            productHashSeeds[r] = seeds.get(r).asLong();
        }
        this.hashFamily = HashFamily.of(productHashSeeds, buckets);
        if (ph.has("family")) {
            String named = ph.get("family").asText();
            if (hashFamily == null || !hashFamily.name().equals(named)) {
                throw new MachBundleException(
                    "mach.json: product_hash.family [" + named + "] does not match product_hash's seeds and buckets"
                        + (hashFamily == null ? " (they are not a hash family's)" : " (they are family [" + hashFamily.name() + "])")
                );
            }
        }

        this.aggregation = aggregation(root);
        this.input = formatVersion == 1 ? Input.FEATURES : input(root);
        if (input.usesFeatures()) {
            JsonNode fz = object(root, "featurizer");
            expectText(fz, "featurizer.normalization", "normalization", Featurizer.NORMALIZATION);
            expectText(fz, "featurizer.tokenization", "tokenization", Featurizer.TOKENIZATION);
            expectText(fz, "featurizer.hash", "hash", Featurizer.HASH);
            List<String> features = new ArrayList<>();
            fz.path("features").forEach(n -> features.add(n.asText()));
            if (!features.equals(Featurizer.FEATURES)) {
                throw new MachBundleException("mach.json: featurizer.features " + features + " is not supported; expected " + Featurizer.FEATURES);
            }
            this.featurizerSeed = longField(fz, "seed", "featurizer.seed");
            this.dimension = intField(fz, "dimension", "featurizer.dimension");
            this.maxFeatures = intField(fz, "max_features", "featurizer.max_features");
            this.paddingId = fz.has("padding_id") ? intField(fz, "padding_id", "featurizer.padding_id") : 0;
            if (dimension < 2) throw new MachBundleException("mach.json: featurizer.dimension must be >= 2, found " + dimension);
            if (maxFeatures < 1) throw new MachBundleException("mach.json: featurizer.max_features must be >= 1, found " + maxFeatures);
            if (paddingId != 0) throw new MachBundleException("mach.json: featurizer.padding_id must be 0, found " + paddingId);
        } else {
            if (root.has("featurizer")) {
                throw new MachBundleException("mach.json: [featurizer] is present but input is [" + input.cardName + "]; only input [encoder+features] reads features");
            }
            this.featurizerSeed = 0;
            this.dimension = 0;
            this.maxFeatures = 0;
            this.paddingId = 0;
        }
        this.encoder = input.usesEncoder() ? encoder(object(root, "encoder")) : null;

        JsonNode onnx = object(root, "onnx");
        this.onnxFile = textField(onnx, "file", "onnx.file");
        JsonNode out = object(onnx, "output", "onnx.output");
        this.outputName = textField(out, "name", "onnx.output.name");
        expectText(out, "onnx.output.dtype", "dtype", "float32");
        expectShape(out, "onnx.output.shape", new long[] { -1, repetitions, buckets }, "[-1, R, B]");
        if (formatVersion == 1) {
            JsonNode in = object(onnx, "input", "onnx.input");
            this.inputName = textField(in, "name", "onnx.input.name");
            this.embeddingInputName = null;
            expectText(in, "onnx.input.dtype", "dtype", "int64");
            expectShape(in, "onnx.input.shape", new long[] { -1, maxFeatures }, "[-1, featurizer.max_features]");
        } else {
            // inputs[0] the sentence embedding, inputs[1] (only with features) the feature ids
            JsonNode inputs = onnx.get("inputs");
            int expected = input.usesFeatures() ? 2 : 1;
            if (inputs == null || !inputs.isArray() || inputs.size() != expected) {
                throw new MachBundleException(
                    "mach.json: [onnx.inputs] must be an array of " + expected + " input(s) for input [" + input.cardName + "] (embedding"
                        + (expected == 2 ? ", feature_ids" : "") + "), found " + (inputs == null ? "nothing" : inputs.toString())
                );
            }
            JsonNode emb = inputs.get(0);
            this.embeddingInputName = textField(emb, "name", "onnx.inputs[0].name");
            expectText(emb, "onnx.inputs[0].dtype", "dtype", "float32");
            expectShape(emb, "onnx.inputs[0].shape", new long[] { -1, encoder.dimension() }, "[-1, encoder.dimension]");
            if (input.usesFeatures()) {
                JsonNode ids = inputs.get(1);
                this.inputName = textField(ids, "name", "onnx.inputs[1].name");
                expectText(ids, "onnx.inputs[1].dtype", "dtype", "int64");
                expectShape(ids, "onnx.inputs[1].shape", new long[] { -1, maxFeatures }, "[-1, featurizer.max_features]");
                if (inputName.equals(embeddingInputName)) {
                    throw new MachBundleException("mach.json: onnx.inputs[0] and onnx.inputs[1] have the same name [" + inputName + "]");
                }
            } else {
                this.inputName = null;
            }
        }

        if (root.has("labels")) {
            JsonNode labels = object(root, "labels");
            this.labelsFile = textField(labels, "file", "labels.file");
            this.labelCount = intField(labels, "count", "labels.count");
            if (labelCount < 1) throw new MachBundleException("mach.json: labels.count must be >= 1, found " + labelCount);
        } else if (hashFamily != null) {
            // no catalog: the model serves only index-side queries, whose documents carry their buckets
            this.labelsFile = null;
            this.labelCount = 0;
        } else {
            throw new MachBundleException(
                "mach.json: missing [labels]; only a model whose product_hash is a hash family may leave it out (it then serves only "
                    + "index-side queries, bucket_field), and these seeds are not a family's"
            );
        }

        JsonNode filesNode = object(root, "files");
        Map<String, String> f = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : filesNode.properties()) {
            String sha = e.getValue().asText("");
            if (!sha.matches("[0-9a-fA-F]{64}")) {
                throw new MachBundleException("mach.json: files[" + e.getKey() + "] must be a sha256 hex string, found [" + sha + "]");
            }
            if (e.getKey().contains("/") || e.getKey().contains("\\") || e.getKey().startsWith(".")) {
                throw new MachBundleException("mach.json: files[" + e.getKey() + "] must be a plain file name inside the bundle");
            }
            f.put(e.getKey(), sha.toLowerCase(java.util.Locale.ROOT));
        }
        List<String> required = new ArrayList<>(networkFiles());
        if (labelsFile != null) required.add(labelsFile);
        if (encoder != null) required.add(encoder.tokenizer().vocab());
        for (String file : required) {
            if (!f.containsKey(file)) {
                throw new MachBundleException("mach.json: files has no sha256 for [" + file + "]; every bundle file must be listed");
            }
        }
        if (encoder != null && encoder.file().equals(onnxFile)) {
            throw new MachBundleException("mach.json: encoder.file and onnx.file are both [" + onnxFile + "]; the encoder and the heads are two files");
        }
        this.files = Collections.unmodifiableMap(f);
    }

    private static Aggregation aggregation(JsonNode root) throws MachBundleException {
        JsonNode n = root.get("aggregation");
        if (n == null) return Aggregation.MEAN;
        if (n.isTextual()) {
            try {
                return Aggregation.parse(n.asText());
            } catch (IllegalArgumentException unknown) {
                // refused below, naming the card's field
            }
        }
        throw new MachBundleException("mach.json: [aggregation] is " + n + ", expected [mean] or [log_mean]");
    }

    private static Input input(JsonNode root) throws MachBundleException {
        String value = textField(root, "input", "input");
        for (Input i : Input.values()) {
            if (value.equals(i.cardName)) return i;
        }
        throw new MachBundleException("mach.json: [input] is [" + value + "], expected [encoder] or [encoder+features]");
    }

    private static Encoder encoder(JsonNode enc) throws MachBundleException {
        String file = textField(enc, "file", "encoder.file");
        String name = textField(enc, "name", "encoder.name");
        String variant = textField(enc, "variant", "encoder.variant");
        int dimension = intField(enc, "dimension", "encoder.dimension");
        if (dimension < 1) throw new MachBundleException("mach.json: encoder.dimension must be >= 1, found " + dimension);
        expectText(enc, "encoder.pooling", "pooling", "mean");
        expectText(enc, "encoder.normalize", "normalize", "l2");
        JsonNode in = object(enc, "onnx_inputs", "encoder.onnx_inputs");
        String inputIds = textField(in, "input_ids", "encoder.onnx_inputs.input_ids");
        String attentionMask = textField(in, "attention_mask", "encoder.onnx_inputs.attention_mask");
        String tokenTypeIds = textField(in, "token_type_ids", "encoder.onnx_inputs.token_type_ids");
        String output = textField(enc, "onnx_output", "encoder.onnx_output");

        JsonNode tk = object(enc, "tokenizer", "encoder.tokenizer");
        expectText(tk, "encoder.tokenizer.kind", "kind", WordPieceTokenizer.KIND);
        for (String flag : new String[] { "clean_text", "handle_chinese_chars", "lowercase", "strip_accents" }) {
            JsonNode n = tk.get(flag);
            if (n == null || !n.isBoolean() || !n.booleanValue()) {
                throw new MachBundleException(
                    "mach.json: [encoder.tokenizer." + flag + "] is " + (n == null ? "missing" : n.toString()) + ", this plugin supports only true"
                );
            }
        }
        String vocab = textField(tk, "vocab", "encoder.tokenizer.vocab");
        String unk = textField(tk, "unk_token", "encoder.tokenizer.unk_token");
        String cls = textField(tk, "cls_token", "encoder.tokenizer.cls_token");
        String sep = textField(tk, "sep_token", "encoder.tokenizer.sep_token");
        int padId = intField(tk, "pad_id", "encoder.tokenizer.pad_id");
        int maxTokens = intField(tk, "max_tokens", "encoder.tokenizer.max_tokens");
        int maxChars = intField(tk, "max_input_chars_per_word", "encoder.tokenizer.max_input_chars_per_word");
        if (padId < 0) throw new MachBundleException("mach.json: encoder.tokenizer.pad_id must be >= 0, found " + padId);
        if (maxTokens < 3) throw new MachBundleException("mach.json: encoder.tokenizer.max_tokens must be >= 3 ([CLS], a word piece, [SEP]), found " + maxTokens);
        if (maxChars < 1) throw new MachBundleException("mach.json: encoder.tokenizer.max_input_chars_per_word must be >= 1, found " + maxChars);
        return new Encoder(
            file, name, variant, dimension, inputIds, attentionMask, tokenTypeIds, output,
            new Tokenizer(vocab, unk, cls, sep, padId, maxTokens, maxChars)
        );
    }

    public static ModelCard parse(byte[] json) throws MachBundleException {
        JsonNode root;
        try {
            root = MAPPER.readTree(json);
        } catch (JsonProcessingException e) {
            throw new MachBundleException("mach.json: not valid JSON: " + e.getOriginalMessage());
        } catch (java.io.IOException e) {
            throw new MachBundleException("mach.json: cannot be read: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) throw new MachBundleException("mach.json: must be a JSON object");
        return new ModelCard(root);
    }

    /** The featurizer, or null when the network reads no features. */
    public Featurizer featurizer() {
        return input.usesFeatures() ? new Featurizer(featurizerSeed, dimension, maxFeatures, paddingId) : null;
    }

    /** The ONNX files that run per query: the encoder (format 2), then the heads. */
    public List<String> networkFiles() {
        return encoder == null ? List.of(onnxFile) : List.of(encoder.file(), onnxFile);
    }

    public ProductHash productHash() {
        return new ProductHash(productHashSeeds, buckets);
    }

    private static JsonNode object(JsonNode parent, String field) throws MachBundleException {
        return object(parent, field, field);
    }

    private static JsonNode object(JsonNode parent, String field, String path) throws MachBundleException {
        JsonNode n = parent.get(field);
        if (n == null || !n.isObject()) throw new MachBundleException("mach.json: missing object [" + path + "]");
        return n;
    }

    private static int intField(JsonNode parent, String field) throws MachBundleException {
        return intField(parent, field, field);
    }

    private static int intField(JsonNode parent, String field, String path) throws MachBundleException {
        JsonNode n = parent.get(field);
        if (n == null || !n.isIntegralNumber() || !n.canConvertToInt()) {
            throw new MachBundleException("mach.json: [" + path + "] must be an integer, found " + (n == null ? "nothing" : n.toString()));
        }
        return n.intValue();
    }

    private static long longField(JsonNode parent, String field, String path) throws MachBundleException {
        JsonNode n = parent.get(field);
        if (n == null || !n.isIntegralNumber() || !n.canConvertToLong()) {
            throw new MachBundleException("mach.json: [" + path + "] must be an integer, found " + (n == null ? "nothing" : n.toString()));
        }
        return n.longValue();
    }

    private static String textField(JsonNode parent, String field, String path) throws MachBundleException {
        JsonNode n = parent.get(field);
        if (n == null || !n.isTextual() || n.asText().isEmpty()) {
            throw new MachBundleException("mach.json: [" + path + "] must be a non-empty string, found " + (n == null ? "nothing" : n.toString()));
        }
        return n.asText();
    }

    private static void expectText(JsonNode parent, String path, String field, String expected) throws MachBundleException {
        JsonNode n = parent.get(field);
        String found = n == null ? null : n.asText();
        if (!expected.equals(found)) {
            throw new MachBundleException("mach.json: [" + path + "] is [" + found + "], this plugin supports only [" + expected + "]");
        }
    }

    private static void expectShape(JsonNode parent, String path, long[] expected, String what) throws MachBundleException {
        JsonNode n = parent.get("shape");
        boolean ok = n != null && n.isArray() && n.size() == expected.length;
        for (int i = 0; ok && i < expected.length; i++) {
            long v = n.get(i).asLong(Long.MIN_VALUE);
            // the batch dimension may be any symbolic/dynamic marker (-1 or a name)
            ok = i == 0 ? (!n.get(i).isNumber() || v <= 0) : v == expected[i];
        }
        if (!ok) {
            throw new MachBundleException(
                "mach.json: [" + path + "] is " + n + ", expected " + what + " = " + java.util.Arrays.toString(expected)
            );
        }
    }
}
