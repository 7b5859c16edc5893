package org.opensearch.mach.model;

import org.opensearch.OpenSearchStatusException;
import org.opensearch.core.common.unit.ByteSizeValue;
import org.opensearch.core.rest.RestStatus;

import java.util.IdentityHashMap;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * What the models of one node hold against {@code mach.models.memory_limit}: registered models
 * deployed on the node ({@code ModelDeployer}) and bundles of {@code mach.models.dir}
 * ({@link ModelRegistry}) alike, each network from its load and each catalog from the request that
 * first needs it. One lock for every admission, so two models admitted at once cannot both pass a
 * limit that fits only one. Holders are compared by identity (a deployment, a model, a catalog key).
 */
public final class NodeModelMemory {
    public static final String LIMIT_SETTING = "mach.models.memory_limit";

    private final LongSupplier limit;
    private final Map<Object, Long> held = new IdentityHashMap<>();

    public NodeModelMemory(LongSupplier limit) {
        this.limit = limit;
    }

    /** No limit (tests, tools). */
    public static NodeModelMemory unlimited() {
        return new NodeModelMemory(() -> Long.MAX_VALUE);
    }

    public long limit() {
        return limit.getAsLong();
    }

    /** Everything held on this node. */
    public synchronized long used() {
        long used = 0;
        for (long b : held.values()) used += b;
        return used;
    }

    /** What {@code holder} holds (0 when nothing). */
    public synchronized long held(Object holder) {
        return held.getOrDefault(holder, 0L);
    }

    /** The refusal of an admission: the figures, for a message that names the model and the limit. */
    @FunctionalInterface
    public interface Refusal {
        RuntimeException refuse(long bytes, long usedByOthers, long limit);
    }

    /**
     * Makes {@code holder} hold {@code bytes} (replacing what it held) when what the others hold plus
     * {@code bytes} fits the limit; otherwise throws {@code refusal}'s exception and changes nothing.
     */
    public synchronized void admit(Object holder, long bytes, Refusal refusal) {
        long others = used() - held(holder);
        long lim = limit.getAsLong();
        if (others + bytes > lim) throw refusal.refuse(bytes, others, lim);
        held.put(holder, bytes);
    }

    /** Sets what {@code holder} holds without a check (a smaller, measured figure replacing an estimate). */
    public synchronized void set(Object holder, long bytes) {
        held.put(holder, bytes);
    }

    /** {@code holder} holds nothing any more. */
    public synchronized void release(Object holder) {
        held.remove(holder);
    }

    /** The 400 of a network that does not fit: the model, its need, what the node's models use, the limit. */
    public static OpenSearchStatusException networkRefusal(String what, long bytes, long used, long limit) {
        return new OpenSearchStatusException(
            what + " needs " + new ByteSizeValue(bytes) + " for its network, models loaded on this node use " + new ByteSizeValue(used)
                + ", " + LIMIT_SETTING + " is " + new ByteSizeValue(limit),
            RestStatus.BAD_REQUEST
        );
    }

    /**
     * A catalog admission for one model: its heap is held (under a key of its own) from the request
     * that first needs the catalog. A refusal is a 400 naming the model, the figures and the limit; the
     * model keeps serving index-side queries, and the next request that needs the catalog asks again.
     */
    public CatalogAdmission catalogAdmission(String modelId) {
        return new CatalogAdmission(modelId);
    }

    public final class CatalogAdmission implements MachModel.CatalogAdmission {
        private final String modelId;
        /** Its model was released: a query still running on it may read the catalog, held by no account. */
        private boolean closed;

        private CatalogAdmission(String modelId) {
            this.modelId = modelId;
        }

        @Override
        public void admit(MachModel model, long bytes) {
            synchronized (NodeModelMemory.this) {
                if (closed) return;
                NodeModelMemory.this.admit(this, bytes, (need, used, lim) -> new OpenSearchStatusException(
                    "model [" + modelId + "]: its product catalog (needed by product_id_field queries and _predict) needs "
                        + new ByteSizeValue(need) + " of heap, models loaded on this node use " + new ByteSizeValue(used) + ", "
                        + LIMIT_SETTING + " is " + new ByteSizeValue(lim) + "; raise the limit or undeploy a "
                        + "model (bucket_field queries need no catalog and keep working)",
                    RestStatus.BAD_REQUEST
                ));
            }
        }

        @Override
        public void release(MachModel model, long bytes) {
            NodeModelMemory.this.release(this);
        }

        /** The catalog's heap admitted on this node (0 until it is loaded). */
        public long held() {
            return NodeModelMemory.this.held(this);
        }

        /** Gives back the catalog's share when its model is released; nothing is held for it afterwards. */
        public void close() {
            synchronized (NodeModelMemory.this) {
                closed = true;
                NodeModelMemory.this.release(this);
            }
        }
    }
}
