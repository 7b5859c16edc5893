package org.opensearch.mach.query;

import org.opensearch.mach.inference.Decoder;
import org.opensearch.test.OpenSearchTestCase;

import java.util.Arrays;

/**
 * The table's linear-time top-s selection picks exactly the heap's buckets (higher probability first,
 * ties: lower bucket), also at B 4,096 with a histogram bin holding many values; the dense lookup's decoded tail
 * equals one log and one pow per bucket.
 */
public class BucketTableSelectionTests extends OpenSearchTestCase {

    private static int[] heapAscending(float[] p, int s) {
        int[] top = Decoder.topBuckets(p, s);
        Arrays.sort(top);
        return top;
    }

    public void testSelectionEqualsHeapOnRandomAndTiedValues() {
        for (int iter = 0; iter < 200; iter++) {
            int B = randomIntBetween(2, 600);
            float[] p = new float[B];
            int distinct = randomBoolean() ? B : randomIntBetween(1, 5); // few distinct values: many ties
            float[] values = new float[distinct];
            for (int i = 0; i < distinct; i++) values[i] = randomFrom(0f, -0f, 1f, -1.5f, randomFloat(), (float) Math.exp(-30 * randomDouble()));
            for (int b = 0; b < B; b++) p[b] = values[randomInt(distinct - 1)];
            int s = randomIntBetween(1, B);
            assertArrayEquals("B " + B + " s " + s + " " + Arrays.toString(p), heapAscending(p, s), BucketTable.topAscending(p, s));
        }
    }

    public void testSelectionEqualsHeapAtFullSizeWithCrowdedBins() {
        for (int iter = 0; iter < 50; iter++) {
            int B = 4096;
            float[] p = new float[B];
            int shape = randomInt(3);
            for (int b = 0; b < B; b++) {
                p[b] = switch (shape) {
                    case 0 -> (float) Math.exp(random().nextGaussian() * 2); // softmax-like before normalizing: many binades
                    case 1 -> 0.25f + randomInt(1000) * 1e-7f; // one quarter binade: a single histogram bin, ties
                    case 2 -> randomBoolean() ? 1e-3f : Math.nextUp(1e-3f); // two values
                    default -> randomFrom(0f, -0f, -randomFloat(), randomFloat());
                };
            }
            int s = randomFrom(1, 10, 256, 2048, 4095, 4096);
            assertArrayEquals("shape " + shape + " s " + s, heapAscending(p, s), BucketTable.topAscending(p, s));
        }
    }

    public void testDecodeTableEqualsOnePowPerCode() {
        for (int iter = 0; iter < 2000; iter++) {
            float high = randomFrom(1f, randomFloat(), (float) Math.exp(-80 * randomDouble()), Float.MIN_VALUE * randomIntBetween(1, 1000));
            float low = randomFrom(high, high * randomFloat(), (float) (high * Math.exp(-16.2 * randomDouble())), Float.MIN_VALUE, 0f);
            if (low > high) low = high;
            BucketTable.Tail t = new BucketTable.Tail(low, high, new byte[0]);
            float[] fast = t.decodeTable(), reference = t.decodeTableReference();
            for (int c = 0; c < 256; c++) {
                assertEquals("low " + low + " high " + high + " code " + c, Float.floatToRawIntBits(reference[c]), Float.floatToRawIntBits(fast[c]));
            }
        }
    }

    public void testMaxOutsideEqualsTheDenseScan() {
        for (int iter = 0; iter < 100; iter++) {
            int B = randomFrom(2, 64, 1024);
            float[][] out = BucketTableSizeTests.softmaxLike(3, B);
            if (randomBoolean()) out[1][randomInt(B - 1)] = 0f; // a zero in the tail
            BucketTable table = BucketTable.of(out, randomIntBetween(1, B), randomBoolean());
            float[] dense = table.dense();
            for (int r = 0; r < 3; r++) {
                boolean[] excluded = new boolean[B];
                for (int b : table.topBuckets(r, randomIntBetween(0, 12))) excluded[b] = true;
                float expected = 0;
                for (int b = 0; b < B; b++) if (!excluded[b]) expected = Math.max(expected, dense[r * B + b]);
                assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(table.maxOutside(r, excluded)));
            }
        }
    }

    public void testSelectionWithNaNFallsBackToTheHeap() {
        float[] p = { 0.1f, Float.NaN, 0.5f, 0.2f, Float.NaN, 0.05f };
        for (int s = 1; s <= p.length; s++) assertArrayEquals(heapAscending(p, s), BucketTable.topAscending(p, s));
    }

    public void testTablesAndDenseLookupUnchanged() {
        float[][] out = BucketTableSizeTests.softmaxLike(4, 1024);
        for (int s : new int[] { 1, 64, 1023, 1024 }) {
            BucketTable table = BucketTable.of(out, s, true);
            float[] dense = table.dense();
            for (int r = 0; r < 4; r++) {
                int[] sent = heapAscending(out[r], s);
                for (int b = 0, i = 0, j = 0; b < 1024; b++) {
                    assertEquals(i < sent.length && sent[i] == b, table.isSent(r, b));
                    if (i < sent.length && sent[i] == b) {
                        assertEquals(Math.min(1f, Math.max(0f, out[r][b])), dense[r * 1024 + b], 0f);
                        i++;
                    } else {
                        assertTrue(table.quantizedTail(r));
                        assertEquals(tailValue(out[r], sent, j++), dense[r * 1024 + b], 0f);
                    }
                }
            }
        }
    }

    /** What the dense lookup held before the decode table: one pow per unsent bucket, from the tail built independently (one log per bucket). */
    private static float tailValue(float[] row, int[] sent, int j) {
        float[] rest = new float[row.length - sent.length];
        for (int b = 0, i = 0, n = 0; b < row.length; b++) {
            if (i < sent.length && sent[i] == b) i++;
            else rest[n++] = Math.min(1f, Math.max(0f, row[b]));
        }
        BucketTable.Tail t = BucketTable.Tail.reference(rest);
        if (t.high() == 0) return 0f;
        return (float) (t.low() * Math.pow((double) t.high() / t.low(), (t.codes()[j] & 0xFF) / 255.0));
    }
}
