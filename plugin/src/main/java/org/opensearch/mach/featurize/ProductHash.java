package org.opensearch.mach.featurize;

import java.nio.charset.StandardCharsets;

/**
 * Product hash of spec/bundle-format.md: bucket of product id p in repetition r is
 * {@code murmur3_x86_32(utf8(p), seeds[r]) mod B}, unsigned. Immutable and thread-safe.
 */
public final class ProductHash {
    public static final String FUNCTION = "murmur3_x86_32";

    private final long[] seeds;
    private final int buckets;

    public ProductHash(long[] seeds, int buckets) {
        if (buckets < 1) {
            throw new IllegalArgumentException("product hash buckets must be >= 1, got " + buckets);
        }
        this.seeds = seeds.clone();
        this.buckets = buckets;
    }

    public int repetitions() {
        return seeds.length;
    }

    public int buckets() {
        return buckets;
    }

    public int bucket(String productId, int repetition) {
        return bucket(productId.getBytes(StandardCharsets.UTF_8), repetition);
    }

    private int bucket(byte[] utf8, int repetition) {
        return (int) (Murmur3.hashUnsigned(utf8, seeds[repetition]) % buckets);
    }

    /** Buckets of one product in every repetition into {@code out}, from the id's UTF-8 bytes {@code utf8[offset, offset + length)}. */
    public void bucketsOf(byte[] utf8, int offset, int length, int[] out) {
        for (int r = 0; r < seeds.length; r++) {
            out[r] = (int) (Murmur3.hashUnsigned(utf8, offset, length, seeds[r]) % buckets);
        }
    }

    /** Buckets of one product in every repetition into {@code out}. */
    public void bucketsOf(String productId, int[] out) {
        byte[] utf8 = productId.getBytes(StandardCharsets.UTF_8);
        bucketsOf(utf8, 0, utf8.length, out);
    }

    /** Buckets of one product in every repetition. */
    public int[] bucketsOf(String productId) {
        int[] out = new int[seeds.length];
        bucketsOf(productId, out);
        return out;
    }
}
