package org.opensearch.mach.model;

import org.opensearch.common.util.concurrent.AbstractRefCounted;
import org.opensearch.mach.featurize.Featurizer;
import org.opensearch.mach.inference.QueryNetwork;

import java.io.Closeable;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A loaded, validated bundle: card, network (its ONNX Runtime sessions), labels and product index.
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
    private final ProductLabels labels;
    private final ProductIndex index;
    private final String device;
    private final long loadMillis;

    MachModel(String id, Path directory, ModelCard card, QueryNetwork network, ProductLabels labels, ProductIndex index, long loadMillis) {
        super("mach-model-" + id);
        this.id = id;
        this.directory = directory;
        this.card = card;
        this.featurizer = card.featurizer();
        this.network = network;
        this.device = network.device();
        this.labels = labels;
        this.index = index;
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

    public String label(int product) {
        return labels.get(product);
    }

    public int productCount() {
        return labels.size();
    }

    public ProductIndex index() {
        return index;
    }

    public long loadId() {
        return loadId;
    }

    public long loadMillis() {
        return loadMillis;
    }

    /**
     * Memory this model holds: the native weights (about the size of its ONNX files, the encoder's
     * counted in full even when another model shares its session) and its labels, product index
     * and tokenizer on the heap.
     */
    public long estimatedBytes(long onnxBytes) {
        return onnxBytes + labels.heapBytes() + index.heapBytes() + network.heapBytes();
    }

    /** Gives back the owner's reference; the sessions close once no query runs on them. */
    @Override
    public void close() {
        decRef();
    }

    @Override
    protected void closeInternal() {
        network.close();
    }
}
