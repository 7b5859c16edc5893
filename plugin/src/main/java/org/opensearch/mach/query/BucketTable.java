package org.opensearch.mach.query;

import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.common.io.stream.Writeable;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.mach.inference.Aggregation;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.rest.StrictJson;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What the coordinator sends the shards of an index-side mach query: per repetition, the top-s
 * buckets of the network's output with their probabilities, and one residual for every other bucket
 * of that repetition: {@code (1 - sum of the sent) / (B - s)}, the mean of the rest, so a product's
 * score stays an estimate of its mean probability. With s = B the table is the exact output.
 *
 * <p>Wire form: per repetition the sent bucket ids ascending as vint gaps (about one byte each at
 * s = 256 of B = 4,096), their probabilities as 4-byte floats (exact: the s = B scores equal the
 * catalog decoder's), then the residual; a complete repetition is sent as its B floats alone.
 * On the shard, {@link #dense()} expands it once into the lookup {@code float[R * B]} by code.
 *
 * <p>A quantized tail ({@link #of(float[][], int, boolean)}) replaces the residual with one byte per
 * unsent bucket, log-scaled between the smallest and largest unsent probability (relative error
 * within ~3% over a 10^6 range): B - s more bytes per repetition, the unsent buckets keep their order.
 *
 * <p>The table carries the model's {@link Aggregation} (one byte on the wire): with {@code log_mean} the
 * dense lookup holds each repetition's transformed scores {@code ln(max(p, f_r) / f_r)}, f_r the floor of
 * the values the table represents ({@link #floor}), so candidates, bounds, fusion and explain read them
 * unchanged: a document's score is still the mean of its R lookups.
 */
public final class BucketTable implements Writeable {
    private final int repetitions;
    private final int buckets;
    /** per repetition, the sent buckets, strictly ascending */
    private final int[][] sent;
    /** per repetition, the probabilities of the sent buckets */
    private final float[][] probabilities;
    /** per repetition, the probability every unsent bucket gets (0 when all are sent) */
    private final float[] residual;
    /** per repetition, the quantized probabilities of the unsent buckets in bucket order, or null (then: the residual) */
    private final Tail[] tail;
    /** How the shard turns the represented probabilities into per-bucket scores (the model's card). */
    private final Aggregation aggregation;
    /** Built on first use, per deserialized copy: one per shard query. */
    private volatile float[] dense;
    /** {@link #maxMean()}, computed on first use (a race computes it twice, the same value). */
    private volatile double maxMean = Double.NaN;
    /** {@link #minMean()}, computed on first use. */
    private volatile double minMean = Double.NaN;

    /** One byte per unsent bucket: {@code p = low * (high / low)^(code / 255)} (unsigned code), 0 when high is 0. */
    public record Tail(float low, float high, byte[] codes) {
        static final double FLOOR = 1e-7; // low is at least high * FLOOR: the log scale spans at most 7 decades

        static Tail of(float[] values) {
            return of(values, values.length, new LogScaleCodes());
        }

        /** The tail of {@code values[0..n)}; codes as {@link LogScaleCodes#code}, computed by {@code encoder}. */
        static Tail of(float[] values, int n, LogScaleCodes encoder) {
            // the extremes by the float bits, which order non-negative floats as their values (no NaN: below)
            int highBits = 0, lowBits = Float.floatToRawIntBits(Float.MAX_VALUE);
            for (int i = 0; i < n; i++) {
                int bits = Float.floatToRawIntBits(values[i]);
                highBits = Math.max(highBits, bits);
                lowBits = Math.min(lowBits, bits);
            }
            float high = Float.intBitsToFloat(highBits), low = Float.intBitsToFloat(lowBits);
            if (lowBits < 0 || highBits > Float.floatToRawIntBits(Float.POSITIVE_INFINITY)) { // a negative value or NaN: as defined
                high = 0;
                low = Float.MAX_VALUE;
                for (int i = 0; i < n; i++) {
                    high = Math.max(high, values[i]);
                    low = Math.min(low, values[i]);
                }
            }
            return of(values, n, low, high, encoder);
        }

        /** As {@link #of(float[], int, LogScaleCodes)} with the extremes of {@code values[0..n)} known. */
        static Tail of(float[] values, int n, float low, float high, LogScaleCodes encoder) {
            low = lowest(low, high);
            byte[] codes = new byte[n];
            double span = Math.log((double) high / low);
            if (high > 0 && span > 0) encoder.encode(values, n, low, high, span, codes);
            return new Tail(high > 0 ? low : 0f, high, codes);
        }

        /**
         * The scale's low end: the smallest value, at least high * FLOOR, and above 0 when high is (with high
         * under ~1.4e-38, high * FLOOR underflows: a zero value would make the span infinite).
         */
        private static float lowest(float low, float high) {
            return (float) Math.max(low, Math.max(high * FLOOR, high > 0 ? Float.MIN_VALUE : 0f));
        }

        /** As {@link #of(float[])}, one logarithm per value: the definition the fast encoding must equal (tests). */
        static Tail reference(float[] values) {
            float high = 0, low = Float.MAX_VALUE;
            for (float v : values) {
                high = Math.max(high, v);
                low = Math.min(low, v);
            }
            low = lowest(low, high);
            byte[] codes = new byte[values.length];
            double span = Math.log((double) high / low);
            for (int i = 0; i < values.length && high > 0 && span > 0; i++) codes[i] = (byte) LogScaleCodes.code(values[i], low, span);
            return new Tail(high > 0 ? low : 0f, high, codes);
        }

        float value(int i) {
            return decode(codes[i] & 0xFF);
        }

        private float decode(int code) {
            if (high == 0) return 0f;
            return (float) (low * Math.pow((double) high / low, code / 255.0));
        }

        /**
         * value(i) for every code, without a pow per code: {@code low * r^c} by products, r the 255th root of
         * high / low, within a relative ~1e-13 of the real value, as decode's pow is; where no float's rounding
         * boundary lies within {@link LogScaleCodes#SAFE} of it both round to the same float, else decode's is
         * taken (about one code in 3,000).
         */
        float[] decodeTable() {
            float[] table = new float[256];
            double ratio = (double) high / low;
            if (high == 0 || !(low > 0) || !Double.isFinite(ratio)) {
                for (int c = 0; c < 256; c++) table[c] = decode(c);
                return table;
            }
            double step = Math.pow(ratio, 1 / 255.0), e = low;
            for (int c = 0; c < 256; c++, e *= step) {
                float f = (float) e;
                int bits = Float.floatToRawIntBits(f);
                boolean clear = f > 0 && f < Float.MAX_VALUE
                    && e - ((double) Float.intBitsToFloat(bits - 1) + f) / 2 > LogScaleCodes.SAFE * e
                    && ((double) f + Float.intBitsToFloat(bits + 1)) / 2 - e > LogScaleCodes.SAFE * e;
                table[c] = clear ? f : decode(c);
            }
            return table;
        }

        /** value(i) for every code, one pow per code: the definition {@link #decodeTable} must equal (tests). */
        float[] decodeTableReference() {
            float[] table = new float[256];
            for (int c = 0; c < 256; c++) table[c] = decode(c);
            return table;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Tail t && Float.compare(low, t.low) == 0 && Float.compare(high, t.high) == 0 && Arrays.equals(codes, t.codes);
        }

        @Override
        public int hashCode() {
            return 31 * (31 * Float.hashCode(low) + Float.hashCode(high)) + Arrays.hashCode(codes);
        }
    }

    public BucketTable(int[][] sent, float[][] probabilities, float[] residual, int buckets) {
        this(sent, probabilities, residual, new Tail[sent.length], buckets);
    }

    public BucketTable(int[][] sent, float[][] probabilities, float[] residual, Tail[] tail, int buckets) {
        this(sent, probabilities, residual, tail, buckets, Aggregation.MEAN);
    }

    public BucketTable(int[][] sent, float[][] probabilities, float[] residual, Tail[] tail, int buckets, Aggregation aggregation) {
        this.aggregation = java.util.Objects.requireNonNull(aggregation);
        this.repetitions = sent.length;
        this.buckets = buckets;
        if (repetitions < 1 || buckets < 2) throw new IllegalArgumentException("a bucket table needs R >= 1 and B >= 2, got R " + repetitions + ", B " + buckets);
        if (probabilities.length != repetitions || residual.length != repetitions) {
            throw new IllegalArgumentException("a bucket table needs buckets, probabilities and residuals for each of its " + repetitions + " repetitions");
        }
        for (int r = 0; r < repetitions; r++) {
            if (sent[r].length != probabilities[r].length || sent[r].length < 1 || sent[r].length > buckets) {
                throw new IllegalArgumentException("repetition " + r + " must send 1 to " + buckets + " buckets, each with a probability");
            }
            boolean checked = r > 0 && sent[r] == sent[r - 1]; // (an exact table's repetitions share their list)
            for (int i = 0; i < sent[r].length && !checked; i++) {
                int b = sent[r][i];
                if (b < 0 || b >= buckets || (i > 0 && b <= sent[r][i - 1])) {
                    throw new IllegalArgumentException("repetition " + r + ": buckets must be ascending and in [0, " + buckets + "), got [" + b + "]");
                }
            }
            checkProbabilities(probabilities[r], r);
            checkProbability(residual[r], r);
            if (tail.length != repetitions) throw new IllegalArgumentException("a bucket table needs a tail entry for each repetition");
            if (tail[r] != null) {
                if (tail[r].codes().length != buckets - sent[r].length) {
                    throw new IllegalArgumentException("repetition " + r + ": the quantized tail needs one code for each of the " + (buckets - sent[r].length) + " unsent buckets");
                }
                checkProbability(tail[r].low(), r);
                checkProbability(tail[r].high(), r);
                if (tail[r].low() > tail[r].high()) throw new IllegalArgumentException("repetition " + r + ": the tail's low is above its high");
            }
        }
        this.sent = sent;
        this.probabilities = probabilities;
        this.residual = residual;
        this.tail = tail;
    }

    /** As {@link #checkProbability} for each, in one pass without a branch per value (NaN propagates through min and max). */
    private static void checkProbabilities(float[] ps, int r) {
        float min = 0f, max = 0f;
        for (float p : ps) {
            min = Math.min(min, p);
            max = Math.max(max, p);
        }
        if (!(min >= 0f && max <= 1f)) for (float p : ps) checkProbability(p, r);
    }

    private static void checkProbability(float p, int r) {
        if (!(p >= 0f && p <= 1f)) throw new IllegalArgumentException("repetition " + r + ": probabilities must be in [0, 1], got [" + p + "]");
    }

    /** The top {@code scoredBuckets} buckets of each repetition of the network's [R][B] output (ties: lower bucket), and the residuals. */
    public static BucketTable of(float[][] output, int scoredBuckets) {
        return of(output, scoredBuckets, false);
    }

    /** As {@link #of(float[][], int)}; with {@code quantizeTail}, the unsent buckets keep their own (8-bit) probabilities instead of the residual. */
    public static BucketTable of(float[][] output, int scoredBuckets, boolean quantizeTail) {
        int R = output.length, B = output[0].length;
        int s = Math.min(scoredBuckets, B);
        if (s == B) return exact(output);
        Scratch scratch = SCRATCH.get().fit(B);
        int[][] sent = new int[R][];
        float[][] probs = new float[R][];
        float[] residual = new float[R];
        Tail[] tail = new Tail[R];
        for (int r = 0; r < R; r++) {
            int[] top = topAscending(output[r], s, scratch, quantizeTail);
            double sum = 0;
            float[] p = new float[s];
            for (int i = 0; i < s; i++) {
                p[i] = Math.min(1f, Math.max(0f, output[r][top[i]]));
                sum += p[i];
            }
            sent[r] = top;
            probs[r] = p;
            // the mean of the rest, never above the smallest sent probability (rounding) nor below 0
            float min = p[0];
            for (float x : p) min = Math.min(min, x);
            residual[r] = (float) Math.min(min, Math.max(0.0, (1.0 - sum) / (B - s)));
            if (quantizeTail && !scratch.sawNaN) { // the selection copied the unsent and found their extremes
                tail[r] = Tail.of(scratch.rest, B - s, Float.intBitsToFloat(scratch.restLowBits), Float.intBitsToFloat(scratch.restHighBits), scratch.codes);
            } else if (quantizeTail) {
                // the unsent in bucket order: the runs between consecutive sent buckets
                float[] rest = scratch.rest, row = output[r];
                int j = 0;
                for (int i = 0, from = 0; i <= s; i++) {
                    int to = i < s ? top[i] : B;
                    for (int b = from; b < to; b++) rest[j++] = Math.min(1f, Math.max(0f, row[b]));
                    from = to + 1;
                }
                tail[r] = Tail.of(rest, B - s, scratch.codes);
            }
        }
        return new BucketTable(sent, probs, residual, tail, B);
    }

    /**
     * Every bucket sent: the output clamped to [0, 1], one pass per repetition (no selection, no tail; the
     * repetitions share one ascending bucket list).
     */
    private static BucketTable exact(float[][] output) {
        int R = output.length, B = output[0].length;
        int[] all = allBuckets(B);
        int[][] sent = new int[R][];
        float[][] probs = new float[R][];
        double sumOfMaxima = 0, sumOfMinima = 0;
        for (int r = 0; r < R; r++) {
            float[] row = output[r], p = new float[B];
            float max = 0f, min = 1f;
            for (int b = 0; b < B; b++) {
                p[b] = Math.min(1f, Math.max(0f, row[b])); // (NaN stays NaN: refused below)
                max = Math.max(max, p[b]);
                min = Math.min(min, p[b]);
            }
            sent[r] = all;
            probs[r] = p;
            sumOfMaxima += max;
            sumOfMinima += min;
        }
        BucketTable table = new BucketTable(sent, probs, new float[R], new Tail[R], B, Aggregation.MEAN);
        // computeMaxMean's and computeMinMean's values, from the same pass (residuals 0, no tail, dense = the probabilities)
        table.maxMean = sumOfMaxima / R;
        table.minMean = sumOfMinima / R;
        return table;
    }

    /** 0, 1, ..., B - 1 */
    private static int[] allBuckets(int B) {
        int[] all = new int[B];
        for (int b = 0; b < B; b++) all[b] = b;
        return all;
    }

    private static final int ONE_BITS = Float.floatToRawIntBits(1f);

    /** Work arrays of {@link #of}, one set per thread (the inference threads build one table at a time each). */
    private static final class Scratch {
        /** bits of a radix digit of the selection */
        static final int DIGIT_BITS = 11;
        static final int BINS = 1 << DIGIT_BITS;
        final int[] bins = new int[BINS];
        final LogScaleCodes codes = new LogScaleCodes();
        int[] keys = new int[0];
        int[] work = new int[0];
        /** whether the last row {@link #topAscending} saw holds a NaN */
        boolean sawNaN;
        /** with the rest asked for (and no NaN): the unsent buckets' clamped probabilities in bucket order, and the bits of their extremes */
        float[] rest = new float[0];
        int restLowBits, restHighBits;

        Scratch fit(int buckets) {
            if (keys.length < buckets) {
                keys = new int[buckets];
                work = new int[buckets];
                rest = new float[buckets];
            }
            return this;
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /** As {@link #topAscending(float[], int, Scratch)} with this thread's work arrays. */
    static int[] topAscending(float[] probs, int s) {
        return topAscending(probs, s, SCRATCH.get().fit(probs.length), false);
    }

    /**
     * The same set as {@link Decoder#topBuckets} (higher probability first, ties: lower bucket), ascending:
     * the s-th largest value by a radix selection, then one pass, instead of a heap of B offers (~90 us
     * per repetition at B 4,096, s 256) or a quickselect (~50 us). NaN falls back to the heap. With
     * {@code rest} (and no NaN), also the unsent ones' clamped probabilities and their extremes (scratch).
     */
    private static int[] topAscending(float[] probs, int s, Scratch scratch, boolean rest) {
        int B = probs.length;
        scratch.sawNaN = true; // (until the row is read)
        if (s <= 0) return new int[0];
        int[] keys = scratch.keys, bins = scratch.bins;
        int minKey = Integer.MAX_VALUE, maxKey = Integer.MIN_VALUE;
        scratch.sawNaN = false;
        for (int b = 0; b < B; b++) {
            if (Float.isNaN(probs[b])) {
                scratch.sawNaN = true;
                int[] top = Decoder.topBuckets(probs, s);
                Arrays.sort(top);
                return top;
            }
            int key = keys[b] = sortableKey(probs[b]);
            minKey = Math.min(minKey, key);
            maxKey = Math.max(maxKey, key);
        }
        // radix selection of the s-th largest key over the keys' own range, offsets from the smallest
        // (unsigned): a histogram of the offsets' top 11 bits, then the same among the keys of the bin
        // that holds it on the next 11 bits, until few are left: one pass over B and a few over fewer,
        // whatever the spread of the values (a flat output has all of them within a binade)
        int[] work = scratch.work, from = keys; // the keys still in the running: from[0..n) (the first level reads all)
        int n = B, rank = s - 1, above = 0; // rank: of the s-th largest among them; above: keys above them
        int shift = Math.max(0, 32 - Integer.numberOfLeadingZeros(maxKey - minKey) - Scratch.DIGIT_BITS);
        boolean undecided = true; // bits of the offsets below the last digit
        while (n > 64 && undecided) {
            // the digit: offset bits [shift, shift + 11); those kept so far agree on every bit above it
            Arrays.fill(bins, 0);
            int highest = 0;
            for (int i = 0; i < n; i++) {
                int d = ((from[i] - minKey) >>> shift) & (Scratch.BINS - 1);
                bins[d]++;
                highest = Math.max(highest, d);
            }
            int digit = highest;
            while (rank >= bins[digit]) {
                rank -= bins[digit];
                above += bins[digit--];
            }
            int kept = 0;
            for (int i = 0; i < n; i++) {
                work[kept] = from[i];
                kept += (((from[i] - minKey) >>> shift) & (Scratch.BINS - 1)) == digit ? 1 : 0;
            }
            from = work;
            n = kept;
            undecided = shift > 0;
            shift = Math.max(0, shift - Scratch.DIGIT_BITS);
        }
        if (from == keys) System.arraycopy(keys, 0, work, 0, n); // (few keys: no level ran)
        int threshold = kthLargest(work, n, rank);
        for (int i = 0; i < n; i++) above += work[i] > threshold ? 1 : 0;
        int ties = s - above;
        return rest ? topAndRest(keys, B, s, threshold, ties, scratch) : top(keys, B, s, threshold, ties);
    }

    /**
     * Every key above the threshold, and the first {@code ties} equal to it, ascending: per 64 buckets a
     * mask of those above and one of those equal, then their set bits (no branch per bucket).
     */
    private static int[] top(int[] keys, int B, int s, int threshold, int ties) {
        int[] top = new int[s];
        int k = 0;
        for (int base = 0; base < B; base += 64) {
            long gt = 0, eq = 0;
            for (int i = 0, end = Math.min(64, B - base); i < end; i++) {
                int key = keys[base + i];
                gt |= (key > threshold ? 1L : 0L) << i;
                eq |= (key == threshold ? 1L : 0L) << i;
            }
            for (long e = eq; e != 0 && ties > 0; e &= e - 1, ties--) gt |= Long.lowestOneBit(e);
            for (; gt != 0; gt &= gt - 1) top[k++] = base + Long.numberOfTrailingZeros(gt);
        }
        return top;
    }

    /**
     * As {@link #top}, and in the same pass the unsent buckets' clamped probabilities in bucket order
     * (scratch.rest) and the bits of their smallest and largest: one pass instead of the masks', a copy's
     * of the runs between sent buckets and the extremes'. A branch per bucket: with s of B sent it is
     * mostly predicted, and it beat a branch-free one (two stores at moving indices per bucket).
     */
    private static int[] topAndRest(int[] keys, int B, int s, int threshold, int ties, Scratch scratch) {
        int[] picked = new int[s];
        float[] rest = scratch.rest;
        int k = 0, j = 0, high = 0, low = Integer.MAX_VALUE;
        for (int b = 0; b < B; b++) {
            int key = keys[b];
            if (key >= threshold && (key > threshold || ties-- > 0)) {
                picked[k++] = b;
            } else {
                // min(1, max(0, p))'s bits: a non-negative float's key is its bits (-0's is 0's)
                int v = Math.min(Math.max(key, 0), ONE_BITS);
                rest[j++] = Float.intBitsToFloat(v);
                high = Math.max(high, v);
                low = Math.min(low, v);
            }
        }
        scratch.restLowBits = low;
        scratch.restHighBits = high;
        return picked;
    }

    /** An int ordered as the float compares with {@code <} (so -0 equals 0); NaN excluded. */
    private static int sortableKey(float p) {
        int bits = Float.floatToRawIntBits(p + 0.0f); // -0 + 0 = 0
        return bits ^ ((bits >> 31) & 0x7fffffff);
    }

    /** The value at descending rank k (0-based) of a[0..n); reorders it (three-way quickselect, duplicates safe). */
    private static int kthLargest(int[] a, int n, int k) {
        int lo = 0, hi = n - 1;
        while (true) {
            int pivot = a[lo + (hi - lo) / 2];
            int lt = lo, i = lo, gt = hi;
            while (i <= gt) {
                if (a[i] > pivot) swap(a, lt++, i++);
                else if (a[i] < pivot) swap(a, i, gt--);
                else i++;
            }
            if (k < lt) hi = lt - 1;
            else if (k > gt) lo = gt + 1;
            else return pivot;
        }
    }

    private static void swap(int[] a, int i, int j) {
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }

    public BucketTable(StreamInput in) throws IOException {
        this(read(in));
    }

    private BucketTable(BucketTable t) {
        this(t.sent, t.probabilities, t.residual, t.tail, t.buckets, t.aggregation);
    }

    /** The same probabilities scored with a model's aggregation (shares the arrays). */
    public BucketTable withAggregation(Aggregation a) {
        return a == aggregation ? this : new BucketTable(sent, probabilities, residual, tail, buckets, a);
    }

    public Aggregation aggregation() {
        return aggregation;
    }

    /** An int in a byte[] as {@link StreamOutput#writeInt} writes it (big-endian). */
    private static final VarHandle BIG_ENDIAN_INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.BIG_ENDIAN);

    private static BucketTable read(StreamInput in) throws IOException {
        int R = in.readVInt(), B = in.readVInt();
        int[][] sent = new int[R][];
        float[][] probs = new float[R][];
        float[] residual = new float[R];
        Tail[] tail = new Tail[R];
        byte[] floats = new byte[0];
        int[] all = null; // the list of every bucket, shared by the repetitions that send all
        for (int r = 0; r < R; r++) {
            int n = in.readVInt();
            if (n < 1 || n > B) throw new IOException("bucket table: repetition " + r + " sends " + n + " of " + B + " buckets");
            probs[r] = new float[n];
            if (n == B) {
                sent[r] = all = all != null ? all : allBuckets(B);
            } else {
                sent[r] = new int[n];
                for (int i = 0, b = -1; i < n; i++) sent[r][i] = b += in.readVInt() + 1;
            }
            // the floats as one block of bytes: readFloat reads each of their 4 bytes by a call of its own
            if (floats.length < 4 * n) floats = new byte[4 * n];
            in.readBytes(floats, 0, 4 * n);
            for (int i = 0; i < n; i++) probs[r][i] = Float.intBitsToFloat((int) BIG_ENDIAN_INT.get(floats, 4 * i));
            residual[r] = n == B ? 0f : in.readFloat();
            if (n < B && in.readBoolean()) {
                float low = in.readFloat(), high = in.readFloat();
                byte[] codes = new byte[B - n];
                in.readBytes(codes, 0, codes.length);
                tail[r] = new Tail(low, high, codes);
            }
        }
        int a = in.readByte();
        if (a < 0 || a >= Aggregation.values().length) throw new IOException("bucket table: unknown aggregation [" + a + "]");
        return new BucketTable(sent, probs, residual, tail, B, Aggregation.values()[a]);
    }

    @Override
    public void writeTo(StreamOutput out) throws IOException {
        out.writeVInt(repetitions);
        out.writeVInt(buckets);
        for (int r = 0; r < repetitions; r++) {
            int n = sent[r].length;
            out.writeVInt(n);
            if (n < buckets) {
                for (int i = 0, prev = -1; i < n; prev = sent[r][i++]) out.writeVInt(sent[r][i] - prev - 1);
            }
            // the floats as one block of bytes, as writeFloat writes each (big-endian)
            float[] ps = probabilities[r];
            byte[] block = new byte[4 * n];
            for (int i = 0; i < n; i++) BIG_ENDIAN_INT.set(block, 4 * i, Float.floatToIntBits(ps[i]));
            out.writeBytes(block);
            if (n < buckets) {
                out.writeFloat(residual[r]);
                out.writeBoolean(tail[r] != null);
                if (tail[r] != null) {
                    out.writeFloat(tail[r].low());
                    out.writeFloat(tail[r].high());
                    out.writeBytes(tail[r].codes());
                }
            }
        }
        out.writeByte((byte) aggregation.ordinal());
    }

    public int repetitions() {
        return repetitions;
    }

    public int buckets() {
        return buckets;
    }

    /** How many buckets repetition r sends (B: exact). */
    public int sentBuckets(int r) {
        return sent[r].length;
    }

    public float residual(int r) {
        return residual[r];
    }

    /** Whether repetition r sends its unsent buckets quantized (else they score the residual). */
    public boolean quantizedTail(int r) {
        return tail[r] != null;
    }

    /** Whether bucket b of repetition r has its own probability (else it scores the residual). */
    public boolean isSent(int r, int b) {
        return Arrays.binarySearch(sent[r], b) >= 0;
    }

    /**
     * The per-bucket score of every code {@code r * B + b} (the probability, or with log_mean its transform);
     * built once, then shared by all segments of the shard query.
     */
    public float[] dense() {
        float[] d = dense;
        if (d == null) {
            boolean log = aggregation == Aggregation.LOG_MEAN;
            d = new float[repetitions * buckets];
            for (int r = 0; r < repetitions; r++) {
                int base = r * buckets;
                double f = log ? floor(r) : 0;
                if (sent[r].length == buckets && !log) {
                    System.arraycopy(probabilities[r], 0, d, base, buckets); // (every bucket sent, in bucket order)
                    continue;
                }
                if (tail[r] == null) {
                    Arrays.fill(d, base, base + buckets, log ? Aggregation.logScore(residual[r], f) : residual[r]);
                } else {
                    float[] decoded = log ? logTailTable(tail[r], f) : tail[r].decodeTable();
                    byte[] codes = tail[r].codes();
                    // the unsent run between consecutive sent buckets, code after code
                    int[] s = sent[r];
                    int j = 0;
                    for (int i = 0, from = 0; i <= s.length; i++) {
                        int to = i < s.length ? s[i] : buckets;
                        for (int b = from; b < to; b++) d[base + b] = decoded[codes[j++] & 0xFF];
                        from = to + 1;
                    }
                }
                for (int i = 0; i < sent[r].length; i++) {
                    d[base + sent[r][i]] = log ? Aggregation.logScore(probabilities[r][i], f) : probabilities[r][i];
                }
            }
            dense = d;
        }
        return d;
    }

    /**
     * log_mean's floor f_r of repetition r: {@code max(smallest, largest * 1e-7)} over the values the table
     * represents (the sent probabilities, and the residual or the quantized tail's low and high), so with
     * every bucket sent it is the catalog decoder's floor of the full output.
     */
    public double floor(int r) {
        return Aggregation.floor(smallest(r), largest(r));
    }

    private double largest(int r) {
        double max = sent[r].length == buckets ? 0 : tail[r] != null ? tail[r].high() : residual[r];
        for (float p : probabilities[r]) max = Math.max(max, p);
        return max;
    }

    private double smallest(int r) {
        double min = sent[r].length == buckets ? Double.POSITIVE_INFINITY : tail[r] == null ? residual[r] : tail[r].high() > 0 ? tail[r].low() : 0;
        for (float p : probabilities[r]) min = Math.min(min, p);
        return min;
    }

    /** Each tail code's log_mean score: ln(value / f) = ln(low / f) + code / 255 * ln(high / low), linear in the code, at least 0. */
    static float[] logTailTable(Tail t, double f) {
        float[] table = new float[256];
        if (t.high() == 0 || !(f > 0)) return table;
        double offset = Math.log(t.low() / f), step = Math.log((double) t.high() / t.low()) / 255;
        for (int c = 0; c < 256; c++) table[c] = (float) Math.max(0.0, offset + c * step);
        return table;
    }

    /**
     * The largest score {@link #dense()} gives a bucket of repetition r outside {@code excluded}
     * ({@code excluded[b]}), at least 0: the sent ones read one by one, the unsent from the tail's
     * largest code (its decode table rises with the code; checked, else every unsent bucket is read).
     * With log_mean the dense lookup itself is scanned, so the bound is exactly what scoring reads.
     */
    public float maxOutside(int r, boolean[] excluded) {
        if (aggregation == Aggregation.LOG_MEAN) return maxOutsideDense(r, excluded, 0);
        float max = 0;
        int[] s = sent[r];
        for (int i = 0; i < s.length; i++) if (!excluded[s[i]]) max = Math.max(max, probabilities[r][i]);
        if (s.length == buckets) return max;
        if (tail[r] == null) return Math.max(max, residual[r]); // (unsent buckets are never excluded: those are in the top m)
        byte[] codes = tail[r].codes();
        int maxCode = 0;
        for (byte c : codes) maxCode = Math.max(maxCode, c & 0xFF);
        float[] decoded = tail[r].decodeTable();
        boolean rising = true;
        for (int c = 1; c <= maxCode; c++) rising &= decoded[c - 1] <= decoded[c];
        if (rising && !Float.isNaN(decoded[0])) return Math.max(max, decoded[maxCode]);
        return maxOutsideDense(r, excluded, max);
    }

    private float maxOutsideDense(int r, boolean[] excluded, float max) {
        float[] d = dense();
        for (int b = 0, base = r * buckets; b < buckets; b++) if (!excluded[b]) max = Math.max(max, d[base + b]);
        return max;
    }

    /**
     * The m most probable buckets of repetition r, best first (ties: lower bucket), as the catalog
     * decoder picks them; the same as on the full output as long as m <= the sent buckets.
     */
    public int[] topBuckets(int r, int m) {
        int[] order = Decoder.topBuckets(probabilities[r], Math.min(m, sent[r].length));
        int[] out = new int[order.length];
        for (int i = 0; i < order.length; i++) out[i] = sent[r][order[i]];
        return out;
    }

    /**
     * The largest mean probability any product can have: the mean over repetitions of each one's top probability
     * (log_mean: of each one's top score, ln(largest / f_r), with a relative slack over the float lookups).
     */
    public double maxMean() {
        double m = maxMean;
        if (Double.isNaN(m)) maxMean = m = computeMaxMean(); // (R x B values: once per table, not per scorer)
        return m;
    }

    /**
     * No product has a lower mean: the mean over repetitions of each one's lowest per-bucket value (the dense
     * lookup's: probabilities, or log_mean's scores). Close to {@link #maxMean()} for a flat network output.
     */
    public double minMean() {
        double m = minMean;
        if (Double.isNaN(m)) minMean = m = computeMinMean();
        return m;
    }

    private double computeMinMean() {
        float[] d = dense();
        double sum = 0;
        for (int r = 0; r < repetitions; r++) {
            float min = Float.POSITIVE_INFINITY;
            for (int i = r * buckets, end = i + buckets; i < end; i++) min = Math.min(min, d[i]);
            sum += min;
        }
        return sum / repetitions;
    }

    private double computeMaxMean() {
        if (aggregation == Aggregation.LOG_MEAN) {
            double sum = 0;
            for (int r = 0; r < repetitions; r++) {
                double f = floor(r);
                if (f > 0) sum += Math.log(largest(r) / f) * (1 + 1e-6);
            }
            return sum / repetitions;
        }
        double sum = 0;
        for (int r = 0; r < repetitions; r++) {
            float max = tail[r] != null ? Math.max(residual[r], tail[r].high() * 1.0001f) : residual[r];
            for (float p : probabilities[r]) max = Math.max(max, p);
            sum += max;
        }
        return sum / repetitions;
    }

    // ------------------------------------------------------------------ xcontent (query logs, profile, replay)

    static final List<String> FIELDS = List.of("buckets", "repetitions", "aggregation");
    static final List<String> REPETITION_FIELDS = List.of("buckets", "probabilities", "residual", "tail");
    static final List<String> TAIL_FIELDS = List.of("low", "high", "codes");

    public void toXContent(XContentBuilder b) throws IOException {
        b.startObject();
        b.field("buckets", buckets);
        if (aggregation != Aggregation.MEAN) b.field("aggregation", aggregation.value());
        b.startArray("repetitions");
        for (int r = 0; r < repetitions; r++) {
            b.startObject();
            b.array("buckets", sent[r]);
            b.startArray("probabilities");
            for (float p : probabilities[r]) b.value(p);
            b.endArray();
            b.field("residual", residual[r]);
            if (tail[r] != null) {
                b.startObject("tail").field("low", tail[r].low()).field("high", tail[r].high());
                b.field("codes", java.util.Base64.getEncoder().encodeToString(tail[r].codes())).endObject();
            }
            b.endObject();
        }
        b.endArray();
        b.endObject();
    }

    public static BucketTable fromXContent(XContentParser parser, String what) throws IOException {
        int[] B = { -1 };
        List<int[]> sent = new ArrayList<>();
        List<float[]> probs = new ArrayList<>();
        List<Float> residual = new ArrayList<>();
        List<Tail> tails = new ArrayList<>();
        Aggregation[] aggregation = { Aggregation.MEAN };
        StrictJson.readObject(parser, what, FIELDS, (field, p) -> {
            if (field.equals("buckets")) {
                B[0] = StrictJson.integer(p, what, field, 2, Integer.MAX_VALUE);
                return;
            }
            if (field.equals("aggregation")) {
                try {
                    aggregation[0] = Aggregation.parse(StrictJson.text(p, what, field));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(what + " [aggregation]: " + e.getMessage(), e);
                }
                return;
            }
            if (p.currentToken() != XContentParser.Token.START_ARRAY) throw StrictJson.wrongType(p, what, field, "an array of repetitions");
            while (p.nextToken() != XContentParser.Token.END_ARRAY) {
                String rep = what + " [repetitions][" + sent.size() + "]";
                List<Float> ps = new ArrayList<>();
                List<Integer> bs = new ArrayList<>();
                float[] res = { Float.NaN };
                Tail[] tail = { null };
                StrictJson.readObject(p, rep, REPETITION_FIELDS, (f, x) -> {
                    switch (f) {
                        case "residual" -> res[0] = StrictJson.number(x, rep, f);
                        case "tail" -> tail[0] = readTail(x, rep + " [tail]");
                        case "buckets" -> StrictJson.array(x, rep, f, () -> bs.add(StrictJson.integer(x, rep, f, 0, Integer.MAX_VALUE)));
                        default -> StrictJson.array(x, rep, f, () -> ps.add(StrictJson.number(x, rep, f)));
                    }
                });
                if (Float.isNaN(res[0])) throw new IllegalArgumentException(rep + " requires [buckets], [probabilities] and [residual]");
                sent.add(bs.stream().mapToInt(Integer::intValue).toArray());
                float[] pa = new float[ps.size()];
                for (int i = 0; i < pa.length; i++) pa[i] = ps.get(i);
                probs.add(pa);
                residual.add(res[0]);
                tails.add(tail[0]);
            }
        });
        if (B[0] < 0 || sent.isEmpty()) throw new IllegalArgumentException(what + " requires [buckets] and a non-empty [repetitions]");
        float[] res = new float[residual.size()];
        for (int i = 0; i < res.length; i++) res[i] = residual.get(i);
        return new BucketTable(sent.toArray(new int[0][]), probs.toArray(new float[0][]), res, tails.toArray(new Tail[0]), B[0], aggregation[0]);
    }

    private static Tail readTail(XContentParser parser, String what) throws IOException {
        float[] lh = { Float.NaN, Float.NaN };
        byte[][] codes = { null };
        StrictJson.readObject(parser, what, TAIL_FIELDS, (f, x) -> {
            switch (f) {
                case "low" -> lh[0] = StrictJson.number(x, what, f);
                case "high" -> lh[1] = StrictJson.number(x, what, f);
                default -> {
                    try {
                        codes[0] = java.util.Base64.getDecoder().decode(StrictJson.text(x, what, f));
                    } catch (IllegalArgumentException e) {
                        throw new IllegalArgumentException(what + " [codes] must be base64: " + e.getMessage(), e);
                    }
                }
            }
        });
        if (Float.isNaN(lh[0]) || Float.isNaN(lh[1]) || codes[0] == null) throw new IllegalArgumentException(what + " requires [low], [high] and [codes]");
        return new Tail(lh[0], lh[1], codes[0]);
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof BucketTable t)) return false;
        return buckets == t.buckets
            && aggregation == t.aggregation
            && Arrays.deepEquals(sent, t.sent)
            && Arrays.deepEquals(probabilities, t.probabilities)
            && Arrays.equals(residual, t.residual)
            && Arrays.equals(tail, t.tail);
    }

    /** Cached: the query cache hashes queries often, and a table holds R x s values. */
    private int hash;

    @Override
    public int hashCode() {
        int h = hash;
        if (h == 0) hash = h = computeHash();
        return h;
    }

    private int computeHash() {
        return 31 * aggregation.ordinal() + 31 * (31 * (31 * buckets + Arrays.deepHashCode(sent)) + Arrays.deepHashCode(probabilities)) + 31 * Arrays.hashCode(residual) + Arrays.hashCode(tail);
    }

    @Override
    public String toString() {
        return "R" + repetitions + "xB" + buckets + " sending " + sent[0].length + " per repetition" + (tail[0] != null ? ", the rest quantized" : "")
            + (aggregation != Aggregation.MEAN ? ", " + aggregation.value() : "");
    }
}
