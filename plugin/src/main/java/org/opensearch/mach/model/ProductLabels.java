package org.opensearch.mach.model;

import org.opensearch.mach.featurize.ProductHash;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The product ids of a model, in label order, packed as UTF-8 bytes plus one offset per product.
 *
 * <p>Why not a {@code String[]}: each String costs ~50 bytes of headers on top of its characters, so
 * a 1M (5M) product vocabulary held ~56 MB (280 MB) of heap for ids of ~8 characters; packed it is
 * about the characters plus 4 bytes. Only the top-N products of a query are ever read back.
 */
public final class ProductLabels {
    private final byte[] bytes;
    /** id k is bytes[offsets[k] .. offsets[k + 1]) */
    private final int[] offsets;

    private ProductLabels(byte[] bytes, int[] offsets) {
        this.bytes = bytes;
        this.offsets = offsets;
    }

    public static ProductLabels of(String... ids) {
        byte[][] encoded = new byte[ids.length][];
        long total = 0;
        for (int k = 0; k < ids.length; k++) {
            encoded[k] = ids[k].getBytes(StandardCharsets.UTF_8);
            total += encoded[k].length;
        }
        if (total > Integer.MAX_VALUE - 16) throw new IllegalArgumentException("product ids take more than 2 GB");
        byte[] bytes = new byte[(int) total];
        int[] offsets = new int[ids.length + 1];
        for (int k = 0; k < ids.length; k++) {
            System.arraycopy(encoded[k], 0, bytes, offsets[k], encoded[k].length);
            offsets[k + 1] = offsets[k] + encoded[k].length;
        }
        return new ProductLabels(bytes, offsets);
    }

    /** Collects ids as UTF-8 bytes (a labels file's lines), without a String per id. */
    static final class Builder {
        private byte[] bytes;
        private int[] offsets;
        private int count;

        /** Sized for the expected ids; grows past them. */
        Builder(int expectedCount, long expectedBytes) {
            if (expectedBytes > Integer.MAX_VALUE - 16) throw new IllegalArgumentException("product ids take more than 2 GB");
            bytes = new byte[(int) Math.max(0, expectedBytes)];
            offsets = new int[Math.max(1, expectedCount + 1)];
        }

        void add(byte[] from, int offset, int length) {
            int end = offsets[count] + length;
            if (end < 0 || end > Integer.MAX_VALUE - 16) throw new IllegalArgumentException("product ids take more than 2 GB");
            if (end > bytes.length) bytes = Arrays.copyOf(bytes, (int) Math.min(Integer.MAX_VALUE - 16, Math.max(end, 2L * bytes.length)));
            if (count + 2 > offsets.length) offsets = Arrays.copyOf(offsets, offsets.length + (offsets.length >> 1) + 1);
            System.arraycopy(from, offset, bytes, offsets[count], length);
            offsets[++count] = end;
        }

        /** The ids, in arrays of exactly their size (no copy when the expected sizes were exact). */
        ProductLabels build() {
            int used = offsets[count];
            return new ProductLabels(
                used == bytes.length ? bytes : Arrays.copyOf(bytes, used),
                count + 1 == offsets.length ? offsets : Arrays.copyOf(offsets, count + 1)
            );
        }
    }

    public int size() {
        return offsets.length - 1;
    }

    public String get(int product) {
        return new String(bytes, offsets[product], offsets[product + 1] - offsets[product], StandardCharsets.UTF_8);
    }

    /** The buckets of product k in every repetition into {@code out}, hashed from its stored bytes. */
    void buckets(int product, ProductHash hash, int[] out) {
        hash.bucketsOf(bytes, offsets[product], offsets[product + 1] - offsets[product], out);
    }

    /** Heap bytes of the packed ids (arrays with their headers). */
    public long heapBytes() {
        return heapBytes(bytes.length, size());
    }

    /** Heap bytes of {@code count} ids of {@code idBytes} UTF-8 bytes in all, before they are read. */
    static long heapBytes(long idBytes, int count) {
        return 16L + idBytes + 16L + 4L * (count + 1L);
    }
}
