package org.opensearch.mach.inference;

import org.opensearch.mach.model.ProductIndex;

import java.util.Arrays;
import java.util.Locale;

/**
 * Turns the [R, B] bucket probabilities of one query into the top-N products.
 *
 * <p>Product k's score is {@code mean_r P_r(h_r(k))} (MACH), or with a {@link Aggregation#LOG_MEAN} model the
 * mean of each repetition's floored log probability ({@link Aggregation}). {@link Strategy#EXACT} scores all K
 * products (O(K R)). {@link Strategy#CANDIDATES} takes the top-m buckets of each repetition, unions
 * their products through the inverse index, keeps those found in at least f repetitions' top-m,
 * and scores only those exactly (the result equals exact decoding whenever the candidates contain
 * the exact top-N). {@link Strategy#AUTO} is exact up to {@link #AUTO_EXACT_MAX_PRODUCTS} products
 * (and f = 1), candidates above. The calibrated score {@code B/(B-1) (mean - 1/B)} ranks the same.
 */
public final class Decoder {
    /**
     * Up to this many products AUTO scores all of them. Exact decoding is the model's true ranking;
     * candidates are faster (R = 16, B = 4096, m = 10, 2 shared cores: 0.28 vs 0.93 ms p50 at K = 54,667)
     * but can miss products (Home Depot dev: recall@100 0.2575 vs 0.2738 exact). Exact costs ~0.45 ms at
     * 20k products, cheap enough to keep the exact ranking there.
     */
    public static final int AUTO_EXACT_MAX_PRODUCTS = 20_000;

    private Decoder() {}

    public enum Strategy {
        AUTO,
        EXACT,
        CANDIDATES;

        public static Strategy parse(String s) {
            for (Strategy v : values()) {
                if (v.name().toLowerCase(Locale.ROOT).equals(s)) return v;
            }
            throw new IllegalArgumentException("unknown decoding [" + s + "]; use one of [auto, exact, candidates]");
        }

        public String value() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    public enum ScoreMode {
        MEAN,
        CALIBRATED;

        public static ScoreMode parse(String s) {
            for (ScoreMode v : values()) {
                if (v.name().toLowerCase(Locale.ROOT).equals(s)) return v;
            }
            throw new IllegalArgumentException("unknown score [" + s + "]; use one of [mean, calibrated]");
        }

        public String value() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /**
     * @param topN products to return
     * @param bucketsPerRepetition m, for candidate decoding
     * @param minRepetitions f: a candidate must be in the top-m buckets of at least f repetitions
     */
    public record Options(int topN, Strategy strategy, int bucketsPerRepetition, int minRepetitions, ScoreMode scoreMode) {
        public Options {
            if (topN < 1) throw new IllegalArgumentException("top_n must be >= 1, got " + topN);
            if (bucketsPerRepetition < 1) throw new IllegalArgumentException("buckets_per_repetition must be >= 1, got " + bucketsPerRepetition);
            if (minRepetitions < 1) throw new IllegalArgumentException("min_repetitions must be >= 1, got " + minRepetitions);
            if (strategy == Strategy.EXACT && minRepetitions > 1) {
                throw new IllegalArgumentException("min_repetitions applies to candidate decoding only; use decoding [candidates] or [auto]");
            }
        }
    }

    /**
     * Decoded products, best first.
     * @param products product indices (label order)
     * @param scores the requested score (mean or calibrated)
     * @param meanScores mean probability of each product
     * @param used the strategy actually used
     * @param scored how many products were scored exactly
     */
    public record Result(int[] products, float[] scores, float[] meanScores, Strategy used, int scored) {}

    /** Decodes a {@link Aggregation#MEAN} model's output. */
    public static Result decode(ProductIndex index, float[][] probs, Options options) {
        return decode(index, probs, options, Aggregation.MEAN);
    }

    /**
     * Decodes with the model's aggregation: candidates are the top buckets by probability either way (the
     * transform keeps each repetition's order), and products are ranked by the aggregated score.
     */
    public static Result decode(ProductIndex index, float[][] probs, Options options, Aggregation aggregation) {
        int R = index.repetitions();
        if (probs.length != R) throw new IllegalArgumentException("expected " + R + " repetitions, got " + probs.length);
        checkScoreMode(options.scoreMode(), aggregation);
        float[][] bucketScores = aggregation.bucketScores(probs);
        Strategy used = options.strategy();
        if (used == Strategy.AUTO) {
            used = index.products() <= AUTO_EXACT_MAX_PRODUCTS && options.minRepetitions() == 1 ? Strategy.EXACT : Strategy.CANDIDATES;
        }
        int n = Math.min(options.topN(), index.products());
        TopN top = new TopN(n);
        int scored = 0;
        if (used == Strategy.EXACT) {
            // product by product: the bucket table is read sequentially, the [R, B] probabilities stay in cache
            int K = index.products();
            for (int k = 0; k < K; k++) {
                top.offer(k, index.mean(bucketScores, k));
            }
            scored = K;
        } else {
            scored = candidates(index, probs, bucketScores, options, top);
        }
        int[] products = top.drainBestFirst();
        float[] means = new float[products.length];
        float[] scores = new float[products.length];
        int B = index.buckets();
        for (int i = 0; i < products.length; i++) {
            double mean = mean(index, probs, products[i]);
            means[i] = (float) mean;
            if (aggregation == Aggregation.LOG_MEAN) scores[i] = (float) index.mean(bucketScores, products[i]);
            else scores[i] = (float) (options.scoreMode() == ScoreMode.CALIBRATED ? calibrated(mean, B) : mean);
        }
        return new Result(products, scores, means, used, scored);
    }

    /** Candidates whose bucket rows are fetched together before any is scored. */
    private static final int BATCH = 32;
    /** Consumes the prefetching reads so that the JIT keeps them. */
    @SuppressWarnings("unused")
    private static int sink;
    /** One bit per product, all clear between queries; per thread, reused up to this many products. */
    private static final int MAX_REUSED_SEEN_PRODUCTS = 1 << 26;
    private static final ThreadLocal<long[]> SEEN = ThreadLocal.withInitial(() -> new long[0]);

    /**
     * Scores every product in the top-m buckets of at least f repetitions, once, in product order.
     *
     * <p>First the members of the top-m buckets are marked in a bitset over the products (K bits, 128 KB
     * at K = 1M: cache resident, and duplicates fall together); then the set bits are walked in
     * ascending order and each product's bucket row is read and scored. Why ascending: the rows (R
     * 16-bit buckets per product, 32 MB at K = 1M) are far out of cache, and reading them in address
     * order turns random misses (one TLB miss and one DRAM row opened per candidate) into a forward
     * sweep; the misses of a batch of candidates are also started together before the batch is
     * scored. Nothing of the candidates' number is allocated; the bitset is cleared as it is walked.
     *
     * @return how many products were scored
     */
    private static int candidates(ProductIndex index, float[][] probs, float[][] bucketScores, Options options, TopN top) {
        int R = index.repetitions(), B = index.buckets(), K = index.products();
        int m = Math.min(options.bucketsPerRepetition(), B);
        int f = options.minRepetitions();
        int[][] topM = new int[R][];
        for (int r = 0; r < R; r++) {
            topM[r] = topBuckets(probs[r], m);
        }
        int words = (K + 63) >>> 6;
        long[] seen = SEEN.get();
        if (seen.length < words) {
            seen = new long[words];
            if (K <= MAX_REUSED_SEEN_PRODUCTS) SEEN.set(seen); // a rare huge catalog does not pin its bitset per thread
        }
        int[] batch = new int[BATCH];
        Counts counts = null;
        if (f > 1) {
            int total = 0;
            for (int r = 0; r < R; r++) {
                for (int b : topM[r]) total += index.bucketSize(r, b);
            }
            counts = Counts.forEntries(Math.min(total, K));
        }
        for (int r = 0; r < R; r++) {
            for (int b : topM[r]) {
                for (int i = 0, size = index.bucketSize(r, b); i < size; i++) {
                    int k = index.member(r, b, i);
                    seen[k >>> 6] |= 1L << k;
                    if (counts != null) counts.add(k);
                }
            }
        }
        int len = 0, touched = 0, scored = 0;
        for (int w = 0; w < words; w++) {
            long word = seen[w];
            if (word == 0) continue;
            seen[w] = 0;
            do {
                int k = (w << 6) + Long.numberOfTrailingZeros(word);
                word &= word - 1;
                if (counts != null && counts.get(k) < f) continue;
                batch[len++] = k;
                touched += index.touch(k);
                if (len == BATCH) {
                    scored += scoreBatch(index, bucketScores, batch, len, top);
                    len = 0;
                }
            } while (word != 0);
        }
        scored += scoreBatch(index, bucketScores, batch, len, top);
        sink = touched;
        return scored;
    }

    private static int scoreBatch(ProductIndex index, float[][] bucketScores, int[] batch, int len, TopN top) {
        for (int j = 0; j < len; j++) {
            top.offer(batch[j], index.mean(bucketScores, batch[j]));
        }
        return len;
    }

    /**
     * How many times each product occurs in the top-m buckets (for f > 1): open addressing with
     * at least twice the slots of the entries, O(R m K / B), never O(K) at small m. One per thread,
     * reused (no allocation per query) while it is at most {@link #MAX_REUSED} slots.
     */
    private static final class Counts {
        static final int MAX_REUSED = 1 << 20;
        private static final ThreadLocal<Counts> REUSED = new ThreadLocal<>();

        private int[] keys = new int[0]; // product, or -1 for an empty slot
        private int[] counts = new int[0];
        private int mask, shift;

        /** An empty table for up to {@code entries} distinct products. */
        static Counts forEntries(int entries) {
            int bits = 33 - Integer.numberOfLeadingZeros(Math.max(8, entries) - 1); // 2^bits >= 2 * entries
            int capacity = 1 << bits;
            Counts c = capacity > MAX_REUSED ? new Counts() : REUSED.get(); // a rare huge query does not pin its table
            if (c == null) {
                c = new Counts();
                REUSED.set(c);
            }
            if (c.keys.length < capacity) {
                c.keys = new int[capacity];
                c.counts = new int[capacity];
            }
            c.mask = capacity - 1;
            c.shift = 32 - bits;
            Arrays.fill(c.keys, 0, capacity, -1);
            return c;
        }

        private int slot(int product) {
            int s = (product * 0x9E3779B9) >>> shift; // Fibonacci hashing
            while (keys[s] != product && keys[s] >= 0) s = (s + 1) & mask;
            return s;
        }

        void add(int product) {
            int s = slot(product);
            if (keys[s] == product) {
                counts[s]++;
            } else { // an empty slot: its count may be a former query's
                keys[s] = product;
                counts[s] = 1;
            }
        }

        int get(int product) {
            int s = slot(product);
            return keys[s] == product ? counts[s] : 0;
        }
    }

    /**
     * {@code calibrated} turns a mean probability into the paper's estimate of P(k | x); a log_mean score is no
     * probability, so a log_mean model is refused it (a 400 naming [score]).
     */
    public static void checkScoreMode(ScoreMode mode, Aggregation aggregation) {
        if (mode == ScoreMode.CALIBRATED && aggregation == Aggregation.LOG_MEAN) {
            throw new IllegalArgumentException(
                "[score] [calibrated] applies to models with aggregation [mean]; this model's aggregation is [log_mean], use [score] [mean]"
            );
        }
    }

    /** The paper's unbiased estimator of P(k | x): B/(B-1) (mean - 1/B); ranks as the mean does. */
    public static double calibrated(double mean, int buckets) {
        return (double) buckets / (buckets - 1) * (mean - 1.0 / buckets);
    }

    static double mean(ProductIndex index, float[][] probs, int product) {
        return index.mean(probs, product);
    }

    /** Indices of the m largest values, best first (ties: lower bucket first). */
    public static int[] topBuckets(float[] probs, int m) {
        int k = Math.min(m, probs.length);
        if (k > SMALL_TOP || k == 0) return topBucketsByHeap(probs, k);
        // few asked for: a sorted array, where most values cost one comparison with its last (half the heap's time at 11 of 4,096)
        int[] ids = new int[k];
        float[] values = new float[k];
        int size = 0;
        for (int b = 0; b < probs.length; b++) {
            float x = probs[b];
            if (size == k && !(x > values[k - 1])) continue; // (a tie keeps the lower bucket, already in)
            int i = size < k ? size++ : k - 1;
            for (; i > 0 && x > values[i - 1]; i--) {
                values[i] = values[i - 1];
                ids[i] = ids[i - 1];
            }
            values[i] = x;
            ids[i] = b;
        }
        return ids;
    }

    /** Up to this many, {@link #topBuckets} shifts a sorted array; more go through a heap. */
    static final int SMALL_TOP = 64;

    /** {@link #topBuckets} through a heap: the definition, and the way for many buckets. */
    static int[] topBucketsByHeap(float[] probs, int m) {
        TopN top = new TopN(Math.min(m, probs.length));
        for (int b = 0; b < probs.length; b++) {
            top.offer(b, probs[b]);
        }
        return top.drainBestFirst();
    }
}
