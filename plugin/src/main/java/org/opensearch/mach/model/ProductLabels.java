package org.opensearch.mach.model;

import java.nio.charset.StandardCharsets;

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

    public int size() {
        return offsets.length - 1;
    }

    public String get(int product) {
        return new String(bytes, offsets[product], offsets[product + 1] - offsets[product], StandardCharsets.UTF_8);
    }

    /** Heap bytes of the packed ids (arrays with their headers). */
    public long heapBytes() {
        return 16L + bytes.length + 16L + 4L * offsets.length;
    }
}
