package org.opensearch.mach.model;

import org.opensearch.mach.featurize.ProductHash;

/**
 * The products of a model and their buckets: {@code bucket(r, k)} for exact scoring, and the
 * inverse index bucket -> products per repetition (CSR arrays) for candidate decoding.
 * Built once at load with the card's product hash. Immutable.
 */
public final class ProductIndex {
    /** Up to this many buckets a bucket number is stored in 16 bits. */
    static final int MAX_NARROW_BUCKETS = 1 << 16;

    private final int repetitions;
    private final int buckets;
    private final int products;
    /**
     * Bucket of product k in repetition r at [k * R + r]: a product's R buckets share one or two cache
     * lines, so scoring a candidate costs ~1 memory miss instead of R (the [R][K] layout cost R misses
     * per candidate: 28 ms for 38k candidates at K = 1M, R = 16). 16-bit ({@code narrow}) when
     * B <= 65,536, which is every practical B: half the heap (32 instead of 64 MB at K = 1M, R = 16)
     * and twice the rows per cache; {@code wide} (32-bit) otherwise. Exactly one of the two is set.
     */
    private final char[] narrow;
    private final int[] wide;
    /** members of bucket b in repetition r: members[r][start[r][b] .. start[r][b+1]) */
    private final int[][] start;
    private final int[][] members;

    /** From each product's buckets, {@code bucketOf[r][k]} (tests, benchmarks). */
    public ProductIndex(int[][] bucketOf, int buckets) {
        this(bucketOf.length, buckets, bucketOf.length == 0 ? 0 : bucketOf[0].length, (k, row) -> {
            for (int r = 0; r < row.length; r++) row[r] = bucketOf[r][k];
        });
    }

    /** Writes product k's bucket in every repetition into {@code row} (one array, reused for every product). */
    @FunctionalInterface
    private interface Rows {
        void row(int product, int[] row);
    }

    /**
     * Builds the index in its final arrays only: the bucket table is filled row by row, then the
     * inverse index is counted and filled from it in two sequential passes. Nothing of the catalog's
     * size is allocated besides what the index keeps (a transient [R][K] array of the buckets took as
     * much heap as the table and the members together: 320 MB at K = 5M, R = 16).
     */
    private ProductIndex(int repetitions, int buckets, int products, Rows rows) {
        this.repetitions = repetitions;
        this.buckets = buckets;
        this.products = products;
        int cells = Math.multiplyExact(repetitions, products);
        this.narrow = buckets <= MAX_NARROW_BUCKETS ? new char[cells] : null;
        this.wide = narrow == null ? new int[cells] : null;
        int[] row = new int[repetitions];
        for (int k = 0, base = 0; k < products; k++, base += repetitions) {
            rows.row(k, row);
            for (int r = 0; r < repetitions; r++) {
                if (narrow != null) narrow[base + r] = (char) row[r];
                else wide[base + r] = row[r];
            }
        }
        // bucket starts per repetition: counts first, then their prefix sums
        int[][] start = new int[repetitions][buckets + 1];
        for (int k = 0, base = 0; k < products; k++, base += repetitions) {
            for (int r = 0; r < repetitions; r++) start[r][bucketAt(base + r) + 1]++;
        }
        for (int[] c : start) {
            for (int b = 0; b < buckets; b++) c[b + 1] += c[b];
        }
        // start[r][b] is bucket b's fill cursor: afterwards it is where bucket b + 1 starts, so shift back
        int[][] members = new int[repetitions][products];
        for (int k = 0, base = 0; k < products; k++, base += repetitions) {
            for (int r = 0; r < repetitions; r++) members[r][start[r][bucketAt(base + r)]++] = k;
        }
        for (int[] c : start) {
            System.arraycopy(c, 0, c, 1, buckets);
            c[0] = 0;
        }
        this.start = start;
        this.members = members;
    }

    private int bucketAt(int cell) {
        return narrow != null ? narrow[cell] : wide[cell];
    }

    /** Hashes every label with the card's product hash. */
    public static ProductIndex build(String[] labels, ProductHash hash) {
        return new ProductIndex(hash.repetitions(), hash.buckets(), labels.length, (k, row) -> hash.bucketsOf(labels[k], row));
    }

    /** Hashes every id with the card's product hash, from its packed UTF-8 bytes (no object per id). */
    static ProductIndex build(ProductLabels labels, ProductHash hash) {
        return new ProductIndex(hash.repetitions(), hash.buckets(), labels.size(), (k, row) -> labels.buckets(k, hash, row));
    }

    public int repetitions() {
        return repetitions;
    }

    public int buckets() {
        return buckets;
    }

    public int products() {
        return products;
    }

    public int bucket(int repetition, int product) {
        int i = product * repetitions + repetition;
        return narrow != null ? narrow[i] : wide[i];
    }

    /**
     * Reads the product's bucket row (one value per cache line of it) so that a following
     * {@link #bucket}/{@link #mean} finds it in cache; returns a value only for the caller to consume.
     * Calling it for several products before using them lets their memory misses overlap.
     */
    public int touch(int product) {
        int base = product * repetitions, last = base + repetitions - 1;
        if (narrow != null) {
            int sum = narrow[base] + narrow[last];
            for (int i = base + 32; i < last; i += 32) sum += narrow[i];
            return sum;
        }
        int sum = wide[base] + wide[last];
        for (int i = base + 16; i < last; i += 16) sum += wide[i];
        return sum;
    }

    /**
     * MACH score of a product: the mean over repetitions of its bucket's probability. Summed in four
     * interleaved partial sums (repetitions r, r + 4, ...), combined as (s0 + s1) + (s2 + s3): one
     * running sum is a chain of R dependent additions (~4 cycles each), the decoder's largest cost
     * per candidate once its row is in cache. Every decoding path scores through here, so they agree.
     * The 16-bit and 32-bit tables get a loop each on purpose: one loop reading through a shared
     * narrow-or-wide accessor measured 1.5x slower (DecodeBench exact, K = 1M: p50 25.6-29.4 vs 17.0 ms).
     */
    public double mean(float[][] probs, int product) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int base = product * repetitions, r = 0;
        if (narrow != null) {
            for (; r + 3 < repetitions; r += 4) {
                s0 += probs[r][narrow[base + r]];
                s1 += probs[r + 1][narrow[base + r + 1]];
                s2 += probs[r + 2][narrow[base + r + 2]];
                s3 += probs[r + 3][narrow[base + r + 3]];
            }
            for (; r < repetitions; r++) s0 += probs[r][narrow[base + r]];
        } else {
            for (; r + 3 < repetitions; r += 4) {
                s0 += probs[r][wide[base + r]];
                s1 += probs[r + 1][wide[base + r + 1]];
                s2 += probs[r + 2][wide[base + r + 2]];
                s3 += probs[r + 3][wide[base + r + 3]];
            }
            for (; r < repetitions; r++) s0 += probs[r][wide[base + r]];
        }
        return ((s0 + s1) + (s2 + s3)) / repetitions;
    }

    /** Heap bytes of the index: the bucket table, the members and their bucket starts (arrays with their headers). */
    public long heapBytes() {
        return heapBytes(repetitions, buckets, products);
    }

    /** Heap bytes of the index of {@code products} products, before it is built. */
    static long heapBytes(int repetitions, int buckets, int products) {
        long cells = (long) repetitions * products;
        long table = buckets <= MAX_NARROW_BUCKETS ? 2L * cells : 4L * cells;
        return 16 + table + repetitions * (16 + 4L * products + 16 + 4L * (buckets + 1));
    }

    /** Number of products in bucket b of repetition r. */
    public int bucketSize(int repetition, int bucket) {
        return start[repetition][bucket + 1] - start[repetition][bucket];
    }

    /** i-th product (0-based) of bucket b in repetition r. */
    public int member(int repetition, int bucket, int i) {
        return members[repetition][start[repetition][bucket] + i];
    }
}
