package org.opensearch.mach.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipInputStream;

/**
 * A bundle packed as a zip of the bundle directory's files (no enclosing folder, spec/bundle-format.md).
 * ONNX Runtime needs a file path, so the zip is extracted to a temporary directory, loaded, and the
 * directory deleted (the session keeps the model in memory).
 */
public final class BundleZip {
    /**
     * Where zips are extracted and assembled (ONNX Runtime reads a file path) when no node work
     * directory is given (tests, benchmarks); every codebase may write java.io.tmpdir. A node uses its
     * own directory instead (MachPlugin), which it empties at start.
     */
    public static Path tmpRoot() {
        return Path.of(System.getProperty("java.io.tmpdir"), "mach-bundles");
    }

    /** A new empty file {@code <prefix>-*.zip} under {@code root}; the caller deletes it. */
    public static Path newTempZip(Path root, String prefix) throws IOException {
        Files.createDirectories(root);
        return Files.createTempFile(root, prefix + "-", ".zip");
    }

    /**
     * Deletes everything under {@code root} (what a node killed during a register or deploy left) and
     * returns the bytes freed. Only for a directory no load is using: a node's own, at its start.
     */
    public static long clear(Path root) {
        if (!Files.isDirectory(root)) return 0;
        long[] freed = { 0 };
        try (Stream<Path> files = Files.walk(root)) {
            files.sorted(Comparator.reverseOrder()).filter(p -> !p.equals(root)).forEach(p -> {
                try {
                    long size = Files.isRegularFile(p) ? Files.size(p) : 0;
                    Files.delete(p);
                    freed[0] += size;
                } catch (IOException ignored) {}
            });
        } catch (IOException ignored) {}
        return freed[0];
    }

    /** Refuse zips that inflate beyond this (a zip bomb, or not a bundle). */
    static final long MAX_UNCOMPRESSED_BYTES = 16L << 30;
    /** The card is read before anything else, and never more of it than this. */
    static final int MAX_CARD_BYTES = 1 << 20;
    /**
     * An entry over {@link #RATIO_CHECKED_BYTES} may inflate to at most this many times its compressed
     * size: model weights and labels hardly compress (a few times at most), a zip bomb does ~1000x.
     */
    static final long MAX_RATIO = 100;
    static final long RATIO_CHECKED_BYTES = 1 << 20;

    private BundleZip() {}

    /** The files a card names (spec/bundle-format.md): the card, the ONNX file, labels, parity.json and every key of {@code files}. */
    public static Set<String> declaredFiles(byte[] card, String where) throws MachBundleException {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(card);
        } catch (IOException e) {
            throw new MachBundleException("[" + where + "]: " + ModelCard.CARD_FILE + " is not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) throw new MachBundleException("[" + where + "]: " + ModelCard.CARD_FILE + " is not a JSON object");
        Set<String> names = new TreeSet<>(List.of(ModelCard.CARD_FILE, "model.onnx", "labels.txt", "parity.json"));
        names.add(root.path("onnx").path("file").asText("model.onnx"));
        names.add(root.path("labels").path("file").asText("labels.txt"));
        root.path("files").fieldNames().forEachRemaining(names::add);
        return names;
    }

    /**
     * Checks a zip before anything is expanded, from its central directory: the card is there and read
     * first (bounded), and every file it names has a declared size, within {@link #MAX_RATIO} of its
     * compressed size, all of them together within {@link #MAX_UNCOMPRESSED_BYTES}. Returns the entries
     * to extract with their declared sizes (extraction holds each to it; entries the card does not name are skipped).
     */
    public static Map<String, Long> plan(Path zip) throws MachBundleException {
        String where = zip.getFileName().toString();
        try (ZipFile z = new ZipFile(zip.toFile())) {
            Set<String> seen = new HashSet<>();
            for (ZipEntry e : java.util.Collections.list(z.entries())) checkEntry(where, e, seen);
            ZipEntry cardEntry = z.getEntry(ModelCard.CARD_FILE);
            if (cardEntry == null) throw new MachBundleException("[" + where + "]: no " + ModelCard.CARD_FILE + " at the zip's root: not a bundle");
            byte[] card;
            try (InputStream in = z.getInputStream(cardEntry)) {
                card = in.readNBytes(MAX_CARD_BYTES + 1);
            }
            if (card.length > MAX_CARD_BYTES) throw new MachBundleException("[" + where + "]: " + ModelCard.CARD_FILE + " is over " + MAX_CARD_BYTES + " bytes");
            Set<String> declared = declaredFiles(card, where);
            Map<String, Long> plan = new TreeMap<>();
            long total = 0;
            for (ZipEntry e : java.util.Collections.list(z.entries())) {
                if (!declared.contains(e.getName())) continue;
                long size = e.getSize(), packed = e.getCompressedSize();
                if (size < 0 || packed < 0) throw new MachBundleException("[" + where + "]: entry [" + e.getName() + "] declares no size");
                if (size > RATIO_CHECKED_BYTES && size > MAX_RATIO * packed) {
                    throw new MachBundleException(
                        "[" + where + "]: entry [" + e.getName() + "] would inflate " + packed + " bytes to " + size + " (more than " + MAX_RATIO
                            + "x): not a bundle"
                    );
                }
                total += size;
                if (total > MAX_UNCOMPRESSED_BYTES) throw new MachBundleException("[" + where + "]: inflates to more than " + MAX_UNCOMPRESSED_BYTES + " bytes");
                plan.put(e.getName(), size);
            }
            return plan;
        } catch (IOException e) {
            throw new MachBundleException("[" + where + "]: not a readable zip: " + e.getMessage(), e);
        }
    }

    private static void checkEntry(String where, ZipEntry e, Set<String> seen) throws MachBundleException {
        String name = e.getName();
        if (e.isDirectory() || name.isEmpty() || name.contains("/") || name.contains("\\") || name.startsWith(".")) {
            throw new MachBundleException("[" + where + "]: entry [" + name + "] is not a plain file name; zip the bundle's files without a folder");
        }
        if (!seen.add(name)) throw new MachBundleException("[" + where + "]: duplicate entry [" + name + "]");
    }

    /** Extracts into a new directory under {@code tmpRoot}, as {@link #plan} allows; the caller deletes it. */
    static Path extract(Path zip, Path tmpRoot) throws MachBundleException {
        Map<String, Long> plan = plan(zip);
        Path dir;
        try {
            Files.createDirectories(tmpRoot);
            dir = Files.createTempDirectory(tmpRoot, "bundle-");
        } catch (IOException e) {
            throw new MachBundleException("cannot create a directory to extract [" + zip.getFileName() + "] under [" + tmpRoot + "]: " + e, e);
        }
        Set<String> seen = new HashSet<>();
        byte[] buffer = new byte[1 << 16];
        try (ZipInputStream in = new ZipInputStream(Files.newInputStream(zip))) {
            for (ZipEntry e; (e = in.getNextEntry()) != null;) {
                String name = e.getName();
                checkEntry(zip.getFileName().toString(), e, seen); // again: local headers may differ from the central directory
                Long declared = plan.get(name);
                if (declared == null) continue; // not part of the bundle: never expanded
                long written = 0;
                try (OutputStream out = Files.newOutputStream(dir.resolve(name))) {
                    for (int n; (n = in.read(buffer)) > 0;) {
                        written += n;
                        if (written > declared) {
                            throw new MachBundleException("[" + zip.getFileName() + "]: entry [" + name + "] inflates beyond its declared " + declared + " bytes");
                        }
                        out.write(buffer, 0, n);
                    }
                }
            }
        } catch (MachBundleException e) {
            deleteQuietly(dir);
            throw e;
        } catch (IOException e) {
            deleteQuietly(dir);
            throw new MachBundleException("[" + zip.getFileName() + "]: not a readable zip: " + e.getMessage(), e);
        }
        return dir;
    }

    /**
     * Zips a bundle directory (no folder inside the zip, as spec/bundle-format.md says): its card first,
     * then only the files the card names, so nothing else in the directory is ever read.
     */
    public static void zipDirectory(Path dir, Path zip) throws IOException, MachBundleException {
        Path cardFile = dir.resolve(ModelCard.CARD_FILE);
        // links are not followed, for the card as for the files it names: they could lead out of the registration directory
        if (!Files.isRegularFile(cardFile, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            throw new MachBundleException("no " + ModelCard.CARD_FILE + " in the directory (a link is not followed): not a bundle");
        }
        byte[] card;
        try (InputStream in = Files.newInputStream(cardFile, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            card = in.readNBytes(MAX_CARD_BYTES + 1);
        }
        if (card.length > MAX_CARD_BYTES) throw new MachBundleException(ModelCard.CARD_FILE + " is over " + MAX_CARD_BYTES + " bytes");
        try (var out = new java.util.zip.ZipOutputStream(Files.newOutputStream(zip))) {
            for (String name : declaredFiles(card, dir.getFileName().toString())) {
                Path f = dir.resolve(name).normalize();
                if (!f.getParent().equals(dir.normalize()) || !Files.isRegularFile(f, java.nio.file.LinkOption.NOFOLLOW_LINKS)) continue;
                out.putNextEntry(new ZipEntry(name));
                Files.copy(f, out);
                out.closeEntry();
            }
        }
    }

    /** Uncompressed size of one entry of a zip, or -1 when absent. */
    public static long entrySize(Path zip, String name) throws IOException {
        try (ZipFile z = new ZipFile(zip.toFile())) {
            ZipEntry e = z.getEntry(name);
            return e == null ? -1 : e.getSize();
        }
    }

    static void deleteQuietly(Path dir) {
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {}
            });
        } catch (IOException ignored) {}
    }
}
