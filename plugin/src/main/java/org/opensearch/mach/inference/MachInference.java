package org.opensearch.mach.inference;

import ai.onnxruntime.OrtException;

import org.opensearch.mach.model.MachModel;

import java.util.List;

/** Query text -> the model's network -> [R, B] bucket probabilities. */
public final class MachInference {
    private MachInference() {}

    /** Bucket probabilities [R][B] of one query text (the batch below, of one). */
    public static float[][] probabilities(MachModel model, String text) throws OrtException {
        return probabilities(model, List.of(model.network().encode(text)))[0];
    }

    /**
     * Bucket probabilities [n][R][B] of n encoded texts in one pass. Holds a reference on the model
     * while ONNX Runtime runs, so an undeploy in the meantime closes the sessions only after this run.
     */
    public static float[][][] probabilities(MachModel model, List<QueryInput> inputs) throws OrtException {
        if (model.tryIncRef() == false) throw new ModelRetiredException(model.id());
        try {
            return model.network().run(inputs);
        } finally {
            model.decRef();
        }
    }
}
