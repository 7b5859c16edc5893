package org.opensearch.mach.query;

import org.opensearch.common.io.stream.BytesStreamOutput;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.MachModel;
import org.opensearch.test.OpenSearchTestCase;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Bytes per shard request of the bucket table, and what truncating it to the top s buckets costs in
 * ranking. Always: synthetic softmax-like outputs at R 16 / B 4,096 and R 32 / B 20,000 (size bounds
 * asserted). With {@code -Dmach.bench.bundle=/work/models/hd-enc} (and optionally
 * {@code -Dmach.bench.queries=<judgments tsv>}): a real model's outputs on real queries; prints bytes
 * per s, and the overlap of the top 10 / 100 of MACH's candidates (m 10) scored from the truncated
 * table with their exact top 10 / 100.
 */
public class BucketTableSizeTests extends OpenSearchTestCase {
    static final int[] S = { 64, 128, 256, 512, 1024 };

    static float[][] softmaxLike(int R, int B) {
        float[][] p = new float[R][B];
        for (float[] row : p) {
            double sum = 0;
            for (int b = 0; b < B; b++) sum += row[b] = (float) Math.exp(4 * random().nextGaussian());
            for (int b = 0; b < B; b++) row[b] /= (float) sum;
        }
        return p;
    }

    static int bytes(BucketTable t) throws IOException {
        try (BytesStreamOutput out = new BytesStreamOutput()) {
            t.writeTo(out);
            return out.size();
        }
    }

    public void testSyntheticSizes() throws IOException {
        for (int[] rb : new int[][] { { 16, 4096 }, { 32, 20000 } }) {
            int R = rb[0], B = rb[1];
            float[][] p = softmaxLike(R, B);
            StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "R%d/B%d:", R, B));
            for (int s : S) {
                int n = bytes(BucketTable.of(p, s));
                int q = bytes(BucketTable.of(p, s, true));
                line.append(String.format(Locale.ROOT, " s=%d %d B (quantized rest %d B);", s, n, q));
                assertTrue("ids + probabilities, about 5-6 bytes a bucket", n <= R * (s * 6 + 10));
                assertTrue("plus a byte per unsent bucket", q <= n + R * (B - s + 9));
            }
            int exact = bytes(BucketTable.of(p, B));
            line.append(String.format(Locale.ROOT, " exact %d B", exact));
            assertTrue(exact <= R * (B * 4 + 8) + 10);
            long t0 = System.nanoTime();
            BucketTable.of(p, 256).dense();
            line.append(String.format(Locale.ROOT, "; table + dense lookup %.2f ms", (System.nanoTime() - t0) / 1e6));
            logger.info(line);
            System.out.println(line);
        }
    }

    public void testRealModel() throws Exception {
        String bundle = System.getProperty("mach.bench.bundle");
        assumeTrue("set -Dmach.bench.bundle to a bundle directory", bundle != null && !bundle.isEmpty());
        String queriesFile = System.getProperty("mach.bench.queries", "/work/shared/data/homedepot/judgments-dev.tsv");
        Set<String> texts = new LinkedHashSet<>();
        List<String> lines = Files.readAllLines(Path.of(queriesFile), StandardCharsets.UTF_8);
        for (String l : lines.subList(1, lines.size())) {
            texts.add(l.split("\t")[0]);
            if (texts.size() == 300) break;
        }
        MachModel model = BundleLoader.load("bench", Path.of(bundle), false);
        int R = model.card().repetitions, B = model.index().buckets(), m = 10;
        long[] bytes = new long[2 * S.length + 1];
        double[] overlap10 = new double[2 * S.length], overlap100 = new double[2 * S.length];
        int n = 0;
        for (String text : texts) {
            Prediction all = MachInferenceService.predict(model, text, new Decoder.Options(model.index().products(), Decoder.Strategy.CANDIDATES, m, 1,
                Decoder.ScoreMode.MEAN));
            if (all.probabilities() == null || all.size() < 100) continue;
            n++;
            int[] exactTop = all.result().products(); // best first, exact scores
            for (int i = 0; i < 2 * S.length; i++) {
                BucketTable t = BucketTable.of(all.probabilities(), S[i % S.length], i >= S.length);
                bytes[i] += bytes(t);
                float[] dense = t.dense();
                // rescore the same candidates from the truncated table
                Integer[] order = new Integer[exactTop.length];
                double[] score = new double[exactTop.length];
                for (int j = 0; j < exactTop.length; j++) {
                    order[j] = j;
                    double sum = 0;
                    for (int r = 0; r < R; r++) sum += dense[r * B + model.index().bucket(r, exactTop[j])];
                    score[j] = sum / R;
                }
                java.util.Arrays.sort(order, (a, b) -> score[b] != score[a] ? Double.compare(score[b], score[a]) : Integer.compare(exactTop[a], exactTop[b]));
                overlap10[i] += overlap(exactTop, order, 10);
                overlap100[i] += overlap(exactTop, order, 100);
            }
            bytes[2 * S.length] += bytes(BucketTable.of(all.probabilities(), B));
        }
        StringBuilder out = new StringBuilder(String.format(Locale.ROOT, "%s R%d/B%d, %d queries, m %d:", bundle, R, B, n, m));
        for (int i = 0; i < 2 * S.length; i++) {
            out.append(String.format(Locale.ROOT, "\n  s=%d%s: %d bytes/request, top-10 overlap %.4f, top-100 overlap %.4f", S[i % S.length],
                i >= S.length ? " + quantized rest" : " + residual", bytes[i] / n,
                overlap10[i] / n, overlap100[i] / n));
        }
        out.append(String.format(Locale.ROOT, "\n  exact (s=B): %d bytes/request", bytes[2 * S.length] / n));
        logger.info(out);
        System.out.println(out);
        model.close();
    }

    private static double overlap(int[] exactTop, Integer[] order, int k) {
        Set<Integer> a = new HashSet<>(), b = new HashSet<>();
        for (int j = 0; j < k; j++) {
            a.add(exactTop[j]);
            b.add(exactTop[order[j]]);
        }
        a.retainAll(b);
        return a.size() / (double) k;
    }
}
