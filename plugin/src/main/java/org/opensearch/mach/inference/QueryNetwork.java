package org.opensearch.mach.inference;

import ai.onnxruntime.OrtException;

import java.io.Closeable;
import java.util.List;

/**
 * A model's network as the query path sees it: query texts in, bucket probabilities [n][R][B] out.
 * One implementation per bundle input kind: {@link FeatureNetwork} (hashed n-gram features,
 * format 1) and {@link EncoderNetwork} (sentence encoder + heads, format 2). Thread-safe.
 */
public interface QueryNetwork extends Closeable {

    /** The network's input for one text. */
    QueryInput encode(String text);

    /** Runs a batch of inputs (as {@link #encode} gives them) in one pass; returns [n][R][B]. */
    float[][][] run(List<QueryInput> inputs) throws OrtException;

    /** Texts with equal keys give the network the same input (the result cache's key). */
    String inputKey(String text);

    /** "cpu" or "cuda". */
    String device();

    /** Heap the network holds besides the ONNX weights (e.g. the tokenizer's vocabulary). */
    long heapBytes();

    /** Closes the ONNX Runtime sessions. */
    @Override
    void close();
}
