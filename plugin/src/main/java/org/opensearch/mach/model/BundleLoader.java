package org.opensearch.mach.model;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.opensearch.mach.featurize.WordPieceTokenizer;
import org.opensearch.mach.inference.EncoderNetwork;
import org.opensearch.mach.inference.EncoderSession;
import org.opensearch.mach.inference.FeatureNetwork;
import org.opensearch.mach.inference.OrtSessions;
import org.opensearch.mach.inference.QueryInput;
import org.opensearch.mach.inference.QueryNetwork;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Loads a bundle directory and validates it exactly as spec/bundle-format.md requires. Every
 * refusal is a {@link MachBundleException} naming the file or field, the expectation and what was found.
 * Nothing is kept open when a check fails.
 */
public final class BundleLoader {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private BundleLoader() {}

    public static MachModel load(String id, Path dir, boolean tryCuda) throws MachBundleException {
        return load(id, dir, tryCuda, 1);
    }

    /** @param intraOpThreads ONNX Runtime threads per inference call */
    public static MachModel load(String id, Path dir, boolean tryCuda, int intraOpThreads) throws MachBundleException {
        return load(id, dir, dir, null, tryCuda, intraOpThreads);
    }

    /**
     * A zip bundle: extracted under {@code tmpRoot}, loaded, then the extracted files are deleted but
     * the labels file, moved next to them: the model reads it on first use of its catalog and deletes
     * it when closed.
     */
    public static MachModel loadZip(String id, Path zip, Path tmpRoot, boolean tryCuda, int intraOpThreads) throws MachBundleException {
        Path dir = BundleZip.extract(zip, tmpRoot);
        try {
            return load(id, dir, zip, tmpRoot, tryCuda, intraOpThreads);
        } finally {
            BundleZip.deleteQuietly(dir);
        }
    }

    /**
     * @param source what the model reports as its origin (the directory, or the zip it came from)
     * @param keepLabelsIn where to move the labels file to keep it past the load (null: read it in place)
     */
    private static MachModel load(String id, Path dir, Path source, Path keepLabelsIn, boolean tryCuda, int intraOpThreads)
        throws MachBundleException {
        long startNanos = System.nanoTime();
        if (!Files.isDirectory(dir)) {
            throw new MachBundleException("bundle directory [" + dir + "] does not exist or is not a directory");
        }
        ModelCard card = ModelCard.parse(readFile(dir, ModelCard.CARD_FILE));
        for (Map.Entry<String, String> e : card.files.entrySet()) {
            checkSha256(dir, e.getKey(), e.getValue());
        }
        Path parityPath = dir.resolve(ModelCard.PARITY_FILE);
        if (!Files.isRegularFile(parityPath)) {
            throw new MachBundleException("missing file [" + ModelCard.PARITY_FILE + "] in bundle [" + dir + "]");
        }
        // the catalog (labels + product index, ~113 bytes/product) is read on first use, not here
        Path labelsFile = card.labelsFile == null ? null : dir.resolve(card.labelsFile);
        if (labelsFile != null && !Files.isRegularFile(labelsFile)) {
            throw new MachBundleException("missing file [" + card.labelsFile + "] in bundle [" + dir + "]");
        }
        WordPieceTokenizer tokenizer = card.encoder == null ? null : readTokenizer(dir, card);

        OrtEnvironment env = OrtEnvironment.getEnvironment();
        QueryNetwork network = null;
        String file = String.join(", ", card.networkFiles()); // what an OrtException is about
        try {
            network = card.encoder == null
                ? new FeatureNetwork(env, openHeads(env, dir, card, id, tryCuda, intraOpThreads), card.featurizer(), card.inputName, card.outputName)
                : openEncoderNetwork(env, dir, card, tokenizer, id, tryCuda, intraOpThreads);
            checkParity(network, card, readFile(dir, ModelCard.PARITY_FILE));
            long onnxBytes = 0;
            for (String f : card.networkFiles()) onnxBytes += Files.size(dir.resolve(f));
            boolean ownsLabels = keepLabelsIn != null && labelsFile != null;
            if (ownsLabels) labelsFile = keepLabels(labelsFile, keepLabelsIn, id);
            long millis = (System.nanoTime() - startNanos) / 1_000_000;
            MachModel model = new MachModel(id, source, card, network, labelsFile, ownsLabels, onnxBytes, millis);
            network = null; // owned by the model now
            return model;
        } catch (OrtException e) {
            throw new MachBundleException("[" + file + "]: ONNX Runtime cannot load or run it: " + e.getMessage(), e);
        } catch (IOException e) {
            throw new MachBundleException("cannot read bundle [" + dir + "]: " + e.getMessage(), e);
        } finally {
            if (network != null) network.close();
        }
    }

    /** Moves a zip bundle's labels file out of the extracted directory (deleted after the load): {@code <tmpRoot>/<id>-<n>.labels.txt}. */
    private static Path keepLabels(Path labels, Path tmpRoot, String id) throws IOException {
        Path kept = Files.createTempFile(tmpRoot, id + "-", ".labels.txt");
        return Files.move(labels, kept, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }

    /** The heads (format 1: the whole network), checked against the card; nothing left open on a refusal. */
    private static OrtSessions.Opened openHeads(OrtEnvironment env, Path dir, ModelCard card, String id, boolean tryCuda, int threads)
        throws OrtException, MachBundleException {
        OrtSessions.Opened heads = OrtSessions.open(env, dir.resolve(card.onnxFile), tryCuda, threads, id);
        try {
            checkHeads(heads.session(), card);
            return heads;
        } catch (OrtException | MachBundleException | RuntimeException e) {
            OrtSessions.closeQuietly(heads.session());
            throw e;
        }
    }

    private static QueryNetwork openEncoderNetwork(
        OrtEnvironment env,
        Path dir,
        ModelCard card,
        WordPieceTokenizer tokenizer,
        String id,
        boolean tryCuda,
        int threads
    ) throws OrtException, MachBundleException {
        String encoderFile = card.encoder.file();
        EncoderSession encoder = EncoderSession.acquire(env, dir.resolve(encoderFile), card.files.get(encoderFile), tryCuda, threads, id);
        try {
            checkEncoder(encoder.session(), card);
            return new EncoderNetwork(env, card, tokenizer, encoder, openHeads(env, dir, card, id, tryCuda, threads));
        } catch (OrtException | MachBundleException | RuntimeException e) {
            encoder.close();
            throw e;
        }
    }

    /** vocab.txt (one token per line, line i = id i) and the card's special tokens in it. */
    private static WordPieceTokenizer readTokenizer(Path dir, ModelCard card) throws MachBundleException {
        ModelCard.Tokenizer spec = card.encoder.tokenizer();
        List<String> vocab;
        try {
            vocab = WordPieceTokenizer.readVocabTxt(dir.resolve(spec.vocab()));
        } catch (IOException e) {
            throw new MachBundleException("cannot read [" + spec.vocab() + "] in bundle [" + dir + "]: " + e.getMessage(), e);
        }
        if (spec.padId() >= vocab.size()) {
            throw new MachBundleException(
                "mach.json: encoder.tokenizer.pad_id [" + spec.padId() + "] is not an id of [" + spec.vocab() + "] (" + vocab.size() + " tokens)"
            );
        }
        try {
            return spec.create(vocab);
        } catch (IllegalArgumentException e) {
            throw new MachBundleException("[" + spec.vocab() + "]: " + e.getMessage(), e);
        }
    }

    private static byte[] readFile(Path dir, String name) throws MachBundleException {
        Path p = dir.resolve(name);
        if (!Files.isRegularFile(p)) {
            throw new MachBundleException("missing file [" + name + "] in bundle [" + dir + "]");
        }
        try {
            return Files.readAllBytes(p);
        } catch (IOException e) {
            throw new MachBundleException("cannot read [" + name + "] in bundle [" + dir + "]: " + e.getMessage(), e);
        }
    }

    /** Hex SHA-256 of a file's bytes. */
    public static String sha256(Path file) throws IOException {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
        byte[] buffer = new byte[1 << 16];
        try (InputStream in = Files.newInputStream(file)) {
            for (int n; (n = in.read(buffer)) > 0;) {
                digest.update(buffer, 0, n);
            }
        }
        return HexFormat.of().formatHex(digest.digest());
    }

    private static void checkSha256(Path dir, String name, String expected) throws MachBundleException {
        Path p = dir.resolve(name);
        if (!Files.isRegularFile(p)) {
            throw new MachBundleException("missing file [" + name + "] in bundle [" + dir + "] (listed in mach.json files)");
        }
        String found;
        try {
            found = sha256(p);
        } catch (IOException e) {
            throw new MachBundleException("cannot read [" + name + "] in bundle [" + dir + "]: " + e.getMessage(), e);
        }
        if (!found.equals(expected)) {
            throw new MachBundleException(
                "sha256 mismatch for [" + name + "]: mach.json says " + expected + ", the file has " + found + " (corrupt or replaced file)"
            );
        }
    }

    /** The heads network (format 1: the whole network) against the card's inputs and output. */
    private static void checkHeads(OrtSession session, ModelCard card) throws OrtException, MachBundleException {
        String file = card.onnxFile;
        Map<String, NodeInfo> inputs = session.getInputInfo();
        Map<String, NodeInfo> outputs = session.getOutputInfo();
        Set<String> expected = new LinkedHashSet<>();
        if (card.embeddingInputName != null) expected.add(card.embeddingInputName);
        if (card.inputName != null) expected.add(card.inputName);
        if (!inputs.keySet().equals(expected)) {
            String field = card.formatVersion == 1 ? "onnx.input.name" : "onnx.inputs names";
            throw new MachBundleException(
                "[" + file + "]: inputs are " + inputs.keySet() + ", mach.json " + field + " expects exactly " + expected
            );
        }
        if (!outputs.containsKey(card.outputName)) {
            throw new MachBundleException(
                "[" + file + "]: outputs are " + outputs.keySet() + ", mach.json onnx.output.name expects [" + card.outputName + "]"
            );
        }
        if (card.embeddingInputName != null) {
            long[] shape = { -1, card.encoder.dimension() };
            checkTensor(file, "input", inputs.get(card.embeddingInputName), OnnxJavaType.FLOAT, shape);
        }
        if (card.inputName != null) {
            checkTensor(file, "input", inputs.get(card.inputName), OnnxJavaType.INT64, new long[] { -1, card.maxFeatures });
        }
        checkTensor(file, "output", outputs.get(card.outputName), OnnxJavaType.FLOAT, new long[] { -1, card.repetitions, card.buckets });
    }

    /** The encoder: the card's three int64 inputs [batch, tokens] and float output [batch, tokens, dimension]. */
    private static void checkEncoder(OrtSession session, ModelCard card) throws OrtException, MachBundleException {
        ModelCard.Encoder enc = card.encoder;
        Map<String, NodeInfo> inputs = session.getInputInfo();
        Map<String, NodeInfo> outputs = session.getOutputInfo();
        Set<String> expected = new LinkedHashSet<>(List.of(enc.inputIds(), enc.attentionMask(), enc.tokenTypeIds()));
        if (!inputs.keySet().equals(expected)) {
            throw new MachBundleException(
                "[" + enc.file() + "]: inputs are " + inputs.keySet() + ", mach.json encoder.onnx_inputs expects exactly " + expected
            );
        }
        if (!outputs.containsKey(enc.output())) {
            throw new MachBundleException(
                "[" + enc.file() + "]: outputs are " + outputs.keySet() + ", mach.json encoder.onnx_output expects [" + enc.output() + "]"
            );
        }
        for (String name : expected) {
            checkTensor(enc.file(), "input", inputs.get(name), OnnxJavaType.INT64, new long[] { -1, -1 });
        }
        checkTensor(enc.file(), "output", outputs.get(enc.output()), OnnxJavaType.FLOAT, new long[] { -1, -1, enc.dimension() });
    }

    /** Type and shape; -1 in {@code shape} is a dynamic dimension (any), and the first one always is. */
    private static void checkTensor(String file, String what, NodeInfo info, OnnxJavaType type, long[] shape) throws MachBundleException {
        if (!(info.getInfo() instanceof TensorInfo tensor)) {
            throw new MachBundleException("[" + file + "]: " + what + " [" + info.getName() + "] is not a tensor");
        }
        if (tensor.type != type) {
            throw new MachBundleException(
                "[" + file + "]: " + what + " [" + info.getName() + "] has type " + tensor.type + ", mach.json expects " + type
            );
        }
        long[] found = tensor.getShape();
        boolean ok = found.length == shape.length;
        for (int i = 1; ok && i < shape.length; i++) {
            ok = shape[i] == -1 || found[i] == shape[i];
        }
        if (!ok) {
            throw new MachBundleException(
                "[" + file + "]: " + what + " [" + info.getName() + "] has shape " + Arrays.toString(found) + ", mach.json expects "
                    + Arrays.toString(shape) + " (-1: dynamic)"
            );
        }
    }

    /**
     * Re-runs parity.json through the Java query path: the featurizer's ids and the tokenizer's ids
     * must equal the trainer's exactly, the probabilities at its top buckets be within its tolerance.
     */
    private static void checkParity(QueryNetwork network, ModelCard card, byte[] parityJson) throws OrtException, MachBundleException {
        JsonNode root;
        try {
            root = MAPPER.readTree(parityJson);
        } catch (IOException e) {
            throw new MachBundleException("parity.json: not valid JSON: " + e.getMessage());
        }
        double tolerance = root.path("tolerance").asDouble(1e-4);
        JsonNode cases = root.path("cases");
        if (!cases.isArray() || cases.isEmpty()) {
            throw new MachBundleException("parity.json: [cases] must be a non-empty array");
        }
        int c = 0;
        for (JsonNode pc : cases) {
            String text = pc.path("text").asText();
            QueryInput input = network.encode(text);
            if (card.input.usesFeatures()) {
                long[] expected = longs(pc.path("feature_ids"));
                if (!Arrays.equals(input.featureIds(), expected)) {
                    throw new MachBundleException(
                        "parity.json case " + c + " [" + text + "]: the plugin's featurizer gives " + Arrays.toString(input.featureIds())
                            + ", the trainer gave " + Arrays.toString(expected) + " (featurizer mismatch)"
                    );
                }
            }
            if (card.input.usesEncoder()) {
                JsonNode tokens = pc.get("token_ids");
                if (tokens == null || !tokens.isArray()) {
                    throw new MachBundleException("parity.json case " + c + " [" + text + "]: [token_ids] must be an array (encoder bundles)");
                }
                long[] expected = longs(tokens);
                long[] found = Arrays.stream(input.tokenIds()).asLongStream().toArray();
                if (!Arrays.equals(found, expected)) {
                    throw new MachBundleException(
                        "parity.json case " + c + " [" + text + "]: the plugin's tokenizer gives " + Arrays.toString(found)
                            + ", the trainer gave " + Arrays.toString(expected) + " (tokenizer mismatch)"
                    );
                }
            }
            float[][] probs = network.run(List.of(input))[0];
            JsonNode buckets = pc.path("top_buckets");
            JsonNode expectedProbs = pc.path("top_probs");
            if (buckets.size() != card.repetitions || expectedProbs.size() != card.repetitions) {
                throw new MachBundleException("parity.json case " + c + ": top_buckets/top_probs must have R = " + card.repetitions + " rows");
            }
            for (int r = 0; r < card.repetitions; r++) {
                for (int i = 0; i < buckets.get(r).size(); i++) {
                    int b = buckets.get(r).get(i).asInt();
                    double expected = expectedProbs.get(r).get(i).asDouble();
                    if (b < 0 || b >= card.buckets || Math.abs(probs[r][b] - expected) > tolerance) {
                        throw new MachBundleException(
                            "parity.json case " + c + " [" + text + "]: repetition " + r + " bucket " + b + ": the plugin gives "
                                + (b >= 0 && b < card.buckets ? probs[r][b] : Float.NaN) + ", the trainer gave " + expected
                                + " (tolerance " + tolerance + ")"
                        );
                    }
                }
            }
            c++;
        }
    }

    /** The integers of a JSON array (empty for a missing one). */
    private static long[] longs(JsonNode array) {
        long[] out = new long[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asLong();
        }
        return out;
    }
}
