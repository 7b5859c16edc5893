package org.opensearch.mach.lifecycle;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.opensearch.ExceptionsHelper;
import org.opensearch.OpenSearchStatusException;
import org.opensearch.cluster.ClusterChangedEvent;
import org.opensearch.cluster.ClusterState;
import org.opensearch.cluster.ClusterStateListener;
import org.opensearch.cluster.routing.IndexRoutingTable;
import org.opensearch.core.action.ActionListener;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.BundleZip;
import org.opensearch.mach.model.MachBundleException;
import org.opensearch.mach.model.MachModel;
import org.opensearch.mach.model.NodeModelMemory;
import org.opensearch.secure_sm.AccessController;
import org.opensearch.threadpool.ThreadPool;

import java.io.Closeable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Makes this node serve what the cluster state says is deployed. On every cluster state change it
 * compares {@link MachModelsMetadata}'s deployed models with what it holds: it loads the missing ones
 * from the {@link BundleStore} (on the generic pool, once the store's shard is active, so a restarted
 * node or one that joins later catches up by itself) and releases the ones no longer deployed (the
 * ONNX session closes when the last running query is done with it).
 */
public final class ModelDeployer implements ClusterStateListener, Closeable {
    private static final Logger logger = LogManager.getLogger(ModelDeployer.class);

    public enum State {
        LOADING,
        DEPLOYED,
        FAILED
    }

    /** One deployed model on this node. Guarded by the deployer's lock, except the volatile reads. */
    static final class Deployment {
        final ModelEntry entry;
        volatile State state = State.LOADING;
        volatile MachModel model;
        volatile String error;
        /** Whether a later cluster state may fix the failure (store not available yet, memory freed). */
        volatile boolean retryable;
        volatile long loadMillis;
        /**
         * The network's bytes held against the limit on this node: the entry's figure while loading, then,
         * for an entry whose figure counts the catalog too (recorded by an earlier build), the network
         * measured from the loaded bundle.
         */
        volatile long networkBytes;
        /** Holds the catalog's heap on this node from the request that first needs the catalog. */
        volatile NodeModelMemory.CatalogAdmission catalog;
        /** A load was started for this deployment (it is not just waiting for the store). */
        boolean loadStarted;
        final List<ActionListener<MachModel>> waiting = new ArrayList<>();

        Deployment(ModelEntry entry) {
            this.entry = entry;
            this.networkBytes = entry.memoryBytes();
        }
    }

    /** How long a query waits for a model that is loading on this node. */
    static final org.opensearch.common.unit.TimeValue LOAD_WAIT = org.opensearch.common.unit.TimeValue.timeValueSeconds(60);

    private final BundleStore store;
    private final ThreadPool threadPool;
    private final boolean tryCuda;
    private final int intraOpThreads;
    private final NodeModelMemory memory;
    /** This node's directory for the bundle zip read from the store and its extracted files. */
    private final Path tmpRoot;
    private final Map<String, Deployment> deployments = new ConcurrentHashMap<>();
    private final Map<String, ModelStats> stats = new ConcurrentHashMap<>();
    private volatile boolean closed;
    /** Records a network measured for an entry of an earlier build in the cluster state (null: not recorded). */
    private volatile java.util.function.Consumer<ModelEntry> measuredNetwork;

    public ModelDeployer(BundleStore store, ThreadPool threadPool, boolean tryCuda, int intraOpThreads, NodeModelMemory memory, Path tmpRoot) {
        this.tmpRoot = tmpRoot;
        this.store = store;
        this.threadPool = threadPool;
        this.tryCuda = tryCuda;
        this.intraOpThreads = intraOpThreads;
        this.memory = memory;
    }

    /**
     * Who records the network this node measured for a model registered by an earlier build (whose
     * record counts the catalog too), so that the cluster manager's deploy check counts the network
     * alone from then on.
     */
    public void recordMeasuredNetworkWith(java.util.function.Consumer<ModelEntry> recorder) {
        this.measuredNetwork = recorder;
    }

    @Override
    public void clusterChanged(ClusterChangedEvent event) {
        boolean metadataChanged = event.changedCustomMetadataSet().contains(MachModelsMetadata.TYPE);
        if (metadataChanged || event.routingTableChanged() || event.nodesChanged() || deployments.isEmpty() == false) {
            reconcile(event.state());
        }
    }

    /** Starts the loads and releases that bring this node in line with the state. */
    synchronized void reconcile(ClusterState state) {
        if (closed) return;
        Map<String, ModelEntry> wanted = new TreeMap<>();
        for (ModelEntry e : MachModelsMetadata.of(state).models().values()) {
            if (e.deployed()) wanted.put(e.id(), e);
        }
        for (Deployment d : List.copyOf(deployments.values())) {
            ModelEntry w = wanted.get(d.entry.id());
            if (w == null || !w.storageId().equals(d.entry.storageId())) release(d, "undeployed");
        }
        boolean storeReady = storeReady(state);
        for (ModelEntry e : wanted.values()) {
            Deployment d = deployments.get(e.id());
            if (d != null) {
                boolean busy = d.state == State.DEPLOYED || (d.state == State.LOADING && d.loadStarted);
                if (busy || (d.state == State.FAILED && !d.retryable)) continue;
            } else {
                d = new Deployment(e);
                deployments.put(e.id(), d);
            }
            d.state = State.LOADING;
            if (!storeReady) {
                d.error = "waiting for the bundle store [" + BundleStore.INDEX + "] to become available";
                continue;
            }
            d.error = null;
            d.retryable = false;
            d.loadStarted = true;
            Deployment loading = d;
            threadPool.generic().execute(() -> load(loading));
        }
    }

    private static boolean storeReady(ClusterState state) {
        IndexRoutingTable table = state.routingTable().index(BundleStore.INDEX);
        return table != null && table.allPrimaryShardsActive();
    }

    private void load(Deployment d) {
        ModelEntry e = d.entry;
        long t0 = System.nanoTime();
        Path zip = null;
        MachModel model = null;
        try {
            // held while loading, so that two models loading at once cannot both pass a limit that fits one
            memory.admit(d, e.memoryBytes(), (bytes, used, limit) -> {
                d.retryable = true;
                return NodeModelMemory.networkRefusal("model [" + e.id() + "]", bytes, used, limit);
            });
            zip = AccessController.doPrivilegedChecked(() -> BundleZip.newTempZip(tmpRoot, e.id()));
            Path file = zip;
            AccessController.doPrivilegedChecked(() -> {
                store.readBundle(e.storageId(), e.chunks(), e.sha256(), file);
                return null;
            });
            model = AccessController.doPrivilegedChecked(() -> BundleLoader.loadZip(e.id(), file, tmpRoot, tryCuda, intraOpThreads));
        } catch (Exception ex) {
            if (!d.retryable) d.retryable = isTransient(ex);
            memory.release(d);
            fail(d, ex);
            return;
        } finally {
            deleteQuietly(zip);
        }
        List<ActionListener<MachModel>> waiters;
        synchronized (this) {
            if (closed || deployments.get(e.id()) != d) { // undeployed or replaced while loading
                model.close();
                memory.release(d);
                waiters = drain(d);
                d.state = State.FAILED;
                d.error = "undeployed while loading";
            } else {
                if (!e.networkOnly()) {
                    // its recorded figure counts the catalog too: hold the network as measured from the bundle
                    // (the catalog is held apart once a request needs it), not the catalog twice
                    d.networkBytes = model.networkBytes();
                    memory.set(d, d.networkBytes);
                }
                d.catalog = memory.catalogAdmission(e.id());
                model.admitCatalogWith(d.catalog);
                d.model = model;
                d.loadMillis = (System.nanoTime() - t0) / 1_000_000;
                d.state = State.DEPLOYED;
                d.error = null;
                waiters = drain(d);
                logger.info("deployed mach model [{}] ({} products, {}) in {} ms", e.id(), e.products(), model.device(), d.loadMillis);
            }
        }
        for (ActionListener<MachModel> l : waiters) {
            if (d.state == State.DEPLOYED) l.onResponse(model);
            else l.onFailure(notServing(e.id(), d));
        }
        java.util.function.Consumer<ModelEntry> recorder = measuredNetwork;
        if (d.state == State.DEPLOYED && !e.networkOnly() && recorder != null) {
            recorder.accept(e.withMeasuredNetwork(d.networkBytes));
        }
    }

    private static boolean isTransient(Exception e) {
        Throwable t = e;
        while (t != null) {
            if (t instanceof org.opensearch.action.NoShardAvailableActionException
                || t instanceof org.opensearch.index.IndexNotFoundException
                || t instanceof org.opensearch.cluster.block.ClusterBlockException
                || t instanceof org.opensearch.transport.NodeDisconnectedException) {
                return true;
            }
            t = t.getCause();
        }
        return false;
    }

    private void fail(Deployment d, Exception ex) {
        List<ActionListener<MachModel>> waiters;
        String why = reason(ex);
        synchronized (this) {
            d.state = State.FAILED;
            d.error = why;
            waiters = drain(d);
        }
        logger.warn("cannot deploy mach model [{}] on this node{}: {}", d.entry.id(), d.retryable ? " (will retry)" : "", why);
        for (ActionListener<MachModel> l : waiters) l.onFailure(notServing(d.entry.id(), d));
    }

    /**
     * What a failed deploy shows its users (the models API): the message of the cause that says why, not a
     * wrapper's ("java.util.concurrent.ExecutionException: ..."). A wrapper is an exception that only carries
     * its cause: OpenSearch's transport wrappers, the JDK's (execution, reflection, unchecked I/O) and any
     * whose message is missing or just its cause's text. A MachBundleException says what is wrong with the
     * bundle: its message is kept as it is.
     */
    static String reason(Throwable ex) {
        Throwable t = ex;
        for (int depth = 0; depth < 16; depth++) { // bounded: a cause chain may loop
            t = ExceptionsHelper.unwrapCause(t);
            Throwable cause = t.getCause();
            if (cause == null || cause == t || t instanceof MachBundleException || !isWrapper(t, cause)) break;
            t = cause;
        }
        String message = t.getMessage();
        return message == null || message.isBlank() ? t.toString() : message;
    }

    private static boolean isWrapper(Throwable t, Throwable cause) {
        return t instanceof java.util.concurrent.ExecutionException
            || t instanceof java.util.concurrent.CompletionException
            || t instanceof java.io.UncheckedIOException
            || t instanceof java.lang.reflect.InvocationTargetException
            || t instanceof java.lang.reflect.UndeclaredThrowableException
            || t instanceof java.security.PrivilegedActionException
            || t instanceof org.opensearch.common.util.concurrent.UncategorizedExecutionException
            || t.getMessage() == null
            || t.getMessage().equals(cause.toString());
    }

    private static List<ActionListener<MachModel>> drain(Deployment d) {
        List<ActionListener<MachModel>> w = new ArrayList<>(d.waiting);
        d.waiting.clear();
        return w;
    }

    private void release(Deployment d, String why) {
        deployments.remove(d.entry.id(), d);
        List<ActionListener<MachModel>> waiters = drain(d);
        MachModel m = d.model;
        d.model = null;
        d.state = State.FAILED;
        d.error = why;
        if (m != null) {
            memory.release(d);
            if (d.catalog != null) d.catalog.close();
            m.close(); // the deployment's reference; running queries hold their own
            logger.info("released mach model [{}] ({})", d.entry.id(), why);
        }
        for (ActionListener<MachModel> l : waiters) l.onFailure(notServing(d.entry.id(), d));
    }

    /**
     * Calls back with the model once it is deployed on this node (at once when it already is; after
     * the load when it is loading: a query that reaches a node still catching up waits instead of failing).
     */
    public void whenReady(String id, ClusterState state, ActionListener<MachModel> listener) {
        Deployment d = deployments.get(id);
        if (d != null && d.state == State.DEPLOYED && d.model != null) {
            listener.onResponse(d.model);
            return;
        }
        synchronized (this) {
            // the cluster state the caller saw says deployed, but this listener may not have run on it
            // yet (cluster state listeners run after the state is visible): catch up now
            if (deployments.get(id) == null) reconcile(state);
            d = deployments.get(id);
            if (d != null && d.state == State.LOADING) {
                // bounded wait: a model that cannot load (store unavailable) must not hold queries forever
                ActionListener<MachModel> once = ActionListener.notifyOnce(listener);
                d.waiting.add(once);
                threadPool.schedule(() -> once.onFailure(new OpenSearchStatusException(
                    "model [" + id + "] is still loading on this node after " + LOAD_WAIT + "; retry later", RestStatus.SERVICE_UNAVAILABLE
                )), LOAD_WAIT, ThreadPool.Names.GENERIC);
                return;
            }
        }
        if (d != null && d.state == State.DEPLOYED) listener.onResponse(d.model);
        else listener.onFailure(notServing(id, d));
    }

    private static OpenSearchStatusException notServing(String id, Deployment d) {
        String why = d == null ? "it is not deployed on this node" : "its deployment on this node failed: " + d.error;
        return new OpenSearchStatusException("model [" + id + "] cannot serve: " + why, RestStatus.SERVICE_UNAVAILABLE);
    }

    /** The model if it is deployed and loaded on this node, else null. */
    public MachModel deployed(String id) {
        Deployment d = deployments.get(id);
        return d != null && d.state == State.DEPLOYED ? d.model : null;
    }

    /** The models deployed and loaded on this node, by id. */
    public Map<String, MachModel> deployedModels() {
        Map<String, MachModel> out = new TreeMap<>();
        for (Deployment d : deployments.values()) {
            MachModel m = d.model;
            if (d.state == State.DEPLOYED && m != null) out.put(d.entry.id(), m);
        }
        return out;
    }

    public ModelStats stats(String id) {
        return stats.computeIfAbsent(id, k -> new ModelStats());
    }

    /** This node's view of every deployment (state, error, load time, memory, query statistics), by model id. */
    public Map<String, Object> nodeView() {
        Map<String, Object> out = new TreeMap<>();
        for (Deployment d : deployments.values()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("state", d.state.name().toLowerCase(java.util.Locale.ROOT));
            if (d.error != null) m.put("error", d.error);
            if (d.state == State.DEPLOYED) {
                m.put("load_ms", d.loadMillis);
                MachModel model = d.model;
                NodeModelMemory.CatalogAdmission catalog = d.catalog;
                long catalogBytes = catalog == null ? 0 : catalog.held();
                // counted against mach.models.memory_limit: the network from the deploy, the catalog once loaded here
                m.put("memory_bytes", d.networkBytes + catalogBytes);
                m.put("network_bytes", d.networkBytes);
                m.put("device", model == null ? null : model.device());
                if (model != null) {
                    // the catalog (labels + product index) is loaded by the first _predict or product_id_field query here
                    m.put("catalog_loaded", model.catalogLoaded());
                    m.put("catalog_bytes", model.catalogBytes());
                    m.put("heap_and_native_bytes", model.memoryBytes());
                }
            }
            m.put("sha256", d.entry.sha256());
            m.putAll(stats(d.entry.id()).toMap());
            out.put(d.entry.id(), m);
        }
        return out;
    }

    private static void deleteQuietly(Path p) {
        if (p == null) return;
        try {
            AccessController.doPrivilegedChecked(() -> Files.deleteIfExists(p));
        } catch (Exception ignored) {}
    }

    @Override
    public synchronized void close() {
        closed = true;
        for (Deployment d : List.copyOf(deployments.values())) release(d, "node closing");
    }
}
