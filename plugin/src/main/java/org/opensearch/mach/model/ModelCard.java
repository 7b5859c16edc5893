package org.opensearch.mach.model;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.opensearch.mach.featurize.Featurizer;
import org.opensearch.mach.featurize.ProductHash;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The bundle card {@code mach.json} (spec/bundle-format.md), parsed with Jackson and checked for
 * internal consistency. File-level checks (checksums, ONNX shapes, labels) are in {@link BundleLoader}.
 */
public final class ModelCard {
    public static final int FORMAT_VERSION = 1;
    public static final String CARD_FILE = "mach.json";
    public static final String PARITY_FILE = "parity.json";

    private static final ObjectMapper MAPPER = new ObjectMapper();

    public final int formatVersion;
    public final String name;
    public final int repetitions;
    public final int buckets;
    public final long[] productHashSeeds;
    public final long featurizerSeed;
    public final int dimension;
    public final int maxFeatures;
    public final int paddingId;
    public final String onnxFile;
    public final String inputName;
    public final String outputName;
    public final String labelsFile;
    public final int labelCount;
    /** file name -> sha256 hex */
    public final Map<String, String> files;
    /** the card as read, for display */
    public final JsonNode raw;

    private ModelCard(JsonNode root) throws MachBundleException {
        this.raw = root;
        this.formatVersion = intField(root, "format_version");
        if (formatVersion != FORMAT_VERSION) {
            throw new MachBundleException(
                "mach.json: unknown format_version [" + formatVersion + "]; this plugin reads format_version " + FORMAT_VERSION
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

        JsonNode onnx = object(root, "onnx");
        this.onnxFile = textField(onnx, "file", "onnx.file");
        JsonNode in = object(onnx, "input", "onnx.input");
        JsonNode out = object(onnx, "output", "onnx.output");
        this.inputName = textField(in, "name", "onnx.input.name");
        this.outputName = textField(out, "name", "onnx.output.name");
        expectText(in, "onnx.input.dtype", "dtype", "int64");
        expectText(out, "onnx.output.dtype", "dtype", "float32");
        expectShape(in, "onnx.input.shape", new long[] { -1, maxFeatures }, "[-1, featurizer.max_features]");
        expectShape(out, "onnx.output.shape", new long[] { -1, repetitions, buckets }, "[-1, R, B]");

        JsonNode labels = object(root, "labels");
        this.labelsFile = textField(labels, "file", "labels.file");
        this.labelCount = intField(labels, "count", "labels.count");
        if (labelCount < 1) throw new MachBundleException("mach.json: labels.count must be >= 1, found " + labelCount);

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
        for (String required : new String[] { onnxFile, labelsFile }) {
            if (!f.containsKey(required)) {
                throw new MachBundleException("mach.json: files has no sha256 for [" + required + "]; every bundle file must be listed");
            }
        }
        this.files = Collections.unmodifiableMap(f);
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

    public Featurizer featurizer() {
        return new Featurizer(featurizerSeed, dimension, maxFeatures, paddingId);
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
