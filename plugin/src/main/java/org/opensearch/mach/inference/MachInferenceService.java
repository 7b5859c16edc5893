package org.opensearch.mach.inference;

import ai.onnxruntime.OrtException;

import org.opensearch.OpenSearchException;
import org.opensearch.OpenSearchStatusException;
import org.opensearch.ResourceNotFoundException;
import org.opensearch.action.support.ContextPreservingActionListener;
import org.opensearch.action.support.PlainActionFuture;
import org.opensearch.action.IndicesRequest;
import org.opensearch.cluster.ClusterState;
import org.opensearch.cluster.metadata.IndexNameExpressionResolver;
import org.opensearch.common.unit.TimeValue;
import org.opensearch.core.concurrency.OpenSearchRejectedExecutionException;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.mach.lifecycle.MachModelsMetadata;
import org.opensearch.mach.lifecycle.ModelDeployer;
import org.opensearch.mach.lifecycle.ModelEntry;
import org.opensearch.core.action.ActionListener;
import org.opensearch.mach.model.MachModel;
import org.opensearch.mach.query.IndexBinding;
import org.opensearch.mach.model.ModelRegistry;
import org.opensearch.threadpool.ThreadPool;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
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
    /** Inference batchers by model load; {@link #batchSize} 1 = every request alone. */
    private final Map<Long, InferenceBatcher<Pending>> batchers = new ConcurrentHashMap<>();
    private final int workers;
    private final int batchSize;

    public MachInferenceService(ModelRegistry registry, ThreadPool threadPool, PredictionCache cache) {
        this(registry, threadPool, cache, 1, 1);
    }

    /**
     * @param workers   inferences of one model running at once (the inference pool's size)
     * @param batchSize most requests one ONNX Runtime call takes when requests queue up (1: no batching)
     */
    public MachInferenceService(ModelRegistry registry, ThreadPool threadPool, PredictionCache cache, int workers, int batchSize) {
        this.registry = registry;
        this.threadPool = threadPool;
        this.cache = cache;
        this.workers = workers;
        this.batchSize = batchSize;
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
                MachModelsMetadata metadata = state == null ? MachModelsMetadata.EMPTY : MachModelsMetadata.of(state.get());
                Set<String> registered = metadata.models().keySet();
                Set<String> aliases = metadata.aliases().keySet();
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
            Prediction hit = options == null ? null : cache.get(model, text, options);
            if (hit != null) {
                listener.onResponse(hit);
                return;
            }
            if (options != null) checkOptions(model, options);
            // each request answers in its own thread context, whichever worker runs its batch
            ActionListener<Prediction> own = new ContextPreservingActionListener<>(threadPool.getThreadContext().newRestorableContext(false), listener);
            batcher(model).submit(new Pending(name, text, options, own, attempts, System.nanoTime()));
        }, listener::onFailure));
    }

    /**
     * Async, for index-side MACH: the network's [R, B] probabilities only (null for a text it cannot
     * read), nothing decoded, so no catalog is touched. Runs through the same batcher; not cached (the
     * cache keeps decoded products, not the R x B output).
     */
    public void probabilities(String name, String text, ActionListener<Prediction> listener) {
        predict(name, text, null, listener, 3);
    }

    /** One queued inference; options null: probabilities only. */
    private record Pending(String name, String text, Decoder.Options options, ActionListener<Prediction> listener, int attempts, long queuedNanos) {}

    private InferenceBatcher<Pending> batcher(MachModel model) {
        InferenceBatcher<Pending> b = batchers.get(model.loadId());
        if (b != null) return b;
        if (batchers.size() > 64) batchers.values().removeIf(x -> x.model().refCount() == 0); // released models
        return batchers.computeIfAbsent(model.loadId(), k -> new InferenceBatcher<>(model, workers, batchSize, task -> {
            try {
                threadPool.executor(THREAD_POOL).execute(task);
                return true;
            } catch (Exception rejected) {
                return false;
            }
        }, batch -> runBatch(model, batch), p -> p.listener().onFailure(new OpenSearchRejectedExecutionException(
            "the " + THREAD_POOL + " thread pool is saturated; retry later"
        ))));
    }

    /** Largest inference batch run for this model load so far (0 when none ran). */
    int largestBatch(MachModel model) {
        InferenceBatcher<Pending> b = batchers.get(model.loadId());
        return b == null ? 0 : b.largestBatch();
    }

    /**
     * Runs one batch on a pool thread: one ONNX Runtime call; returns one follow-up per request that
     * decodes, caches and answers it (the batcher runs them on the first free workers).
     */
    private List<Runnable> runBatch(MachModel model, List<Pending> batch) {
        BatchProbabilities probs;
        try {
            probs = probabilities(model, batch.stream().map(Pending::text).toList());
        } catch (ModelRetiredException e) {
            for (Pending p : batch) {
                if (p.attempts() > 1) predict(p.name(), p.text(), p.options(), p.listener(), p.attempts() - 1);
                else p.listener().onFailure(e);
            }
            return List.of();
        } catch (Exception e) {
            ModelDeployer d = deployer;
            for (Pending p : batch) {
                if (d != null) d.stats(model.id()).recordError();
                p.listener().onFailure(e);
            }
            return List.of();
        }
        List<Runnable> answers = new ArrayList<>(batch.size());
        for (int i = 0; i < batch.size(); i++) {
            Pending p = batch.get(i);
            float[][] own = probs.probabilities()[i];
            answers.add(() -> answer(model, p, own, probs.inferenceNanos()));
        }
        return answers;
    }

    private void answer(MachModel model, Pending p, float[][] probabilities, long inferenceNanos) {
        ModelDeployer d = deployer;
        Prediction prediction;
        try {
            if (p.options() == null) {
                prediction = new Prediction(model, probabilities, new Decoder.Result(new int[0], new float[0], new float[0], Decoder.Strategy.AUTO, 0), inferenceNanos, 0);
                if (d != null) d.stats(model.id()).recordSuccess(System.nanoTime() - p.queuedNanos());
                p.listener().onResponse(prediction);
                return;
            }
            prediction = decode(model, probabilities, p.options(), inferenceNanos);
        } catch (Exception e) {
            if (d != null) d.stats(model.id()).recordError();
            p.listener().onFailure(e);
            return;
        }
        cache.put(model, p.text(), p.options(), prediction);
        if (d != null) d.stats(model.id()).recordSuccess(System.nanoTime() - p.queuedNanos());
        p.listener().onResponse(prediction);
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
        return predict(model, List.of(text), List.of(options)).get(0);
    }

    static void checkOptions(MachModel model, Decoder.Options options) {
        Decoder.checkScoreMode(options.scoreMode(), model.card().aggregation);
        int R = model.card().repetitions;
        if (options.minRepetitions() > R) {
            throw new IllegalArgumentException(
                "min_repetitions [" + options.minRepetitions() + "] is larger than the number of repetitions R = " + R + " of model [" + model.id() + "]"
            );
        }
    }

    /**
     * Encode every text, run the ones the network can read (see {@link QueryInput#isEmpty()}) as one
     * batch, decode each with its own options. A text without letters or digits (format 1) or without
     * any word piece (format 2) gets no products: the network would only return its prior, which
     * says nothing about it.
     */
    public static List<Prediction> predict(MachModel model, List<String> texts, List<Decoder.Options> options) {
        for (Decoder.Options o : options) checkOptions(model, o);
        BatchProbabilities probs = probabilities(model, texts);
        List<Prediction> predictions = new ArrayList<>(texts.size());
        for (int i = 0; i < texts.size(); i++) {
            predictions.add(decode(model, probs.probabilities()[i], options.get(i), probs.inferenceNanos()));
        }
        return predictions;
    }

    /** Each text's [R, B] probabilities (null for a text the network cannot read), from one network pass. */
    record BatchProbabilities(float[][][] probabilities, long inferenceNanos) {}

    static BatchProbabilities probabilities(MachModel model, List<String> texts) {
        long t0 = System.nanoTime();
        int n = texts.size();
        List<QueryInput> batch = new ArrayList<>(n);
        boolean[] run = new boolean[n];
        for (int i = 0; i < n; i++) {
            QueryInput input = model.network().encode(texts.get(i));
            if (input.isEmpty() == false) {
                batch.add(input);
                run[i] = true;
            }
        }
        float[][][] probs = new float[n][][];
        if (batch.isEmpty() == false) {
            float[][][] out;
            try {
                out = MachInference.probabilities(model, batch);
            } catch (OrtException e) {
                throw new OpenSearchException("ONNX Runtime failed on model [" + model.id() + "]: " + e.getMessage(), e);
            }
            for (int i = 0, r = 0; i < n; i++) if (run[i]) probs[i] = out[r++];
        }
        return new BatchProbabilities(probs, System.nanoTime() - t0);
    }

    static Prediction decode(MachModel model, float[][] probabilities, Decoder.Options options, long inferenceNanos) {
        long t1 = System.nanoTime();
        Decoder.Result result = probabilities == null
            ? new Decoder.Result(new int[0], new float[0], new float[0], options.strategy(), 0)
            : Decoder.decode(model.index(), probabilities, options, model.card().aggregation);
        return new Prediction(model, probabilities, result, inferenceNanos, System.nanoTime() - t1);
    }
}
