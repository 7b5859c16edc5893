package org.opensearch.mach.inference;

import org.opensearch.common.cache.Cache;
import org.opensearch.common.cache.CacheBuilder;
import org.opensearch.mach.model.MachModel;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * The coordinator's cache of decoded query results, so that a repeated query skips featurize + ONNX
 * Runtime + decode. Keyed by model id and load identity ({@link MachModel#loadId()}, so a reloaded
 * or replaced bundle never serves old results), the network's input key ({@link QueryNetwork#inputKey}:
 * format 1, the featurizer's normalized text, so texts that differ only in case, NFKC form, spacing
 * or punctuation share an entry; format 2, the token ids) and the decoding options. Holds only the decoded products and scores (top_n ints and
 * floats), never the [R, B] probabilities. Bounded LRU of {@code maxEntries}; 0 disables it.
 */
public final class PredictionCache {

    record Key(String modelId, long loadId, String inputKey, Decoder.Options options) {}

    /** Hit and miss counts of one model id (all its loads). */
    public record Stats(long hits, long misses) {}

    private final int maxEntries;
    private final Cache<Key, Decoder.Result> cache;
    private final Map<String, LongAdder[]> counts = new ConcurrentHashMap<>();

    public PredictionCache(int maxEntries) {
        if (maxEntries < 0) throw new IllegalArgumentException("mach.cache.size must be >= 0, got [" + maxEntries + "]");
        this.maxEntries = maxEntries;
        this.cache = maxEntries == 0 ? null : CacheBuilder.<Key, Decoder.Result>builder().setMaximumWeight(maxEntries).build();
    }

    public boolean enabled() {
        return cache != null;
    }

    public int maxEntries() {
        return maxEntries;
    }

    public int entries() {
        return cache == null ? 0 : cache.count();
    }

    public long evictions() {
        return cache == null ? 0 : cache.stats().getEvictions();
    }

    private static Key key(MachModel model, String text, Decoder.Options options) {
        return new Key(model.id(), model.loadId(), model.network().inputKey(text), options);
    }

    /** The cached prediction (no probabilities, zero timings) or null; counts a hit or a miss. */
    public Prediction get(MachModel model, String text, Decoder.Options options) {
        if (cache == null) return null;
        Decoder.Result r = cache.get(key(model, text, options));
        count(model.id(), r != null ? 0 : 1);
        return r == null ? null : new Prediction(model, null, r, 0, 0);
    }

    public void put(MachModel model, String text, Decoder.Options options, Prediction prediction) {
        if (cache == null) return;
        cache.put(key(model, text, options), prediction.result());
    }

    private void count(String modelId, int which) {
        counts.computeIfAbsent(modelId, k -> new LongAdder[] { new LongAdder(), new LongAdder() })[which].increment();
    }

    public Stats stats(String modelId) {
        LongAdder[] c = counts.get(modelId);
        return c == null ? new Stats(0, 0) : new Stats(c[0].sum(), c[1].sum());
    }

    /** Totals over all models. */
    public Stats stats() {
        long hits = 0, misses = 0;
        for (LongAdder[] c : counts.values()) {
            hits += c[0].sum();
            misses += c[1].sum();
        }
        return new Stats(hits, misses);
    }
}
