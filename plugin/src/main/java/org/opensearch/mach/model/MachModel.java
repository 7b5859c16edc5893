package org.opensearch.mach.model;

import org.opensearch.OpenSearchStatusException;
import org.opensearch.common.util.concurrent.AbstractRefCounted;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.mach.featurize.Featurizer;
import org.opensearch.mach.inference.QueryNetwork;
import org.opensearch.secure_sm.AccessController;

import java.io.Closeable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A loaded, validated bundle: card, network (its ONNX Runtime sessions) and, once a request needs it,
 * its catalog (labels and product index: {@link #catalog()}). Index-side queries need only the network,
 * so a node that serves only those never holds the catalog, whose heap grows with the product count.
 *
 * <p>Reference counted: whoever holds the model (the registry, a deployment) owns one reference and
 * gives it back with {@link #close()}; each ONNX run takes one more ({@link #tryIncRef()} /
 * {@link #decRef()}). The native sessions are closed when the last reference is gone, so an undeploy
 * or a swap never frees a session a running query still uses.
 */
public final class MachModel extends AbstractRefCounted implements Closeable {
    private static final AtomicLong LOADS = new AtomicLong();

    /** Unique per load in this JVM: caches key on it so a reloaded bundle never serves results of the old one. */
    private final long loadId = LOADS.incrementAndGet();
    private final String id;
    private final Path directory;
    private final ModelCard card;
    private final Featurizer featurizer;
    private final QueryNetwork network;
    /** The labels file the catalog is read from; null when the bundle has none. */
    private final Path labelsFile;
    /** A temporary copy (zip bundles): deleted with the model. */
    private final boolean ownsLabelsFile;
    private final long onnxBytes;
    private final String device;
    private final long loadMillis;
    private final Object catalogLock = new Object();
    /** Who admits the catalog's heap before it is read (a node's memory limit); null: no limit. */
    private volatile CatalogAdmission catalogAdmission;
    private volatile ProductCatalog catalog;
    private volatile long catalogLoadMillis;

    MachModel(
        String id,
        Path directory,
        ModelCard card,
        QueryNetwork network,
        Path labelsFile,
        boolean ownsLabelsFile,
        long onnxBytes,
        long loadMillis
    ) {
        super("mach-model-" + id);
        this.id = id;
        this.directory = directory;
        this.card = card;
        this.featurizer = card.featurizer();
        this.network = network;
        this.device = network.device();
        this.labelsFile = labelsFile;
        this.ownsLabelsFile = ownsLabelsFile;
        this.onnxBytes = onnxBytes;
        this.loadMillis = loadMillis;
    }

    public String id() {
        return id;
    }

    public Path directory() {
        return directory;
    }

    public ModelCard card() {
        return card;
    }

    /** The hashed-feature featurizer, or null when the network reads no features (input "encoder"). */
    public Featurizer featurizer() {
        return featurizer;
    }

    /** Thread-safe: ONNX Runtime sessions allow concurrent run() calls. */
    public QueryNetwork network() {
        return network;
    }

    /** "cpu" or "cuda" (an encoder bundle whose two sessions differ says which is where). */
    public String device() {
        return device;
    }

    /** Product id of label k; loads the catalog on first use. */
    public String label(int product) {
        return catalog().labels().get(product);
    }

    /** The card's label count (the catalog need not be loaded). */
    public int productCount() {
        return card.labelCount;
    }

    /** The product index; loads the catalog on first use. */
    public ProductIndex index() {
        return catalog().index();
    }

    /**
     * The catalog, read on the first call (thread-safe: one reader, the others wait for it). A catalog
     * that cannot be read is a 400 naming the file and the check; the next call tries again.
     */
    public ProductCatalog catalog() {
        try {
            return loadCatalog();
        } catch (MachBundleException e) {
            throw new OpenSearchStatusException("model [" + id + "]: cannot load its product catalog: " + e.getMessage(), RestStatus.BAD_REQUEST, e);
        }
    }

    /**
     * Admits a model's catalog on a node before it is read: its heap counts against the node's
     * memory limit from the first request that decodes, not from the deploy.
     */
    public interface CatalogAdmission {
        /** Reserves {@code bytes} for the model's catalog, or throws a 4xx that names the model and the limit. */
        void admit(MachModel model, long bytes);

        /** Gives back what {@link #admit} reserved for a catalog that could not be read. */
        void release(MachModel model, long bytes);
    }

    /** Sets who admits the catalog when it is first read (before it is). */
    public void admitCatalogWith(CatalogAdmission admission) {
        this.catalogAdmission = admission;
    }

    /**
     * Checks the labels file as the catalog load would (every line, uniqueness, count, checksum)
     * without keeping the ids: registration validates with it.
     */
    public void checkLabels() throws MachBundleException {
        if (labelsFile == null) return;
        AccessController.doPrivilegedChecked(() -> LabelsFile.check(labelsFile, card));
    }

    /** {@link #catalog()} with the bundle error as is; an admission refusal is thrown as is (a 4xx). */
    public ProductCatalog loadCatalog() throws MachBundleException {
        ProductCatalog c = catalog;
        if (c != null) return c;
        synchronized (catalogLock) {
            if (catalog == null) {
                if (labelsFile == null) {
                    throw new MachBundleException(
                        "its bundle has no labels (mach.json has no [labels]): it serves only index-side queries (the mach query with "
                            + "bucket_field, on an index whose mach_buckets field has family [" + card.hashFamily + "]); _predict and "
                            + "product_id_field need a bundle with its labels"
                    );
                }
                long t0 = System.nanoTime();
                // privileged: a query thread reads the file, with OpenSearch's frames on the stack
                long bytes = AccessController.doPrivilegedChecked(() -> ProductCatalog.heapBytes(labelsFile, card));
                CatalogAdmission admission = catalogAdmission;
                if (admission != null) admission.admit(this, bytes);
                boolean read = false;
                try {
                    catalog = AccessController.doPrivilegedChecked(() -> ProductCatalog.read(labelsFile, card));
                    read = true;
                } finally {
                    if (!read && admission != null) admission.release(this, bytes);
                }
                catalogLoadMillis = (System.nanoTime() - t0) / 1_000_000;
            }
            return catalog;
        }
    }

    /** Whether the bundle has a catalog (labels) at all. */
    public boolean hasCatalog() {
        return labelsFile != null;
    }

    /** Whether the catalog is in memory. */
    public boolean catalogLoaded() {
        return catalog != null;
    }

    /** Heap of the catalog; 0 until it is loaded. */
    public long catalogBytes() {
        ProductCatalog c = catalog;
        return c == null ? 0 : c.heapBytes();
    }

    public long catalogLoadMillis() {
        return catalogLoadMillis;
    }

    public long loadId() {
        return loadId;
    }

    public long loadMillis() {
        return loadMillis;
    }

    /**
     * Memory this model holds now: the native weights (about the size of its ONNX files, the encoder's
     * counted in full even when another model shares its session), its tokenizer and, once loaded, its
     * catalog on the heap.
     */
    public long memoryBytes() {
        return networkBytes() + catalogBytes();
    }

    /** The network's part of {@link #memoryBytes()}: its native weights and its tokenizer; what a deploy admits. */
    public long networkBytes() {
        return onnxBytes + network.heapBytes();
    }

    /** Gives back the owner's reference; the sessions close once no query runs on them. */
    @Override
    public void close() {
        decRef();
    }

    @Override
    protected void closeInternal() {
        network.close();
        catalog = null;
        if (ownsLabelsFile) {
            try {
                AccessController.doPrivilegedChecked(() -> Files.deleteIfExists(labelsFile));
            } catch (Exception ignored) {} // under the node's mach-tmp, cleared at the next start
        }
    }
}
