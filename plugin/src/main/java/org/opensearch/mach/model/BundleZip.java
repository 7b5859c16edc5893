package org.opensearch.mach.model;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.HashSet;
import java.util.Set;
import java.util.stream.Stream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/**
 * A bundle packed as a zip of the bundle directory's files (no enclosing folder, spec/bundle-format.md).
 * ONNX Runtime needs a file path, so the zip is extracted to a temporary directory, loaded, and the
 * directory deleted (the session keeps the model in memory).
 */
public final class BundleZip {
    /** Where zips are extracted and assembled (ONNX Runtime reads a file path); every codebase may write java.io.tmpdir. */
    public static Path tmpRoot() {
        return Path.of(System.getProperty("java.io.tmpdir"), "mach-bundles");
    }

    /** A new empty file {@code <prefix>-*.zip} under {@link #tmpRoot()}; the caller deletes it. */
    public static Path newTempZip(String prefix) throws IOException {
        Files.createDirectories(tmpRoot());
        return Files.createTempFile(tmpRoot(), prefix + "-", ".zip");
    }

    /** Refuse zips that inflate beyond this (a zip bomb, or not a bundle). */
    static final long MAX_UNCOMPRESSED_BYTES = 16L << 30;

    private BundleZip() {}

    /** Extracts into a new directory under {@code tmpRoot}; the caller deletes it. */
    static Path extract(Path zip, Path tmpRoot) throws MachBundleException {
        Path dir;
        try {
            Files.createDirectories(tmpRoot);
            dir = Files.createTempDirectory(tmpRoot, "bundle-");
        } catch (IOException e) {
            throw new MachBundleException("cannot create a directory to extract [" + zip.getFileName() + "] under [" + tmpRoot + "]: " + e, e);
        }
        long total = 0;
        Set<String> seen = new HashSet<>();
        byte[] buffer = new byte[1 << 16];
        try (ZipInputStream in = new ZipInputStream(Files.newInputStream(zip))) {
            for (ZipEntry e; (e = in.getNextEntry()) != null;) {
                String name = e.getName();
                if (e.isDirectory() || name.isEmpty() || name.contains("/") || name.contains("\\") || name.startsWith(".")) {
                    throw new MachBundleException(
                        "[" + zip.getFileName() + "]: entry [" + name + "] is not a plain file name; zip the bundle's files without a folder"
                    );
                }
                if (!seen.add(name)) throw new MachBundleException("[" + zip.getFileName() + "]: duplicate entry [" + name + "]");
                try (OutputStream out = Files.newOutputStream(dir.resolve(name))) {
                    for (int n; (n = in.read(buffer)) > 0;) {
                        total += n;
                        if (total > MAX_UNCOMPRESSED_BYTES) {
                            throw new MachBundleException("[" + zip.getFileName() + "]: inflates to more than " + MAX_UNCOMPRESSED_BYTES + " bytes");
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

    /** Zips a bundle directory's plain files (no folder inside the zip, as spec/bundle-format.md says). */
    public static void zipDirectory(Path dir, Path zip) throws IOException {
        try (var out = new java.util.zip.ZipOutputStream(Files.newOutputStream(zip)); Stream<Path> files = Files.list(dir)) {
            for (Path f : (Iterable<Path>) files.sorted()::iterator) {
                if (!Files.isRegularFile(f) || f.getFileName().toString().startsWith(".")) continue;
                out.putNextEntry(new ZipEntry(f.getFileName().toString()));
                Files.copy(f, out);
                out.closeEntry();
            }
        }
    }

    /** Uncompressed size of one entry of a zip, or -1 when absent. */
    public static long entrySize(Path zip, String name) throws IOException {
        try (java.util.zip.ZipFile z = new java.util.zip.ZipFile(zip.toFile())) {
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
