package org.opensearch.mach.inference;

import org.opensearch.mach.model.MachModel;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * Dynamic batching of one model's inferences, without added latency: a request never waits for a
 * batch to fill. Up to {@code maxWorkers} workers run at once; each takes whatever is queued (at most
 * {@code maxBatch} requests) and runs it as one ONNX Runtime call. When the node is idle every request
 * runs alone, as before; when requests arrive faster than the pool runs them, they queue and the
 * next free worker runs them together: the [H, R*B] output layer, the bulk of the model, is then read
 * once per batch instead of once per query. What follows the ONNX call per request (decoding, or
 * the index-side bucket table) is handed back as follow-ups that any free worker runs before the
 * next batch; the worker that ran the batch runs the first itself, so a request alone is answered on
 * the thread that ran its network.
 */
final class InferenceBatcher<T> {
    private final MachModel model;
    private final ConcurrentLinkedQueue<T> queue = new ConcurrentLinkedQueue<>();
    /** Work a batch hands on (decoding each of its requests); taken before any new batch. */
    private final ConcurrentLinkedQueue<Runnable> followUps = new ConcurrentLinkedQueue<>();
    private final AtomicInteger workers = new AtomicInteger();
    /** Largest batch run so far (tests and stats: whether batching happens at all). */
    private final AtomicInteger largestBatch = new AtomicInteger();
    private final int maxWorkers;
    private final int maxBatch;
    /** Starts a worker on the pool; false when the pool refused it (queue full). */
    private final java.util.function.Predicate<Runnable> start;
    /** Runs one batch and returns its follow-ups (may be empty). */
    private final Function<List<T>, List<Runnable>> runBatch;
    private final Consumer<T> reject;

    InferenceBatcher(MachModel model, int maxWorkers, int maxBatch, java.util.function.Predicate<Runnable> start, Function<List<T>, List<Runnable>> runBatch,
        Consumer<T> reject) {
        this.model = model;
        this.maxWorkers = maxWorkers;
        this.maxBatch = maxBatch;
        this.start = start;
        this.runBatch = runBatch;
        this.reject = reject;
    }

    MachModel model() {
        return model;
    }

    int largestBatch() {
        return largestBatch.get();
    }

    void submit(T request) {
        queue.add(request);
        maybeStartWorker();
    }

    private void maybeStartWorker() {
        while (!queue.isEmpty() || !followUps.isEmpty()) {
            int w = workers.get();
            if (w >= maxWorkers) return; // a running worker will take it
            if (workers.compareAndSet(w, w + 1)) {
                if (!start.test(this::work)) {
                    workers.decrementAndGet();
                    // the pool is saturated: refuse what is queued now rather than let it wait unseen
                    for (T t; (t = queue.poll()) != null;) reject.accept(t);
                }
                return;
            }
        }
    }

    private void work() {
        try {
            while (true) {
                Runnable followUp = followUps.poll();
                if (followUp != null) {
                    followUp.run();
                    continue;
                }
                List<T> batch = new ArrayList<>(Math.min(maxBatch, 8));
                for (T t; batch.size() < maxBatch && (t = queue.poll()) != null;) batch.add(t);
                if (batch.isEmpty()) return;
                largestBatch.accumulateAndGet(batch.size(), Math::max);
                // after one ONNX call for several requests, each request's decoding is a follow-up: a second
                // worker decodes in parallel and each request is answered when its own decoding ends (at
                // K = 1M decoding costs ~2-4 ms a request: decoding a batch of 4 in turn made the last wait
                // for all four); this worker drains them itself if no other can start. It runs the first one
                // itself at once: a batch of one (every request on an idle node) is then answered on the
                // thread that ran its network, without waking a second worker to take it over
                List<Runnable> next = runBatch.apply(batch);
                if (next.isEmpty()) continue;
                if (next.size() > 1) {
                    followUps.addAll(next.subList(1, next.size()));
                    maybeStartWorker();
                }
                next.get(0).run();
            }
        } finally {
            workers.decrementAndGet();
            maybeStartWorker(); // something queued between the last poll and the decrement
        }
    }
}
