package org.opensearch.mach.inference;

import ai.onnxruntime.OrtException;

import org.opensearch.OpenSearchException;
import org.opensearch.OpenSearchStatusException;
import org.opensearch.ResourceNotFoundException;
import org.opensearch.action.support.PlainActionFuture;
import org.opensearch.action.IndicesRequest;
import org.opensearch.cluster.ClusterState;
import org.opensearch.cluster.metadata.IndexNameExpressionResolver;
import org.opensearch.common.unit.TimeValue;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.mach.lifecycle.MachModelsMetadata;
import org.opensearch.mach.lifecycle.ModelDeployer;
import org.opensearch.mach.lifecycle.ModelEntry;
import org.opensearch.core.action.ActionListener;
import org.opensearch.mach.model.MachModel;
import org.opensearch.mach.query.IndexBinding;
import org.opensearch.mach.model.ModelRegistry;
import org.opensearch.threadpool.ThreadPool;

import java.util.Set;
import java.util.function.Supplier;

/**
 * Runs a model for one text on the node's {@value #THREAD_POOL} thread pool, so that inference
 * never blocks transport or search threads. One instance per node (created by the plugin).
 */
public final class MachInferenceService {
    public static final String THREAD_POOL = "mach_inference";

    private final ModelRegistry registry;
    private final ThreadPool threadPool;
    private volatile PredictionCache cache;
    private volatile Supplier<ClusterState> clusterState;
    private volatile ModelDeployer deployer;
    private volatile IndexNameExpressionResolver resolver;

    public MachInferenceService(ModelRegistry registry, ThreadPool threadPool, PredictionCache cache) {
        this.registry = registry;
        this.threadPool = threadPool;
        this.cache = cache;
    }

    public PredictionCache cache() {
        return cache;
    }

    /** A new, empty cache of this many entries (0 disables it); counts start again from zero. */
    public void resizeCache(int maxEntries) {
        cache = new PredictionCache(maxEntries);
    }

    public ModelRegistry registry() {
        return registry;
    }

    /** Connects the cluster side: registered models and aliases in the cluster state, served by the deployer; index bindings. */
    public void attachCluster(Supplier<ClusterState> clusterState, ModelDeployer deployer, IndexNameExpressionResolver resolver) {
        this.clusterState = clusterState;
        this.deployer = deployer;
        this.resolver = resolver;
    }

    /** This node's deployer of registered models (null before the cluster side is attached). */
    public ModelDeployer deployer() {
        return deployer;
    }

    /** The model and product-id field the indices of a search bind (index.mach.* settings). */
    public IndexBinding binding(IndicesRequest search) {
        if (clusterState == null) throw new IllegalStateException("index bindings need the cluster state (not attached)");
        return IndexBinding.resolve(clusterState.get(), resolver, search);
    }

    /**
     * Finds the model a name stands for: an alias' target or a registered model (waiting while it loads
     * on this node), else a bundle under this node's {@code mach.models.dir}. Async; loading from disk
     * runs on the inference pool.
     */
    public void acquire(String name, ActionListener<MachModel> listener) {
        Supplier<ClusterState> state = this.clusterState;
        if (state != null) {
            ClusterState current = state.get();
            MachModelsMetadata metadata = MachModelsMetadata.of(current);
            ModelEntry entry = metadata.model(name);
            if (entry != null) {
                if (!entry.deployed()) {
                    listener.onFailure(new OpenSearchStatusException(
                        "model [" + entry.id() + "] is registered but not deployed; POST _plugins/_mach/models/" + entry.id() + "/_deploy",
                        RestStatus.CONFLICT
                    ));
                } else {
                    deployer.whenReady(entry.id(), current, listener);
                }
                return;
            }
        }
        MachModel loaded = registry.loadedModel(name);
        if (loaded != null) {
            listener.onResponse(loaded);
            return;
        }
        execute(() -> {
            MachModel m;
            try {
                m = registry.get(name);
            } catch (ResourceNotFoundException e) {
                Set<String> registered = state == null ? Set.of() : MachModelsMetadata.of(state.get()).models().keySet();
                Set<String> aliases = state == null ? Set.of() : MachModelsMetadata.of(state.get()).aliases().keySet();
                listener.onFailure(new ResourceNotFoundException(
                    "model [" + name + "] not found: not a registered model " + registered + " or alias " + aliases
                        + ", and no bundle of that name under " + registry.modelsDir() + " (available: " + registry.available() + ")"
                ));
                return;
            } catch (Exception e) {
                listener.onFailure(e);
                return;
            }
            listener.onResponse(m);
        }, listener::onFailure);
    }

    /** Blocking {@link #acquire}, for REST handlers already on the inference pool. */
    public MachModel acquireNow(String name) {
        PlainActionFuture<MachModel> f = PlainActionFuture.newFuture();
        acquire(name, f);
        return f.actionGet(TimeValue.timeValueMinutes(5));
    }

    /**
     * Async, for the query path: a cache hit answers at once on the calling thread; otherwise featurize,
     * run ONNX, decode (and cache) on the inference pool, where the listener is then called. A model
     * released between lookup and run (an alias swapped, then its old model undeployed) is looked up
     * again, so such a query still succeeds on the current model.
     */
    public void predict(String name, String text, Decoder.Options options, ActionListener<Prediction> listener) {
        predict(name, text, options, listener, 3);
    }

    private void predict(String name, String text, Decoder.Options options, ActionListener<Prediction> listener, int attempts) {
        acquire(name, ActionListener.wrap(model -> {
            PredictionCache cache = this.cache;
            Prediction hit = cache.get(model, text, options);
            if (hit != null) {
                listener.onResponse(hit);
                return;
            }
            // keep the caller's thread context (headers, security) on the pool thread
            execute(() -> {
                Prediction p;
                long t0 = System.nanoTime();
                try {
                    p = predict(model, text, options);
                    cache.put(model, text, options, p);
                } catch (ModelRetiredException e) {
                    if (attempts > 1) predict(name, text, options, listener, attempts - 1);
                    else listener.onFailure(e);
                    return;
                } catch (Exception e) {
                    ModelDeployer d = deployer;
                    if (d != null) d.stats(model.id()).recordError();
                    listener.onFailure(e);
                    return;
                }
                ModelDeployer d = deployer;
                if (d != null) d.stats(model.id()).recordSuccess(System.nanoTime() - t0);
                listener.onResponse(p);
            }, listener::onFailure);
        }, listener::onFailure));
    }

    /** Runs a task on the inference pool with the caller's thread context; onRejected if the pool's queue is full. */
    public void execute(Runnable task, java.util.function.Consumer<Exception> onRejected) {
        try {
            threadPool.executor(THREAD_POOL).execute(threadPool.getThreadContext().preserveContext(task));
        } catch (Exception e) {
            onRejected.accept(e);
        }
    }

    /** Synchronous version, on the calling thread (which may wait for the model to load). */
    public Prediction predictNow(String name, String text, Decoder.Options options) {
        for (int attempt = 1;; attempt++) {
            MachModel model = acquireNow(name);
            ModelDeployer d = deployer;
            long t0 = System.nanoTime();
            try {
                Prediction p = predict(model, text, options);
                if (d != null) d.stats(model.id()).recordSuccess(System.nanoTime() - t0);
                return p;
            } catch (ModelRetiredException e) {
                if (attempt == 3) throw e;
            } catch (RuntimeException e) {
                if (d != null) d.stats(model.id()).recordError();
                throw e;
            }
        }
    }

    public static Prediction predict(MachModel model, String text, Decoder.Options options) {
        int R = model.card().repetitions;
        if (options.minRepetitions() > R) {
            throw new IllegalArgumentException(
                "min_repetitions [" + options.minRepetitions() + "] is larger than the number of repetitions R = " + R + " of model [" + model.id() + "]"
            );
        }
        long t0 = System.nanoTime();
        if (model.featurizer().featureIds(text).length == 0) {
            // no letters or digits: the network would only return its prior, which says nothing about this text
            Decoder.Result none = new Decoder.Result(new int[0], new float[0], new float[0], options.strategy(), 0);
            return new Prediction(model, null, none, System.nanoTime() - t0, 0);
        }
        float[][] probs;
        try {
            probs = MachInference.probabilities(model, text);
        } catch (OrtException e) {
            throw new OpenSearchException("ONNX Runtime failed on model [" + model.id() + "]: " + e.getMessage(), e);
        }
        long t1 = System.nanoTime();
        Decoder.Result result = Decoder.decode(model.index(), probs, options);
        long t2 = System.nanoTime();
        return new Prediction(model, probs, result, t1 - t0, t2 - t1);
    }
}
