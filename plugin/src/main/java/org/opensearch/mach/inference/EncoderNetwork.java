package org.opensearch.mach.inference;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

import org.opensearch.mach.featurize.Featurizer;
import org.opensearch.mach.featurize.WordPieceTokenizer;
import org.opensearch.mach.model.ModelCard;

import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Format 2: WordPiece token ids -> sentence encoder -> mean over the tokens, L2-normalized -> the
 * MACH heads (which may also read the hashed feature ids: input {@code encoder+features}). Pooling
 * runs here rather than in a graph so that the encoder file stays byte for byte as shipped.
 */
public final class EncoderNetwork implements QueryNetwork {
    private final OrtEnvironment env;
    private final WordPieceTokenizer tokenizer;
    private final EncoderSession encoder;
    private final OrtSession heads;
    private final String headsDevice;
    /** null unless the heads read feature ids too */
    private final Featurizer featurizer;
    private final ModelCard.Encoder spec;
    private final String embeddingName;
    private final String featureIdsName;
    private final String outputName;

    /** Takes ownership of the encoder lease and the heads session: {@link #close()} releases both. */
    public EncoderNetwork(OrtEnvironment env, ModelCard card, WordPieceTokenizer tokenizer, EncoderSession encoder, OrtSessions.Opened heads) {
        this.env = env;
        this.tokenizer = tokenizer;
        this.encoder = encoder;
        this.heads = heads.session();
        this.headsDevice = heads.device();
        this.featurizer = card.featurizer();
        this.spec = card.encoder;
        this.embeddingName = card.embeddingInputName;
        this.featureIdsName = card.inputName;
        this.outputName = card.outputName;
    }

    @Override
    public QueryInput encode(String text) {
        return new QueryInput(featurizer == null ? null : featurizer.featureIds(text), tokenizer.ids(text));
    }

    @Override
    public float[][][] run(List<QueryInput> inputs) throws OrtException {
        return heads(embed(inputs), inputs);
    }

    /** The MACH heads on sentence embeddings [n][dimension] (and, with features, the inputs' feature ids): [n][R][B]. */
    public float[][][] heads(float[][] embeddings, List<QueryInput> inputs) throws OrtException {
        try (OnnxTensor embedding = OnnxTensor.createTensor(env, embeddings)) {
            if (featurizer == null) return FeatureNetwork.run(heads, Map.of(embeddingName, embedding), outputName);
            long[][] rows = new long[inputs.size()][];
            for (int i = 0; i < rows.length; i++) {
                rows[i] = featurizer.pad(inputs.get(i).featureIds());
            }
            try (OnnxTensor ids = OnnxTensor.createTensor(env, rows)) {
                return FeatureNetwork.run(heads, Map.of(embeddingName, embedding, featureIdsName, ids), outputName);
            }
        }
    }

    /**
     * Sentence embeddings [n][dimension]: per text, the encoder's last hidden states averaged over
     * its tokens, then divided by their L2 norm (floored at 1e-12). The encoder runs once per text,
     * not once per batch: a dynamically quantized (int8) encoder scales its activations per tensor,
     * so in a batch a text's embedding would depend on its batch-mates (probabilities moved by up to
     * 0.002 in EncoderBundleTests); alone, it is deterministic and needs no padding.
     */
    public float[][] embed(List<QueryInput> inputs) throws OrtException {
        float[][] out = new float[inputs.size()][];
        for (int i = 0; i < out.length; i++) {
            out[i] = embed(inputs.get(i).tokenIds());
        }
        return out;
    }

    private float[] embed(int[] tokens) throws OrtException {
        int length = tokens.length;
        long[] ids = new long[length];
        for (int t = 0; t < length; t++) ids[t] = tokens[t];
        long[] mask = new long[length];
        Arrays.fill(mask, 1);
        long[] shape = { 1, length };
        int d = spec.dimension();
        try (
            OnnxTensor idsTensor = OnnxTensor.createTensor(env, LongBuffer.wrap(ids), shape);
            OnnxTensor maskTensor = OnnxTensor.createTensor(env, LongBuffer.wrap(mask), shape);
            OnnxTensor typesTensor = OnnxTensor.createTensor(env, LongBuffer.wrap(new long[length]), shape);
            OrtSession.Result result = encoder.session()
                .run(Map.of(spec.inputIds(), idsTensor, spec.attentionMask(), maskTensor, spec.tokenTypeIds(), typesTensor), Set.of(spec.output()))
        ) {
            OnnxTensor value = (OnnxTensor) result.get(spec.output())
                .orElseThrow(() -> new IllegalStateException("no encoder output [" + spec.output() + "]"));
            long[] found = value.getInfo().getShape();
            if (!Arrays.equals(found, new long[] { 1, length, d })) {
                throw new IllegalStateException(
                    "encoder output [" + spec.output() + "] has shape " + Arrays.toString(found) + ", expected [1, " + length + ", " + d + "]"
                );
            }
            FloatBuffer hidden = value.getFloatBuffer(); // [1, length, d]
            double[] mean = new double[d];
            for (int t = 0; t < length; t++) {
                for (int k = 0; k < d; k++) mean[k] += hidden.get(t * d + k);
            }
            double norm = 0;
            for (int k = 0; k < d; k++) {
                mean[k] /= Math.max(length, 1e-9);
                norm += mean[k] * mean[k];
            }
            norm = Math.max(Math.sqrt(norm), 1e-12);
            float[] embedding = new float[d];
            for (int k = 0; k < d; k++) embedding[k] = (float) (mean[k] / norm);
            return embedding;
        }
    }

    /** The token ids (and, with features, the featurizer's normalized text): equal keys, equal input. */
    @Override
    public String inputKey(String text) {
        StringBuilder key = new StringBuilder();
        for (int id : tokenizer.ids(text)) key.append(id).append(' ');
        if (featurizer != null) key.append('|').append(featurizer.normalizedText(text));
        return key.toString();
    }

    @Override
    public String device() {
        return headsDevice.equals(encoder.device()) ? headsDevice : "encoder " + encoder.device() + ", heads " + headsDevice;
    }

    @Override
    public long heapBytes() {
        return tokenizer.heapBytes();
    }

    @Override
    public void close() {
        OrtSessions.closeQuietly(heads);
        encoder.close();
    }
}
