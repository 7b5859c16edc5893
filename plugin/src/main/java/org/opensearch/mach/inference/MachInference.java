package org.opensearch.mach.inference;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

import org.opensearch.mach.model.MachModel;

import java.util.Map;
import java.util.Set;

/** Featurize -> ONNX Runtime -> [R, B] bucket probabilities. */
public final class MachInference {
    private MachInference() {}

    /** Bucket probabilities [R][B] of one query text (the batch below, of one). */
    public static float[][] probabilities(MachModel model, String text) throws OrtException {
        return probabilities(model, new long[][] { model.featurizer().paddedFeatureIds(text) })[0];
    }

    /**
     * Bucket probabilities [n][R][B] of n padded feature-id rows in one ONNX Runtime call. Holds a
     * reference on the model while ONNX Runtime runs, so an undeploy in the meantime closes the
     * session only after this run.
     */
    public static float[][][] probabilities(MachModel model, long[][] rows) throws OrtException {
        if (model.tryIncRef() == false) throw new ModelRetiredException(model.id());
        try {
            return run(model.environment(), model.session(), model.card().inputName, model.card().outputName, rows);
        } finally {
            model.decRef();
        }
    }

    /** Runs a batch of padded feature-id rows; returns [batch][R][B]. */
    public static float[][][] run(OrtEnvironment env, OrtSession session, String inputName, String outputName, long[][] rows)
        throws OrtException {
        try (
            OnnxTensor input = OnnxTensor.createTensor(env, rows);
            OrtSession.Result result = session.run(Map.of(inputName, input), Set.of(outputName))
        ) {
            OnnxValue out = result.get(outputName).orElseThrow(() -> new IllegalStateException("no output [" + outputName + "]"));
            return (float[][][]) out.getValue();
        }
    }
}
