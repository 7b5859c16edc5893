package org.opensearch.mach.bench;

import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.model.ProductIndex;
import java.util.Random;

/**
 * Decoder micro-benchmark on random models (not a test): R B K iterations [m = buckets per repetition, default 10], e.g.
 * <pre>java -cp "plugin/target/classes:plugin/target/test-classes:$(cat cp.txt)" org.opensearch.mach.bench.DecodeBench 16 4096 54667 1000</pre>
 */
public final class DecodeBench {
    public static void main(String[] a) {
        int R = Integer.parseInt(a[0]), B = Integer.parseInt(a[1]), K = Integer.parseInt(a[2]), n = Integer.parseInt(a[3]);
        int m = a.length > 4 ? Integer.parseInt(a[4]) : 10;
        Random rnd = new Random(1);
        int[][] bo = new int[R][K];
        for (int r = 0; r < R; r++) for (int k = 0; k < K; k++) bo[r][k] = rnd.nextInt(B);
        ProductIndex idx = new ProductIndex(bo, B);
        float[][][] probs = new float[20][R][B];
        for (float[][] p : probs) for (float[] row : p) { double s = 0; for (int b = 0; b < B; b++) { row[b] = (float) Math.exp(rnd.nextGaussian() * 2); s += row[b]; } for (int b = 0; b < B; b++) row[b] /= s; }
        for (String strat : new String[] {"exact", "candidates"}) {
            Decoder.Options o = new Decoder.Options(100, Decoder.Strategy.parse(strat), m, 1, Decoder.ScoreMode.MEAN);
            for (int i = 0; i < n / 4 + 1; i++) Decoder.decode(idx, probs[i % 20], o); // warm up
            long t = System.nanoTime(); long scored = 0;
            for (int i = 0; i < n; i++) scored += Decoder.decode(idx, probs[i % 20], o).scored();
            System.out.printf("R=%d B=%d K=%d m=%d %s: %.3f ms/query (%d products scored)%n", R, B, K, m, strat, (System.nanoTime() - t) / 1e6 / n, scored / n);
        }
    }
}
