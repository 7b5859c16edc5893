package org.opensearch.mach.query;

import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.mach.inference.Aggregation;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.test.OpenSearchTestCase;

/**
 * The bounds of an exact table (every bucket sent), whose rest is read from the (m + 1)-th bucket, equal their
 * definition: per repetition the largest score outside the top m, summed over the repetitions.
 */
public class BucketBoundsTests extends OpenSearchTestCase {

    public void testExactTableRestIsTheLargestScoreOutsideTheTopM() {
        for (int iter = 0; iter < 100; iter++) {
            int R = randomIntBetween(1, 6), B = randomFrom(2, 16, 64, 300);
            HashFamily family = HashFamily.parse("murmur3_x86_32-r" + R + "-b" + B + "-s1296122696");
            float[][] out = new float[R][B];
            int distinct = randomBoolean() ? B : randomIntBetween(1, 4); // few values: ties across the m-th place
            float[] values = new float[distinct];
            for (int i = 0; i < distinct; i++) values[i] = randomFrom(0f, 1f, randomFloat(), (float) Math.exp(-20 * randomDouble()));
            for (float[] row : out) for (int b = 0; b < B; b++) row[b] = values[randomInt(distinct - 1)];
            int m = randomIntBetween(1, B);
            BucketTable table = BucketTable.of(out, B, true).withAggregation(randomFrom(Aggregation.values()));
            BucketScoring scoring = new BucketScoring(family.name(), table, Decoder.ScoreMode.MEAN, 1f, 0f);
            float[] dense = table.dense();
            double base = 0;
            for (int r = 0; r < R; r++) {
                boolean[] top = new boolean[B];
                for (int b : table.topBuckets(r, m)) top[b] = true;
                float rest = 0;
                for (int b = 0; b < B; b++) if (!top[b]) rest = Math.max(rest, dense[r * B + b]);
                base += rest;
            }
            float expected = scoring.score(base / R * (1 + 1e-4));
            assertEquals("R " + R + " B " + B + " m " + m + " " + table.aggregation(), expected, new BucketBounds(scoring, m).restScore(), 0f);
        }
    }
}
