package org.opensearch.mach.inference;

import org.opensearch.mach.model.MachModel;

/** One query's model output: the [R, B] probabilities (null when the network could not read the text: {@link QueryInput#isEmpty()}) and the decoded products. */
public record Prediction(MachModel model, float[][] probabilities, Decoder.Result result, long inferenceNanos, long decodeNanos) {

    public String productId(int rank) {
        return model.label(result.products()[rank]);
    }

    public int size() {
        return result.products().length;
    }
}
