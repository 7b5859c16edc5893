package org.opensearch.mach.inference;

import org.opensearch.mach.inference.Decoder.Options;
import org.opensearch.mach.inference.Decoder.Result;
import org.opensearch.mach.inference.Decoder.ScoreMode;
import org.opensearch.mach.inference.Decoder.Strategy;
import org.opensearch.mach.model.ProductIndex;
import org.opensearch.test.OpenSearchTestCase;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import java.util.stream.IntStream;

public class DecoderTests extends OpenSearchTestCase {

    private ProductIndex randomIndex(int R, int B, int K) {
        int[][] bucketOf = new int[R][K];
        for (int r = 0; r < R; r++) {
            for (int k = 0; k < K; k++) {
                bucketOf[r][k] = randomIntBetween(0, B - 1);
            }
        }
        return new ProductIndex(bucketOf, B);
    }

    /** Softmax rows with a few peaked buckets, like a trained model. */
    private float[][] randomProbs(int R, int B) {
        float[][] p = new float[R][B];
        for (int r = 0; r < R; r++) {
            double sum = 0;
            double[] logits = new double[B];
            for (int b = 0; b < B; b++) {
                logits[b] = randomDouble() * 2 + (rarely() ? 6 * randomDouble() : 0);
                sum += Math.exp(logits[b]);
            }
            for (int b = 0; b < B; b++) {
                p[r][b] = (float) (Math.exp(logits[b]) / sum);
            }
        }
        return p;
    }

    /** Brute force: mean over r of P_r(h_r(k)) for every k, sorted by (score desc, id asc). */
    private static int[] bruteForce(ProductIndex index, float[][] probs, int n) {
        double[] s = new double[index.products()];
        for (int k = 0; k < s.length; k++) {
            double sum = 0;
            for (int r = 0; r < index.repetitions(); r++) {
                sum += probs[r][index.bucket(r, k)];
            }
            s[k] = sum / index.repetitions();
        }
        return IntStream.range(0, s.length)
            .boxed()
            .sorted((a, b) -> s[a] != s[b] ? Double.compare(s[b], s[a]) : Integer.compare(a, b))
            .limit(n)
            .mapToInt(i -> i)
            .toArray();
    }

    public void testExactMatchesBruteForce() {
        for (int iter = 0; iter < 20; iter++) {
            int R = randomIntBetween(1, 8), B = randomIntBetween(2, 64), K = randomIntBetween(1, 3000), n = randomIntBetween(1, 200);
            ProductIndex index = randomIndex(R, B, K);
            float[][] probs = randomProbs(R, B);
            Result res = Decoder.decode(index, probs, new Options(n, Strategy.EXACT, 1, 1, ScoreMode.MEAN));
            assertArrayEquals(bruteForce(index, probs, n), res.products());
            assertEquals(Strategy.EXACT, res.used());
            assertEquals(K, res.scored());
            for (int i = 0; i < res.products().length; i++) {
                double sum = 0;
                for (int r = 0; r < R; r++) {
                    sum += probs[r][index.bucket(r, res.products()[i])];
                }
                assertEquals(sum / R, res.scores()[i], 1e-6);
            }
        }
    }

    public void testCandidatesEqualBruteForceWhenCovered() {
        int covered = 0;
        for (int iter = 0; iter < 50; iter++) {
            int R = randomIntBetween(2, 8), B = randomIntBetween(8, 128), K = randomIntBetween(50, 5000);
            int n = randomIntBetween(1, 50), m = randomIntBetween(1, B);
            ProductIndex index = randomIndex(R, B, K);
            float[][] probs = randomProbs(R, B);
            Result cand = Decoder.decode(index, probs, new Options(n, Strategy.CANDIDATES, m, 1, ScoreMode.MEAN));
            assertEquals(Strategy.CANDIDATES, cand.used());

            // the candidate set, computed independently
            Set<Integer> candidates = new HashSet<>();
            for (int r = 0; r < R; r++) {
                Set<Integer> top = new HashSet<>();
                for (int b : Decoder.topBuckets(probs[r], m)) top.add(b);
                for (int k = 0; k < K; k++) {
                    if (top.contains(index.bucket(r, k))) candidates.add(k);
                }
            }
            assertEquals(candidates.size(), cand.scored());
            for (int k : cand.products()) {
                assertTrue("product " + k + " is not a candidate", candidates.contains(k));
            }
            int[] exact = bruteForce(index, probs, n);
            if (Arrays.stream(exact).allMatch(candidates::contains)) {
                assertArrayEquals("candidates cover the exact top-" + n, exact, cand.products());
                covered++;
            }
        }
        assertTrue("the random cases should mostly be covered, got " + covered, covered > 5);
    }

    public void testTopBucketsAreTheLargest() {
        float[] p = { 0.1f, 0.5f, 0.05f, 0.3f, 0.05f };
        assertArrayEquals(new int[] { 1, 3, 0 }, Decoder.topBuckets(p, 3));
        assertArrayEquals(new int[] { 1, 3, 0, 2, 4 }, Decoder.topBuckets(p, 10));
    }

    public void testCalibratedSameOrderAsMean() {
        int R = 4, B = 32, K = 1000;
        ProductIndex index = randomIndex(R, B, K);
        float[][] probs = randomProbs(R, B);
        Result mean = Decoder.decode(index, probs, new Options(100, Strategy.EXACT, 1, 1, ScoreMode.MEAN));
        Result cal = Decoder.decode(index, probs, new Options(100, Strategy.EXACT, 1, 1, ScoreMode.CALIBRATED));
        assertArrayEquals(mean.products(), cal.products());
        for (int i = 0; i < mean.products().length; i++) {
            assertEquals((double) B / (B - 1) * (mean.scores()[i] - 1.0 / B), cal.scores()[i], 1e-6);
            assertEquals(mean.scores()[i], cal.meanScores()[i], 0f);
        }
    }

    public void testMinRepetitionsFilters() {
        // 3 repetitions, 4 buckets, products: 0 in top bucket everywhere, 1 in top bucket of one repetition only
        int[][] bucketOf = { { 0, 0, 3 }, { 0, 2, 3 }, { 0, 2, 3 } };
        ProductIndex index = new ProductIndex(bucketOf, 4);
        float[][] probs = { { 0.7f, 0.1f, 0.1f, 0.1f }, { 0.7f, 0.1f, 0.1f, 0.1f }, { 0.7f, 0.1f, 0.1f, 0.1f } };
        Result f1 = Decoder.decode(index, probs, new Options(10, Strategy.CANDIDATES, 1, 1, ScoreMode.MEAN));
        assertArrayEquals(new int[] { 0, 1 }, f1.products());
        Result f2 = Decoder.decode(index, probs, new Options(10, Strategy.CANDIDATES, 1, 2, ScoreMode.MEAN));
        assertArrayEquals(new int[] { 0 }, f2.products());
        Result f3 = Decoder.decode(index, probs, new Options(10, Strategy.AUTO, 1, 3, ScoreMode.MEAN));
        assertEquals("min_repetitions > 1 needs candidate decoding", Strategy.CANDIDATES, f3.used());
        assertArrayEquals(new int[] { 0 }, f3.products());
        assertEquals((0.7 + 0.1 + 0.1) / 3, f1.scores()[1], 1e-6);
    }

    public void testAutoPicksBySize() {
        float[][] probs = randomProbs(2, 4);
        assertEquals(Strategy.EXACT, Decoder.decode(randomIndex(2, 4, 100), probs, new Options(5, Strategy.AUTO, 2, 1, ScoreMode.MEAN)).used());
        assertEquals(
            Strategy.CANDIDATES,
            Decoder.decode(randomIndex(2, 4, Decoder.AUTO_EXACT_MAX_PRODUCTS + 1), probs, new Options(5, Strategy.AUTO, 2, 1, ScoreMode.MEAN))
                .used()
        );
    }

    public void testBadOptions() {
        expectThrows(IllegalArgumentException.class, () -> new Options(0, Strategy.AUTO, 1, 1, ScoreMode.MEAN));
        expectThrows(IllegalArgumentException.class, () -> new Options(1, Strategy.AUTO, 0, 1, ScoreMode.MEAN));
        expectThrows(IllegalArgumentException.class, () -> new Options(1, Strategy.EXACT, 1, 2, ScoreMode.MEAN));
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class, () -> Strategy.parse("fast"));
        assertTrue(e.getMessage(), e.getMessage().contains("[auto, exact, candidates]"));
        expectThrows(IllegalArgumentException.class, () -> ScoreMode.parse("max"));
    }
}
