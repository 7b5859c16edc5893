package org.opensearch.mach.lifecycle;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * One uploaded chunk's bytes as parts of at most {@link #PART_BYTES}, with their SHA-256. Why parts:
 * a chunk of several MB held as one array (and its base64 text, its JSON source, its stored field)
 * is a humongous allocation in G1 at a 1 GB heap (regions of 1 MB, so any array over 512 KB): dead
 * copies pile up outside the young generation until the next collection and the parent circuit
 * breaker, which reads the real heap use, answered 429 to queries while a large bundle was uploaded
 * or read back. Parts stay ordinary young-generation garbage, in memory and in the bundle store.
 */
public final class ChunkBytes {
    /** Decoded bytes per part: its base64 JSON source (~350 KB) stays under G1's humongous threshold at a 1 GB heap. */
    public static final int PART_BYTES = 256 << 10;

    private final List<byte[]> parts;
    private final long length;
    private final String sha256;

    private ChunkBytes(List<byte[]> parts, long length, String sha256) {
        this.parts = List.copyOf(parts);
        this.length = length;
        this.sha256 = sha256;
    }

    public List<byte[]> parts() {
        return parts;
    }

    public long length() {
        return length;
    }

    /** Hex SHA-256 of all the bytes. */
    public String sha256() {
        return sha256;
    }

    public static ChunkBytes of(byte[] data) {
        Builder b = new Builder(Long.MAX_VALUE);
        b.write(data, 0, data.length);
        return b.build();
    }

    /** Reads up to {@code max} bytes of {@code in}; an empty chunk at the end of the stream. */
    public static ChunkBytes read(InputStream in, int max) throws IOException {
        Builder b = new Builder(max);
        byte[] part;
        for (long left = max; left > 0 && (part = in.readNBytes((int) Math.min(PART_BYTES, left))).length > 0; left -= part.length) {
            b.write(part, 0, part.length);
        }
        return b.build();
    }

    /** More bytes than a chunk may hold (an IllegalArgumentException, so a 400). */
    public static final class TooLargeException extends IllegalArgumentException {
        TooLargeException(long max) {
            super("a chunk must hold at most " + max + " bytes");
        }
    }

    /** Collects written bytes into parts and hashes them; more than {@code max} bytes is a {@link TooLargeException}. */
    public static final class Builder extends OutputStream {
        private final long max;
        private final MessageDigest digest = BundleStore.digest();
        private final List<byte[]> parts = new ArrayList<>();
        private byte[] current = new byte[PART_BYTES];
        private int used;
        private long length;

        public Builder(long max) {
            this.max = max;
        }

        @Override
        public void write(int b) {
            write(new byte[] { (byte) b }, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            if (length + len > max) throw new TooLargeException(max);
            digest.update(b, off, len);
            length += len;
            while (len > 0) {
                int n = Math.min(len, PART_BYTES - used);
                System.arraycopy(b, off, current, used, n);
                used += n;
                off += n;
                len -= n;
                if (used == PART_BYTES) {
                    parts.add(current);
                    current = new byte[PART_BYTES];
                    used = 0;
                }
            }
        }

        public ChunkBytes build() {
            if (used > 0) parts.add(java.util.Arrays.copyOf(current, used));
            current = null;
            return new ChunkBytes(parts, length, HexFormat.of().formatHex(digest.digest()));
        }
    }
}
