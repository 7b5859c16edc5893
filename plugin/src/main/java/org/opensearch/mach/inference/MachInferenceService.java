package org.opensearch.mach.inference;

import ai.onnxruntime.OrtException;

import org.opensearch.OpenSearchException;
import org.opensearch.core.action.ActionListener;
import org.opensearch.mach.model.MachModel;
import org.opensearch.mach.model.ModelRegistry;
import org.opensearch.threadpool.ThreadPool;

/**
 * Runs a model for one text on the node's {@value #THREAD_POOL} thread pool, so that inference
 * never blocks transport or search threads. One instance per node (created by the plugin).
 */
public final class MachInferenceService {
    public static final String THREAD_POOL = "mach_inference";

    private final ModelRegistry registry;
    private final ThreadPool threadPool;
    private volatile PredictionCache cache;

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

    /**
     * Async, for the query path: a cache hit answers at once on the calling thread; otherwise featurize,
     * run ONNX, decode (and cache) on the inference pool, where the listener is then called.
     */
    public void predict(String modelId, String text, Decoder.Options options, ActionListener<Prediction> listener) {
        PredictionCache cache = this.cache;
        MachModel loadedModel = registry.loadedModel(modelId);
        if (loadedModel != null) {
            Prediction hit;
            try {
                hit = cache.get(loadedModel, text, options);
            } catch (Exception e) {
                listener.onFailure(e);
                return;
            }
            if (hit != null) {
                listener.onResponse(hit);
                return;
            }
        }
        Runnable task = () -> {
            Prediction p;
            try {
                MachModel model = registry.get(modelId);
                // a miss above was counted; only a model loaded meanwhile gets its lookup here
                p = loadedModel == model ? null : cache.get(model, text, options);
                if (p == null) {
                    p = predict(model, text, options);
                    cache.put(model, text, options, p);
                }
            } catch (Exception e) {
                listener.onFailure(e);
                return;
            }
            listener.onResponse(p);
        };
        // keep the caller's thread context (headers, security) on the pool thread
        execute(task, listener::onFailure);
    }

    /** Runs a task on the inference pool with the caller's thread context; onRejected if the pool's queue is full. */
    public void execute(Runnable task, java.util.function.Consumer<Exception> onRejected) {
        try {
            threadPool.executor(THREAD_POOL).execute(threadPool.getThreadContext().preserveContext(task));
        } catch (Exception e) {
            onRejected.accept(e);
        }
    }

    /** Synchronous version, on the calling thread. */
    public Prediction predictNow(String modelId, String text, Decoder.Options options) {
        MachModel model = registry.get(modelId);
        return predict(model, text, options);
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
