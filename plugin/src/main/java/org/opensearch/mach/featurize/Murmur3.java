package org.opensearch.mach.featurize;

import org.apache.lucene.util.StringHelper;

import java.nio.charset.StandardCharsets;

/** MurmurHash3 x86 32-bit over UTF-8 bytes, read as unsigned (the contract's {@code murmur3_x86_32}). */
public final class Murmur3 {
    private Murmur3() {}

    /** Unsigned 32-bit hash of {@code data} with {@code seed} (seed taken modulo 2^32). */
    public static long hashUnsigned(byte[] data, long seed) {
        return hashUnsigned(data, 0, data.length, seed);
    }

    /** Unsigned 32-bit hash of {@code data[offset, offset + length)} with {@code seed}. */
    public static long hashUnsigned(byte[] data, int offset, int length, long seed) {
        return Integer.toUnsignedLong(StringHelper.murmurhash3_x86_32(data, offset, length, (int) seed));
    }

    public static long hashUnsigned(String text, long seed) {
        return hashUnsigned(text.getBytes(StandardCharsets.UTF_8), seed);
    }
}
