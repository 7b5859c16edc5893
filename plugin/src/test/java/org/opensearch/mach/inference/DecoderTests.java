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

    /** The sorted-array selection (up to SMALL_TOP) picks the heap's buckets in the heap's order, ties included. */
    public void testTopBucketsEqualTheHeaps() {
        for (int iter = 0; iter < 300; iter++) {
            int B = randomFrom(1, 2, 11, randomIntBetween(1, 500), 4096);
            int distinct = randomBoolean() ? B : randomIntBetween(1, 4); // few values: ties across the k-th place
            float[] values = new float[distinct];
            for (int i = 0; i < distinct; i++) values[i] = randomFrom(0f, -0f, 1f, -0.5f, randomFloat(), (float) Math.exp(-30 * randomDouble()));
            float[] p = new float[B];
            for (int b = 0; b < B; b++) p[b] = values[randomInt(distinct - 1)];
            int m = randomFrom(0, 1, 10, 11, Decoder.SMALL_TOP, Decoder.SMALL_TOP + 1, randomIntBetween(1, B + 2));
            assertArrayEquals("B " + B + " m " + m + " " + Arrays.toString(p), Decoder.topBucketsByHeap(p, m), Decoder.topBuckets(p, m));
        }
    }

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

    /** Products in the top-m buckets of at least f repetitions, computed independently of the decoder. */
    private static Set<Integer> candidateSet(ProductIndex index, float[][] probs, int m, int f) {
        int[] seen = new int[index.products()];
        for (int r = 0; r < index.repetitions(); r++) {
            Set<Integer> top = new HashSet<>();
            for (int b : Decoder.topBuckets(probs[r], m)) top.add(b);
            for (int k = 0; k < index.products(); k++) {
                if (top.contains(index.bucket(r, k))) seen[k]++;
            }
        }
        Set<Integer> candidates = new HashSet<>();
        for (int k = 0; k < seen.length; k++) {
            if (seen[k] >= f) candidates.add(k);
        }
        return candidates;
    }

    /** Brute force over a subset: the n best of {@code among} by (mean desc, id asc). */
    private static int[] bruteForceAmong(ProductIndex index, float[][] probs, int n, Set<Integer> among) {
        return Arrays.stream(bruteForce(index, probs, index.products())).filter(among::contains).limit(n).toArray();
    }

    /** Probabilities from a handful of values, so that many products tie on their mean. */
    private float[][] coarseProbs(int R, int B) {
        float[][] p = new float[R][B];
        for (float[] row : p) {
            for (int b = 0; b < B; b++) row[b] = randomIntBetween(0, 4) / 8f;
        }
        return p;
    }

    /** Candidate decoding = the top-N of the candidates (each scored once); = exact decoding whenever they contain the exact top-N. */
    public void testCandidatesEqualBruteForceWhenCovered() {
        int covered = 0;
        for (int iter = 0; iter < 60; iter++) {
            int R = randomIntBetween(2, 8), B = randomIntBetween(8, 128), K = randomIntBetween(50, 5000);
            int n = randomIntBetween(1, 50), m = randomIntBetween(1, B);
            ProductIndex index = randomIndex(R, B, K);
            float[][] probs = iter % 4 == 3 ? coarseProbs(R, B) : randomProbs(R, B);
            Result cand = Decoder.decode(index, probs, new Options(n, Strategy.CANDIDATES, m, 1, ScoreMode.MEAN));
            assertEquals(Strategy.CANDIDATES, cand.used());

            Set<Integer> candidates = candidateSet(index, probs, m, 1);
            assertArrayEquals("the top-" + n + " of the candidates", bruteForceAmong(index, probs, n, candidates), cand.products());
            assertEquals(candidates.size(), cand.scored());
            int[] exact = bruteForce(index, probs, n);
            if (Arrays.stream(exact).allMatch(candidates::contains)) {
                assertArrayEquals("candidates cover the exact top-" + n, exact, cand.products());
                covered++;
            }
        }
        assertTrue("the random cases should mostly be covered, got " + covered, covered > 5);
    }

    /** The same at a realistic shape (R = 16, B = 4096, m = 10, top 100) and with min_repetitions. */
    public void testCandidatesAtModelScale() {
        int R = 16, B = 4096, K = randomIntBetween(50_000, 120_000);
        ProductIndex index = randomIndex(R, B, K);
        for (int iter = 0; iter < 4; iter++) {
            float[][] probs = randomProbs(R, B);
            int f = iter == 0 ? 1 : randomIntBetween(1, 3);
            Result cand = Decoder.decode(index, probs, new Options(100, Strategy.CANDIDATES, 10, f, ScoreMode.MEAN));
            Set<Integer> candidates = candidateSet(index, probs, 10, f);
            assertArrayEquals(bruteForceAmong(index, probs, 100, candidates), cand.products());
            assertEquals(candidates.size(), cand.scored());
            int[] exact = bruteForce(index, probs, 100);
            if (Arrays.stream(exact).allMatch(candidates::contains)) {
                assertArrayEquals(exact, cand.products());
            }
        }
    }

    /** min_repetitions = f keeps exactly the products in the top-m buckets of at least f repetitions, best first. */
    public void testMinRepetitionsMatchesDefinition() {
        for (int iter = 0; iter < 30; iter++) {
            int R = randomIntBetween(2, 8), B = randomIntBetween(4, 64), K = randomIntBetween(50, 3000);
            int m = randomIntBetween(1, B), f = randomIntBetween(1, R), n = randomIntBetween(1, 200);
            ProductIndex index = randomIndex(R, B, K);
            float[][] probs = iter % 3 == 2 ? coarseProbs(R, B) : randomProbs(R, B);
            Result cand = Decoder.decode(index, probs, new Options(n, Strategy.CANDIDATES, m, f, ScoreMode.MEAN));
            Set<Integer> candidates = candidateSet(index, probs, m, f);
            assertArrayEquals("f = " + f, bruteForceAmong(index, probs, n, candidates), cand.products());
            assertEquals(candidates.size(), cand.scored());
            assertEquals(Math.min(n, candidates.size()), cand.products().length);
        }
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

    /**
     * log_mean by hand (R 2, B 4, floors f_0 = f_1 = 0.001, the smallest probability of each repetition):
     * k0 (0.9, 0.001): (ln 900 + 0) / 2; k1 (0.3, 0.3): ln 300; k2 (0.05, 0.099): (ln 50 + ln 99) / 2;
     * k3 (0.001, 0.6): (0 + ln 600) / 2. The mean ranks k0 k3 k1 k2, the log-mean k1 k2 k0 k3.
     */
    public void testLogMeanByHand() {
        float[][] probs = { { 0.9f, 0.3f, 0.001f, 0.05f }, { 0.3f, 0.001f, 0.6f, 0.099f } };
        ProductIndex index = new ProductIndex(new int[][] { { 0, 1, 3, 2 }, { 1, 0, 3, 2 } }, 4);
        double[] expected = { Math.log(900) / 2, Math.log(300), (Math.log(50) + Math.log(99)) / 2, Math.log(600) / 2 };
        assertEquals(3.40120, expected[0], 1e-5); // the hand figures
        assertEquals(5.70378, expected[1], 1e-5);
        assertEquals(4.25357, expected[2], 1e-5);
        assertEquals(3.19846, expected[3], 1e-5);
        for (Strategy strategy : new Strategy[] { Strategy.EXACT, Strategy.CANDIDATES }) {
            Result log = Decoder.decode(index, probs, new Options(4, strategy, 4, 1, ScoreMode.MEAN), Aggregation.LOG_MEAN);
            assertArrayEquals(strategy.toString(), new int[] { 1, 2, 0, 3 }, log.products());
            for (int i = 0; i < 4; i++) {
                int k = log.products()[i];
                // float inputs: 0.001f and 0.9f are not exactly 1e-3 and 0.9
                assertEquals("k" + k, expected[k], log.scores()[i], 1e-5);
            }
            assertEquals("meanScores stay the mean probability", 0.3f, log.meanScores()[0], 1e-6f);
        }
        Result mean = Decoder.decode(index, probs, new Options(4, Strategy.EXACT, 1, 1, ScoreMode.MEAN));
        assertArrayEquals(new int[] { 0, 3, 1, 2 }, mean.products());
        assertEquals(mean.scores()[0], mean.meanScores()[0], 0f);
        // candidates from the top bucket of each repetition: k0 (r0 bucket 0) and k3 (r1 bucket 2), ranked by log-mean
        Result cand = Decoder.decode(index, probs, new Options(4, Strategy.CANDIDATES, 1, 1, ScoreMode.MEAN), Aggregation.LOG_MEAN);
        assertArrayEquals(new int[] { 0, 3 }, cand.products());
        IllegalArgumentException e = expectThrows(
            IllegalArgumentException.class,
            () -> Decoder.decode(index, probs, new Options(4, Strategy.EXACT, 1, 1, ScoreMode.CALIBRATED), Aggregation.LOG_MEAN)
        );
        assertTrue(e.getMessage(), e.getMessage().contains("[score] [calibrated]") && e.getMessage().contains("[log_mean]"));
    }

    /** The floor is the repetition's smallest probability, but at most 7 decades below its largest; scores are >= 0. */
    public void testLogMeanFloor() {
        float[] scores = Aggregation.LOG_MEAN.bucketScores(new float[] { 1f, 1e-12f, 0.5f, 0f });
        assertEquals(Math.log(1e7), scores[0], 1e-5);
        assertEquals(0f, scores[1], 0f);
        assertEquals(Math.log(5e6), scores[2], 1e-5);
        assertEquals(0f, scores[3], 0f);
        assertArrayEquals(new float[] { 0f, 0f }, Aggregation.LOG_MEAN.bucketScores(new float[] { 0f, 0f }), 0f);
        float[] p = { 0.2f, 0.5f };
        assertSame(p, Aggregation.MEAN.bucketScores(p));
        assertEquals(Aggregation.LOG_MEAN, Aggregation.parse("log_mean"));
        expectThrows(IllegalArgumentException.class, () -> Aggregation.parse("max"));
    }

    /** Random: log-mean decoding (exact, and candidates over every bucket) equals brute force over ln(max(p, f) / f). */
    public void testLogMeanMatchesBruteForce() {
        for (int iter = 0; iter < 10; iter++) {
            int R = randomIntBetween(1, 8), B = randomIntBetween(2, 64), K = randomIntBetween(1, 2000), n = randomIntBetween(1, 100);
            ProductIndex index = randomIndex(R, B, K);
            float[][] probs = randomProbs(R, B);
            float[][] logs = new float[R][B];
            for (int r = 0; r < R; r++) {
                float min = 1, max = 0;
                for (float v : probs[r]) {
                    min = Math.min(min, v);
                    max = Math.max(max, v);
                }
                double f = Math.max(min, max * 1e-7);
                for (int b = 0; b < B; b++) logs[r][b] = (float) Math.log(Math.max(probs[r][b], f) / f);
            }
            int[] expected = bruteForce(index, logs, n);
            Result exact = Decoder.decode(index, probs, new Options(n, Strategy.EXACT, 1, 1, ScoreMode.MEAN), Aggregation.LOG_MEAN);
            Result cand = Decoder.decode(index, probs, new Options(n, Strategy.CANDIDATES, B, 1, ScoreMode.MEAN), Aggregation.LOG_MEAN);
            assertArrayEquals(expected, exact.products());
            assertArrayEquals(expected, cand.products());
            for (int i = 0; i < n && i < K; i++) assertEquals(index.mean(logs, expected[i]), exact.scores()[i], 1e-5);
        }
    }
}
