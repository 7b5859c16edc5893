package org.opensearch.mach.model;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;

/**
 * A model's catalog: its product ids ({@link ProductLabels}) and their buckets ({@link ProductIndex}),
 * read from the bundle's labels file. Only the coordinator's decoding needs it ({@code _predict} and the
 * {@code product_id_field} query); it costs ~113 bytes per product of heap, so a model loads it on first
 * use ({@link MachModel#catalog()}), never at deploy.
 */
public final class ProductCatalog {
    private final ProductLabels labels;
    private final ProductIndex index;

    ProductCatalog(ProductLabels labels, ProductIndex index) {
        this.labels = labels;
        this.index = index;
    }

    public ProductLabels labels() {
        return labels;
    }

    public ProductIndex index() {
        return index;
    }

    public long heapBytes() {
        return labels.heapBytes() + index.heapBytes();
    }

    /**
     * Reads and checks the labels file (one product id per line, each ending with \n, non-empty,
     * without \r, unique, as many as the card says; its sha256 the card's when listed) and builds the
     * index with the card's product hash.
     */
    static ProductCatalog read(Path file, ModelCard card) throws MachBundleException {
        String[] ids = readLabels(file, card);
        return new ProductCatalog(ProductLabels.of(ids), ProductIndex.build(ids, card.productHash()));
    }

    /**
     * Streamed (64 KB at a time) rather than read whole: reading a 5M-id file in one call made the JDK
     * keep a temporary direct buffer of the file's size (~45 MB of native memory) for the life of the
     * loading thread. The sha256 is computed on the way: the file is read long after the bundle's load
     * checked it, and a directory bundle's file may have been replaced since.
     */
    private static String[] readLabels(Path p, ModelCard card) throws MachBundleException {
        if (!Files.isRegularFile(p)) {
            throw new MachBundleException("missing file [" + card.labelsFile + "] of the bundle (" + p + ")");
        }
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
        List<String> labels = new ArrayList<>(card.labelCount);
        Set<String> seen = new HashSet<>();
        ByteArrayOutputStream line = new ByteArrayOutputStream(64);
        byte[] buffer = new byte[1 << 16];
        try (InputStream in = new DigestInputStream(Files.newInputStream(p), digest)) {
            for (int n; (n = in.read(buffer)) > 0;) {
                int from = 0;
                for (int i = 0; i < n; i++) {
                    if (buffer[i] != '\n') continue;
                    line.write(buffer, from, i - from);
                    addLabel(labels, seen, line.toString(StandardCharsets.UTF_8), card);
                    line.reset();
                    from = i + 1;
                }
                line.write(buffer, from, n - from);
            }
        } catch (IOException e) {
            throw new MachBundleException("cannot read [" + card.labelsFile + "] (" + p + "): " + e.getMessage(), e);
        }
        String expectedSha = card.files.get(card.labelsFile);
        String sha = HexFormat.of().formatHex(digest.digest());
        if (expectedSha != null && !expectedSha.equals(sha)) {
            throw new MachBundleException(
                "sha256 mismatch for [" + card.labelsFile + "]: mach.json says " + expectedSha + ", the file has " + sha
                    + " (replaced since the model was loaded?)"
            );
        }
        if (line.size() > 0) {
            throw new MachBundleException("[" + card.labelsFile + "]: every line must end with \\n (the last one does not)");
        }
        if (labels.size() != card.labelCount) {
            throw new MachBundleException(
                "[" + card.labelsFile + "] has " + labels.size() + " labels, mach.json labels.count says " + card.labelCount
            );
        }
        return labels.toArray(new String[0]);
    }

    private static void addLabel(List<String> labels, Set<String> seen, String label, ModelCard card) throws MachBundleException {
        int lineNumber = labels.size() + 1;
        if (label.isEmpty() || label.indexOf('\r') >= 0) {
            throw new MachBundleException("[" + card.labelsFile + "] line " + lineNumber + ": product ids must be non-empty without \\r");
        }
        if (!seen.add(label)) {
            throw new MachBundleException("[" + card.labelsFile + "] line " + lineNumber + ": duplicate product id [" + label + "]");
        }
        labels.add(label);
    }
}
