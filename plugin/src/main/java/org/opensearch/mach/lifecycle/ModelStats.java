package org.opensearch.mach.lifecycle;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/**
 * Query statistics of one model on one node: inferences run here (cache hits are counted by the
 * result cache), failures, and latency percentiles over the last {@value #WINDOW} inferences
 * (featurize + ONNX Runtime + decode, milliseconds).
 */
public final class ModelStats {
    static final int WINDOW = 1024;

    private final LongAdder queries = new LongAdder();
    private final LongAdder errors = new LongAdder();
    private final long[] recentNanos = new long[WINDOW];
    private long recorded;

    public void recordSuccess(long nanos) {
        queries.increment();
        synchronized (recentNanos) {
            recentNanos[(int) (recorded++ % WINDOW)] = nanos;
        }
    }

    public void recordError() {
        queries.increment();
        errors.increment();
    }

    public Map<String, Object> toMap() {
        long[] window;
        synchronized (recentNanos) {
            window = Arrays.copyOf(recentNanos, (int) Math.min(recorded, WINDOW));
        }
        Arrays.sort(window);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("queries", queries.sum());
        m.put("errors", errors.sum());
        m.put("latency_window", window.length);
        m.put("latency_p50_ms", percentileMillis(window, 0.50));
        m.put("latency_p99_ms", percentileMillis(window, 0.99));
        return m;
    }

    /** Nearest-rank percentile; null when nothing was recorded. */
    static Double percentileMillis(long[] sorted, double p) {
        if (sorted.length == 0) return null;
        int rank = (int) Math.ceil(p * sorted.length);
        return sorted[Math.max(0, rank - 1)] / 1e6;
    }
}
