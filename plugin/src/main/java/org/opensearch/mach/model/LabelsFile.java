package org.opensearch.mach.model;

import org.opensearch.common.hash.MurmurHash3;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;

/**
 * Reads and checks a bundle's labels file in one stream, without holding its product ids as Java
 * objects: one product id per line, each line ending with \n, non-empty, without \r, valid UTF-8,
 * unique, as many as the card says, and the file's sha256 the card's when listed.
 *
 * <p>Uniqueness costs one 64-bit hash per line (a {@code long[]} of K entries: 40 MB at K = 5M),
 * sorted in place; equal neighbours are only candidates, and the lines with those hashes are compared
 * exactly in a second read (which happens only when the file has a duplicate or, with odds of about
 * K^2 / 2^65, two ids share a hash). Registration validates with it; the catalog load reads the ids
 * through {@link LineSink} in the same pass.
 */
final class LabelsFile {
    /** Receives each well-formed line (its UTF-8 bytes, without the \n), in file order. */
    interface LineSink {
        void accept(byte[] bytes, int offset, int length);
    }

    /** What a valid file holds: its id count and the ids' UTF-8 bytes (the \n excluded). */
    record Summary(int count, long idBytes) {}

    private interface LineVisitor {
        /** @return false to stop reading */
        boolean line(int number, byte[] bytes, int offset, int length) throws MachBundleException;
    }

    private LabelsFile() {}

    /** Checks the file without keeping its ids. */
    static Summary check(Path file, ModelCard card) throws MachBundleException {
        return read(file, card, null);
    }

    /** Checks the file and hands each line to {@code sink} (null: none) on the way; a refusal names the file, the line and the check. */
    static Summary read(Path file, ModelCard card, LineSink sink) throws MachBundleException {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
        long size = size(file, card);
        // a line takes at least 2 bytes: a card's count cannot make this allocate more than the file needs
        long[][] hashes = { new long[(int) Math.min(card.labelCount, size / 2 + 1)] };
        int[] lines = { 0 };
        long[] idBytes = { 0 };
        String[] malformed = { null };
        CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT);
        MurmurHash3.Hash128 hash = new MurmurHash3.Hash128();
        boolean endsWithNewline = forEachLine(file, card, digest, (number, bytes, offset, length) -> {
            malformed[0] = malformed(bytes, offset, length, utf8);
            if (malformed[0] != null) return false;
            if (lines[0] == hashes[0].length) hashes[0] = Arrays.copyOf(hashes[0], Math.max(16, lines[0] + (lines[0] >> 1)));
            hashes[0][lines[0]++] = hash(bytes, offset, length, hash);
            idBytes[0] += length;
            if (sink != null) sink.accept(bytes, offset, length);
            return true;
        });
        // the first refusal in file order: a duplicate before the first malformed line, else that line
        checkUnique(file, card, hashes[0], lines[0]);
        if (malformed[0] != null) {
            throw new MachBundleException("[" + card.labelsFile + "] line " + (lines[0] + 1) + ": " + malformed[0]);
        }
        String expectedSha = card.files.get(card.labelsFile);
        String sha = HexFormat.of().formatHex(digest.digest());
        if (expectedSha != null && !expectedSha.equals(sha)) {
            throw new MachBundleException(
                "sha256 mismatch for [" + card.labelsFile + "]: mach.json says " + expectedSha + ", the file has " + sha
                    + " (replaced since the model was loaded?)"
            );
        }
        if (!endsWithNewline) {
            throw new MachBundleException("[" + card.labelsFile + "]: every line must end with \\n (the last one does not)");
        }
        if (lines[0] != card.labelCount) {
            throw new MachBundleException(
                "[" + card.labelsFile + "] has " + lines[0] + " labels, mach.json labels.count says " + card.labelCount
            );
        }
        return new Summary(lines[0], idBytes[0]);
    }

    /** Why a line is not a product id, or null when it is one. */
    private static String malformed(byte[] bytes, int offset, int length, CharsetDecoder utf8) {
        boolean ascii = true;
        for (int i = offset; i < offset + length; i++) {
            if (bytes[i] == '\r') return "product ids must be non-empty without \\r";
            ascii &= bytes[i] >= 0;
        }
        if (length == 0) return "product ids must be non-empty without \\r";
        if (!ascii) {
            try {
                utf8.reset().decode(ByteBuffer.wrap(bytes, offset, length));
            } catch (CharacterCodingException e) {
                return "product ids must be valid UTF-8";
            }
        }
        return null;
    }

    /**
     * The first of the first {@code n} lines whose id an earlier line has, as a refusal. Sorts
     * {@code hashes[0..n)} in place; re-reads the file only when two hashes are equal.
     */
    static void checkUnique(Path file, ModelCard card, long[] hashes, int n) throws MachBundleException {
        Arrays.sort(hashes, 0, n);
        int shared = 0; // the distinct hashes seen more than once, compacted to the front
        for (int i = 1; i < n; i++) {
            if (hashes[i] == hashes[i - 1] && (shared == 0 || hashes[shared - 1] != hashes[i])) hashes[shared++] = hashes[i];
        }
        if (shared == 0) return;
        long[] candidates = Arrays.copyOf(hashes, shared); // sorted
        Map<String, Integer> seen = new HashMap<>();
        MurmurHash3.Hash128 hash = new MurmurHash3.Hash128();
        String[] duplicate = { null };
        int[] at = { 0 };
        forEachLine(file, card, null, (number, bytes, offset, length) -> {
            if (number > n) return false;
            if (Arrays.binarySearch(candidates, hash(bytes, offset, length, hash)) < 0) return true;
            String id = new String(bytes, offset, length, StandardCharsets.UTF_8);
            if (seen.putIfAbsent(id, number) == null) return true;
            duplicate[0] = id;
            at[0] = number;
            return false;
        });
        if (duplicate[0] != null) {
            throw new MachBundleException("[" + card.labelsFile + "] line " + at[0] + ": duplicate product id [" + duplicate[0] + "]");
        }
    }

    /** 64 bits of MurmurHash3 x64 128 of an id's bytes ({@code scratch} reused). */
    static long hash(byte[] bytes, int offset, int length, MurmurHash3.Hash128 scratch) {
        return MurmurHash3.hash128(bytes, offset, length, 0, scratch).h1;
    }

    /** The file's size; a refusal when it is missing. */
    static long size(Path file, ModelCard card) throws MachBundleException {
        if (!Files.isRegularFile(file)) {
            throw new MachBundleException("missing file [" + card.labelsFile + "] of the bundle (" + file + ")");
        }
        try {
            return Files.size(file);
        } catch (IOException e) {
            throw new MachBundleException("cannot read [" + card.labelsFile + "] (" + file + "): " + e.getMessage(), e);
        }
    }

    /**
     * Calls {@code visitor} with each \n-terminated line (numbered from 1) until it returns false,
     * streaming 64 KB at a time (reading a 5M-id file in one call made the JDK keep a temporary
     * direct buffer of the file's size for the life of the reading thread). Returns whether the file
     * ends after a \n (or is empty); {@code digest}, when given, sees every byte read.
     */
    private static boolean forEachLine(Path file, ModelCard card, MessageDigest digest, LineVisitor visitor) throws MachBundleException {
        byte[] buffer = new byte[1 << 16];
        byte[] carry = new byte[256]; // a line that spans two reads
        int carried = 0;
        int number = 0;
        try (InputStream raw = Files.newInputStream(file); InputStream in = digest == null ? raw : new DigestInputStream(raw, digest)) {
            for (int n; (n = in.read(buffer)) > 0;) {
                int from = 0;
                for (int i = 0; i < n; i++) {
                    if (buffer[i] != '\n') continue;
                    boolean more;
                    if (carried == 0) {
                        more = visitor.line(++number, buffer, from, i - from);
                    } else {
                        carry = append(carry, carried, buffer, from, i - from);
                        carried += i - from;
                        more = visitor.line(++number, carry, 0, carried);
                        carried = 0;
                    }
                    if (!more) return true;
                    from = i + 1;
                }
                carry = append(carry, carried, buffer, from, n - from);
                carried += n - from;
            }
        } catch (IOException e) {
            throw new MachBundleException("cannot read [" + card.labelsFile + "] (" + file + "): " + e.getMessage(), e);
        }
        return carried == 0;
    }

    private static byte[] append(byte[] to, int used, byte[] from, int offset, int length) {
        if (used + length > to.length) to = Arrays.copyOf(to, Math.max(used + length, 2 * to.length));
        System.arraycopy(from, offset, to, used, length);
        return to;
    }
}
