package org.opensearch.mach.model;

import java.nio.file.Path;

/**
 * A model's catalog: its product ids ({@link ProductLabels}) and their buckets ({@link ProductIndex}),
 * read from the bundle's labels file. Only the coordinator's decoding needs it ({@code _predict} and the
 * {@code product_id_field} query); its arrays take ~108 bytes per product at R 16 with 8-byte ids
 * ({@link #heapBytes()}; ~113 bytes of heap after GC under G1, which rounds large arrays up to whole
 * regions), so a model loads it on first use ({@link MachModel#catalog()}), never at deploy.
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
     * Reads and checks the labels file ({@link LabelsFile}: one product id per line, each ending with
     * \n, non-empty, without \r, valid UTF-8, unique, as many as the card says; its sha256 the card's
     * when listed) and builds the index with the card's product hash. The ids go straight into the
     * packed {@link ProductLabels}, sized from the file: no String per id is kept while reading.
     */
    static ProductCatalog read(Path file, ModelCard card) throws MachBundleException {
        ProductLabels.Builder ids = new ProductLabels.Builder(card.labelCount, idBytes(file, card));
        LabelsFile.read(file, card, ids::add);
        ProductLabels labels = ids.build();
        return new ProductCatalog(labels, ProductIndex.build(labels, card.productHash()));
    }

    /**
     * Heap the catalog will take once read, from the labels file's size and the card (exact for a
     * valid file): what a node admits against its memory limit before reading it.
     */
    static long heapBytes(Path file, ModelCard card) throws MachBundleException {
        return ProductLabels.heapBytes(idBytes(file, card), card.labelCount)
            + ProductIndex.heapBytes(card.repetitions, card.buckets, card.labelCount);
    }

    /** The ids' bytes in a valid labels file: its size less one \n per id. */
    private static long idBytes(Path file, ModelCard card) throws MachBundleException {
        return Math.max(0, LabelsFile.size(file, card) - card.labelCount);
    }
}
