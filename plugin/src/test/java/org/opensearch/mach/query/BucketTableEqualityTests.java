package org.opensearch.mach.query;

import org.opensearch.common.io.stream.BytesStreamOutput;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.mach.inference.Aggregation;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.test.OpenSearchTestCase;

import java.io.IOException;
import java.util.Arrays;

/**
 * The fast paths of the quantized table equal their definitions bit for bit, on random rows (softmax-like,
 * ties at the threshold, negatives, values above 1, zeros, -0, subnormals; any B and s): the selection that
 * also copies the unsent and their extremes, and the codes, against the heap and one logarithm per value
 * ({@link BucketTable.Tail#reference}); the block read of the probabilities, against the table written; the
 * dense lookup, against one bucket at a time from the decode tables' definitions.
 */
public class BucketTableEqualityTests extends OpenSearchTestCase {

    private static float[] randomRow(int B) {
        float[] row = new float[B];
        int shape = randomInt(4);
        int distinct = randomIntBetween(1, 6);
        float[] few = new float[distinct];
        for (int i = 0; i < distinct; i++) few[i] = randomFrom(0f, -0f, 1f, 1.5f, -0.25f, randomFloat(), (float) Math.exp(-30 * randomDouble()));
        double sum = 0;
        for (int b = 0; b < B; b++) {
            row[b] = switch (shape) {
                case 0 -> (float) Math.exp(randomFrom(0.1, 1.0, 4.0) * random().nextGaussian()); // softmax-like (normalized below)
                case 1 -> few[randomInt(distinct - 1)]; // few values: ties at the threshold
                case 2 -> 0.25f + randomInt(50) * 1e-7f; // a narrow range: a few floats per code
                // subnormals, and zeros among them (high * 1e-7 then underflows: the scale starts at the smallest float)
                case 3 -> randomInt(9) == 0 ? 0f : Float.MIN_VALUE * randomIntBetween(1, 3000);
                default -> randomFrom(0f, -0f, -randomFloat(), randomFloat(), 2f * randomFloat(), (float) Math.exp(-40 * randomDouble()));
            };
            sum += row[b];
        }
        if (shape == 0) for (int b = 0; b < B; b++) row[b] = (float) (row[b] / sum);
        return row;
    }

    /** The table {@link BucketTable#of(float[][], int, boolean)} defines: heap selection, the tail one logarithm per value. */
    private static BucketTable reference(float[][] out, int scored) {
        int R = out.length, B = out[0].length, s = Math.min(scored, B);
        int[][] sent = new int[R][];
        float[][] probs = new float[R][];
        float[] residual = new float[R];
        BucketTable.Tail[] tail = new BucketTable.Tail[R];
        for (int r = 0; r < R; r++) {
            int[] top = Decoder.topBuckets(out[r], s);
            Arrays.sort(top);
            float[] p = new float[s];
            double sum = 0;
            float min = Float.MAX_VALUE;
            for (int i = 0; i < s; i++) {
                sum += p[i] = Math.min(1f, Math.max(0f, out[r][top[i]]));
                min = Math.min(min, p[i]);
            }
            sent[r] = top;
            probs[r] = p;
            residual[r] = s == B ? 0f : (float) Math.min(min, Math.max(0.0, (1.0 - sum) / (B - s)));
            if (s < B) {
                float[] rest = new float[B - s];
                for (int b = 0, i = 0, j = 0; b < B; b++) {
                    if (i < s && top[i] == b) i++;
                    else rest[j++] = Math.min(1f, Math.max(0f, out[r][b]));
                }
                tail[r] = BucketTable.Tail.reference(rest);
            }
        }
        return new BucketTable(sent, probs, residual, tail, B);
    }

    /** dense() one bucket at a time: the sent probability, or the tail's code through the decode table's definition. */
    private static float[] referenceDense(BucketTable t, BucketTable ref, float[][] out) {
        int R = t.repetitions(), B = t.buckets();
        float[] d = new float[R * B];
        boolean log = t.aggregation() == Aggregation.LOG_MEAN;
        for (int r = 0; r < R; r++) {
            BucketTable.Tail tail = tailOf(ref, out, r);
            double f = log ? t.floor(r) : 0;
            float[] decoded = tail == null ? null : log ? BucketTable.logTailTable(tail, f) : tail.decodeTableReference();
            for (int b = 0, j = 0; b < B; b++) {
                if (t.isSent(r, b)) {
                    float p = Math.min(1f, Math.max(0f, out[r][b]));
                    d[r * B + b] = log ? Aggregation.logScore(p, f) : p;
                } else {
                    d[r * B + b] = decoded[tail.codes()[j++] & 0xFF];
                }
            }
        }
        return d;
    }

    /** Repetition r's tail as the reference builds it (the table's own is private). */
    private static BucketTable.Tail tailOf(BucketTable ref, float[][] out, int r) {
        int B = out[0].length, s = ref.sentBuckets(r);
        if (s == B) return null;
        float[] rest = new float[B - s];
        for (int b = 0, j = 0; b < B; b++) if (!ref.isSent(r, b)) rest[j++] = Math.min(1f, Math.max(0f, out[r][b]));
        return BucketTable.Tail.reference(rest);
    }

    private static BucketTable roundTrip(BucketTable t) throws IOException {
        try (BytesStreamOutput out = new BytesStreamOutput()) {
            t.writeTo(out);
            try (StreamInput in = out.bytes().streamInput()) {
                BucketTable read = new BucketTable(in);
                assertEquals("the whole table is read", -1, in.read());
                return read;
            }
        }
    }

    private static void assertSameBits(String what, float[] expected, float[] actual) {
        assertEquals(what, expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                fail(what + " [" + i + "]: expected " + expected[i] + ", got " + actual[i]);
            }
        }
    }

    public void testQuantizedTableReadAndDenseEqualTheirDefinitions() throws IOException {
        for (int iter = 0; iter < 150; iter++) {
            int R = randomIntBetween(1, 4), B = randomFrom(2, 3, 64, randomIntBetween(2, 1000), 4096);
            float[][] out = new float[R][];
            for (int r = 0; r < R; r++) out[r] = randomRow(B);
            int s = randomFrom(1, randomIntBetween(1, B), Math.min(256, B), B - 1, B);
            if (s < 1) s = 1;
            BucketTable ref = reference(out, s);
            BucketTable table = BucketTable.of(out, s, true);
            assertEquals("B " + B + " s " + s, ref, table);
            for (Aggregation a : Aggregation.values()) {
                BucketTable t = table.withAggregation(a), read = roundTrip(t);
                assertEquals(t, read);
                float[] expected = referenceDense(t, ref, out);
                assertSameBits(a + " B " + B + " s " + s, expected, t.dense());
                assertSameBits(a + " read, B " + B + " s " + s, expected, read.dense());
                assertEquals("maxMean as built (the whole table's from its building pass) and as read", read.maxMean(), t.maxMean(), 0.0);
                assertEquals("minMean as built and as read", read.minMean(), t.minMean(), 0.0);
                double minSum = 0;
                for (int r = 0; r < R; r++) {
                    float min = Float.POSITIVE_INFINITY;
                    for (int b = 0; b < B; b++) min = Math.min(min, expected[r * B + b]);
                    minSum += min;
                }
                assertEquals("minMean: the mean of each repetition's lowest dense value", minSum / R, t.minMean(), 1e-12);
            }
        }
    }

    /** A zero among values so small that high * 1e-7 underflows: the scale starts at the smallest float, both codings agree. */
    public void testZeroAmongTinyValues() {
        float[] rest = { 0f, Float.MIN_VALUE * 1000, Float.MIN_VALUE * 3 };
        BucketTable.Tail t = BucketTable.Tail.of(rest);
        assertEquals(BucketTable.Tail.reference(rest), t);
        assertEquals(Float.MIN_VALUE, t.low(), 0f);
        assertEquals(0, t.codes()[0] & 0xFF);
        assertEquals(255, t.codes()[1] & 0xFF);
        assertTrue((t.codes()[2] & 0xFF) > 0 && (t.codes()[2] & 0xFF) < 255);
    }
}
