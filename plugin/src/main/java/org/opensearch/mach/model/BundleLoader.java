package org.opensearch.mach.model;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.opensearch.mach.featurize.Featurizer;
import org.opensearch.mach.inference.MachInference;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Loads a bundle directory and validates it exactly as spec/bundle-format.md requires. Every
 * refusal is a {@link MachBundleException} naming the file or field, the expectation and what was found.
 * Nothing is kept open when a check fails.
 */
public final class BundleLoader {
    private static final Logger logger = LogManager.getLogger(BundleLoader.class);
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private BundleLoader() {}

    public static MachModel load(String id, Path dir, boolean tryCuda) throws MachBundleException {
        return load(id, dir, tryCuda, 1);
    }

    /** @param intraOpThreads ONNX Runtime threads per inference call */
    public static MachModel load(String id, Path dir, boolean tryCuda, int intraOpThreads) throws MachBundleException {
        return load(id, dir, dir, tryCuda, intraOpThreads);
    }

    /**
     * A zip bundle: extracted under {@code tmpRoot}, loaded, then the extracted files are deleted.
     */
    public static MachModel loadZip(String id, Path zip, Path tmpRoot, boolean tryCuda, int intraOpThreads) throws MachBundleException {
        Path dir = BundleZip.extract(zip, tmpRoot);
        try {
            return load(id, dir, zip, tryCuda, intraOpThreads);
        } finally {
            BundleZip.deleteQuietly(dir);
        }
    }

    /** @param source what the model reports as its origin (the directory, or the zip it came from) */
    private static MachModel load(String id, Path dir, Path source, boolean tryCuda, int intraOpThreads) throws MachBundleException {
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
        String[] labels = readLabels(dir, card);

        OrtEnvironment env = OrtEnvironment.getEnvironment();
        Path onnxPath = dir.resolve(card.onnxFile);
        OrtSession session = null;
        String device = "cpu";
        try {
            if (tryCuda) {
                try (OrtSession.SessionOptions opts = new OrtSession.SessionOptions()) {
                    opts.setIntraOpNumThreads(intraOpThreads);
                    opts.addCUDA(0);
                    session = env.createSession(onnxPath.toString(), opts);
                    device = "cuda";
                } catch (OrtException | RuntimeException | LinkageError e) {
                    logger.warn("mach model [{}]: CUDA not available ({}), falling back to CPU", id, e.getMessage());
                }
            }
            if (session == null) {
                try (OrtSession.SessionOptions opts = new OrtSession.SessionOptions()) {
                    opts.setIntraOpNumThreads(intraOpThreads);
                    session = env.createSession(onnxPath.toString(), opts);
                }
            }
            checkOnnxSignature(session, card);
            checkParity(env, session, card, readFile(dir, ModelCard.PARITY_FILE));
            ProductIndex index = ProductIndex.build(labels, card.productHash());
            long millis = (System.nanoTime() - startNanos) / 1_000_000;
            MachModel model = new MachModel(id, source, card, env, session, device, ProductLabels.of(labels), index, millis);
            session = null; // owned by the model now
            return model;
        } catch (OrtException e) {
            throw new MachBundleException("[" + card.onnxFile + "]: ONNX Runtime cannot load or run it: " + e.getMessage(), e);
        } finally {
            if (session != null) {
                try {
                    session.close();
                } catch (OrtException ignored) {}
            }
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

    /**
     * One product id per line, each line ending with \n. Streamed (64 KB at a time) rather than read
     * whole: reading a 5M-id file in one call made the JDK keep a temporary direct buffer of the file's
     * size (~45 MB of native memory) for the life of the loading thread.
     */
    private static String[] readLabels(Path dir, ModelCard card) throws MachBundleException {
        Path p = dir.resolve(card.labelsFile);
        if (!Files.isRegularFile(p)) {
            throw new MachBundleException("missing file [" + card.labelsFile + "] in bundle [" + dir + "]");
        }
        List<String> labels = new ArrayList<>(card.labelCount);
        Set<String> seen = new HashSet<>();
        ByteArrayOutputStream line = new ByteArrayOutputStream(64);
        byte[] buffer = new byte[1 << 16];
        try (InputStream in = Files.newInputStream(p)) {
            for (int n; (n = in.read(buffer)) > 0;) {
                int from = 0;
                for (int i = 0; i < n; i++) {
                    if (buffer[i] != '\n') continue;
                    line.write(buffer, from, i - from);
                    addLabel(labels, seen, line.toString(StandardCharsets.UTF_8), card);
                    line.reset();
                    from = i + 1;
                }
                line.write(buffer, from, n - from);
            }
        } catch (IOException e) {
            throw new MachBundleException("cannot read [" + card.labelsFile + "] in bundle [" + dir + "]: " + e.getMessage(), e);
        }
        if (line.size() > 0) {
            throw new MachBundleException("[" + card.labelsFile + "]: every line must end with \\n (the last one does not)");
        }
        if (labels.size() != card.labelCount) {
            throw new MachBundleException(
                "[" + card.labelsFile + "] has " + labels.size() + " labels, mach.json labels.count says " + card.labelCount
            );
        }
        return labels.toArray(new String[0]);
    }

    private static void addLabel(List<String> labels, Set<String> seen, String label, ModelCard card) throws MachBundleException {
        int lineNumber = labels.size() + 1;
        if (label.isEmpty() || label.indexOf('\r') >= 0) {
            throw new MachBundleException("[" + card.labelsFile + "] line " + lineNumber + ": product ids must be non-empty without \\r");
        }
        if (!seen.add(label)) {
            throw new MachBundleException("[" + card.labelsFile + "] line " + lineNumber + ": duplicate product id [" + label + "]");
        }
        labels.add(label);
    }

    private static void checkOnnxSignature(OrtSession session, ModelCard card) throws OrtException, MachBundleException {
        Map<String, NodeInfo> inputs = session.getInputInfo();
        Map<String, NodeInfo> outputs = session.getOutputInfo();
        if (!inputs.keySet().equals(Set.of(card.inputName))) {
            throw new MachBundleException(
                "[" + card.onnxFile + "]: inputs are " + inputs.keySet() + ", mach.json onnx.input.name expects exactly [" + card.inputName + "]"
            );
        }
        if (!outputs.containsKey(card.outputName)) {
            throw new MachBundleException(
                "[" + card.onnxFile + "]: outputs are " + outputs.keySet() + ", mach.json onnx.output.name expects [" + card.outputName + "]"
            );
        }
        checkTensor(card, "input", inputs.get(card.inputName), OnnxJavaType.INT64, new long[] { -1, card.maxFeatures });
        checkTensor(card, "output", outputs.get(card.outputName), OnnxJavaType.FLOAT, new long[] { -1, card.repetitions, card.buckets });
    }

    private static void checkTensor(ModelCard card, String what, NodeInfo info, OnnxJavaType type, long[] shape) throws MachBundleException {
        if (!(info.getInfo() instanceof TensorInfo tensor)) {
            throw new MachBundleException("[" + card.onnxFile + "]: " + what + " [" + info.getName() + "] is not a tensor");
        }
        if (tensor.type != type) {
            throw new MachBundleException(
                "[" + card.onnxFile + "]: " + what + " [" + info.getName() + "] has type " + tensor.type + ", mach.json expects " + type
            );
        }
        long[] found = tensor.getShape();
        boolean ok = found.length == shape.length;
        for (int i = 1; ok && i < shape.length; i++) {
            ok = found[i] == shape[i];
        }
        if (!ok) {
            throw new MachBundleException(
                "["
                    + card.onnxFile
                    + "]: "
                    + what
                    + " ["
                    + info.getName()
                    + "] has shape "
                    + Arrays.toString(found)
                    + ", mach.json expects "
                    + Arrays.toString(shape)
                    + " (batch dimension dynamic)"
            );
        }
    }

    /** Re-runs parity.json through the Java featurizer and ONNX Runtime. */
    private static void checkParity(OrtEnvironment env, OrtSession session, ModelCard card, byte[] parityJson) throws OrtException,
        MachBundleException {
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
        Featurizer featurizer = card.featurizer();
        int c = 0;
        for (JsonNode pc : cases) {
            String text = pc.path("text").asText();
            long[] expectedIds = new long[pc.path("feature_ids").size()];
            for (int i = 0; i < expectedIds.length; i++) {
                expectedIds[i] = pc.get("feature_ids").get(i).asLong();
            }
            long[] ids = featurizer.featureIds(text);
            if (!Arrays.equals(ids, expectedIds)) {
                throw new MachBundleException(
                    "parity.json case " + c + " [" + text + "]: the plugin's featurizer gives " + Arrays.toString(ids)
                        + ", the trainer gave " + Arrays.toString(expectedIds) + " (featurizer mismatch)"
                );
            }
            float[][] probs = MachInference.run(env, session, card.inputName, card.outputName, new long[][] { featurizer.paddedFeatureIds(text) })[0];
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
                            "parity.json case " + c + " [" + text + "]: repetition " + r + " bucket " + b + ": ONNX Runtime gives "
                                + (b >= 0 && b < card.buckets ? probs[r][b] : Float.NaN) + ", the trainer gave " + expected
                                + " (tolerance " + tolerance + ")"
                        );
                    }
                }
            }
            c++;
        }
    }
}
