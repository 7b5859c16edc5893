package org.opensearch.mach.query;

import org.opensearch.test.OpenSearchTestCase;

/**
 * The quantized tail's codes from {@link LogScaleCodes} (step values and a lookup over float bits)
 * equal the definition, one logarithm per value ({@link BucketTable.Tail#reference}), code by code,
 * with the same low and high: on softmax-like rows, narrow and wide ranges, values under the 1e-7
 * floor, zeros, subnormals and a tail of one value.
 */
public class LogScaleCodesTests extends OpenSearchTestCase {

    private static void assertSameTail(float[] rest) {
        BucketTable.Tail expected = BucketTable.Tail.reference(rest);
        BucketTable.Tail actual = BucketTable.Tail.of(rest);
        assertEquals(expected.low(), actual.low(), 0f);
        assertEquals(expected.high(), actual.high(), 0f);
        for (int i = 0; i < rest.length; i++) {
            assertEquals("value " + rest[i] + " (low " + expected.low() + ", high " + expected.high() + ")", expected.codes()[i] & 0xFF, actual.codes()[i] & 0xFF);
        }
    }

    public void testSoftmaxLikeRows() {
        for (int iter = 0; iter < 40; iter++) {
            int n = randomIntBetween(1, 4096);
            double sd = randomFrom(0.1, 1.0, 2.0, 5.0, 20.0);
            float[] rest = new float[n];
            double sum = 0;
            for (int i = 0; i < n; i++) sum += rest[i] = (float) Math.exp(random().nextGaussian() * sd);
            for (int i = 0; i < n; i++) rest[i] = (float) (rest[i] / sum);
            assertSameTail(rest);
        }
    }

    public void testEveryValueAroundEveryStep() {
        // every float from just under low to high on a narrow range: each step of the code is crossed, one ulp at a time
        float low = 0.3f;
        float[] rest = new float[3000];
        float v = Math.nextDown(low);
        for (int i = 0; i < rest.length; i++, v = Math.nextUp(v)) rest[i] = v;
        assertSameTail(rest);
        int codes = 0;
        BucketTable.Tail t = BucketTable.Tail.of(rest);
        for (int i = 1; i < rest.length; i++) if (t.codes()[i] != t.codes()[i - 1]) codes++;
        assertEquals("the codes step through 0..255", 255, codes);
    }

    public void testEdgeCases() {
        assertSameTail(new float[] { 0.2f }); // one value: high == low, every code 0
        assertSameTail(new float[] { 0f, 0f, 0f }); // nothing: high 0
        assertSameTail(new float[] { 0f, 0.5f, 1e-9f, 0.25f, 1f }); // zeros and values under the floor (high * 1e-7)
        assertSameTail(new float[] { Float.MIN_VALUE, 3 * Float.MIN_VALUE, 1e-44f, 1e-40f }); // subnormals: few floats per code
        assertSameTail(new float[] { 0.5f, Math.nextUp(0.5f), Math.nextUp(Math.nextUp(0.5f)) }); // three adjacent floats
        assertSameTail(new float[] { -0f, 1e-3f, 2e-3f, 1e-3f }); // -0 as the tail's smallest value
        float[] wide = new float[500];
        for (int i = 0; i < wide.length; i++) wide[i] = (float) Math.pow(10, -randomDouble() * 9); // wider than the floor's 7 decades
        assertSameTail(wide);
    }
}
