package org.opensearch.mach.inference;

/**
 * What a model's network reads of one query text: the hashed feature ids (unpadded; null when the
 * network reads none) and the encoder's token ids ({@code [CLS] ... [SEP]}; null without an encoder).
 */
public record QueryInput(long[] featureIds, int[] tokenIds) {

    /** True when the text gives the network nothing to go on (no feature, no word piece): such a text gets no products. */
    public boolean isEmpty() {
        return (featureIds == null || featureIds.length == 0) && (tokenIds == null || tokenIds.length <= 2);
    }
}
