package org.opensearch.mach.inference;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

import org.opensearch.mach.featurize.Featurizer;

import java.util.List;
import java.util.Map;
import java.util.Set;

/** Format 1: hashed n-gram feature ids, padded to max_features, into one network. */
public final class FeatureNetwork implements QueryNetwork {
    private final OrtEnvironment env;
    private final OrtSession session;
    private final String device;
    private final Featurizer featurizer;
    private final String inputName;
    private final String outputName;

    public FeatureNetwork(OrtEnvironment env, OrtSessions.Opened session, Featurizer featurizer, String inputName, String outputName) {
        this.env = env;
        this.session = session.session();
        this.device = session.device();
        this.featurizer = featurizer;
        this.inputName = inputName;
        this.outputName = outputName;
    }

    @Override
    public QueryInput encode(String text) {
        return new QueryInput(featurizer.featureIds(text), null);
    }

    @Override
    public float[][][] run(List<QueryInput> inputs) throws OrtException {
        long[][] rows = new long[inputs.size()][];
        for (int i = 0; i < rows.length; i++) {
            rows[i] = featurizer.pad(inputs.get(i).featureIds());
        }
        try (OnnxTensor ids = OnnxTensor.createTensor(env, rows)) {
            return run(session, Map.of(inputName, ids), outputName);
        }
    }

    /** One session run; returns the [n][R][B] output. */
    static float[][][] run(OrtSession session, Map<String, OnnxTensor> inputs, String outputName) throws OrtException {
        try (OrtSession.Result result = session.run(inputs, Set.of(outputName))) {
            OnnxValue out = result.get(outputName).orElseThrow(() -> new IllegalStateException("no output [" + outputName + "]"));
            return (float[][][]) out.getValue();
        }
    }

    /** The featurizer's normalized text: texts that differ only in case, NFKC form, spacing or punctuation have the same features. */
    @Override
    public String inputKey(String text) {
        return featurizer.normalizedText(text);
    }

    @Override
    public String device() {
        return device;
    }

    @Override
    public long heapBytes() {
        return 0;
    }

    @Override
    public void close() {
        OrtSessions.closeQuietly(session);
    }
}
