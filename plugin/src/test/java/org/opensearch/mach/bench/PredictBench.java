package org.opensearch.mach.bench;

import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.MachModel;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Single-thread latency of the plugin's predict path (featurize + ONNX Runtime + decode), outside
 * OpenSearch. Not a test. Run after {@code ./mvnw -pl plugin test-compile}:
 * <pre>java -cp "plugin/target/classes:plugin/target/test-classes:$(cat cp.txt)" org.opensearch.mach.bench.PredictBench
 *     BUNDLE_DIR QUERIES_TSV [top_n] [decoding] [repeats]</pre>
 * ({@code cp.txt} from {@code ./mvnw -pl plugin dependency:build-classpath -Dmdep.outputFile=../cp.txt}).
 * QUERIES_TSV: the first column of a TSV with a header (e.g. judgments-dev.tsv), de-duplicated.
 */
public final class PredictBench {
    public static void main(String[] args) throws Exception {
        Path bundle = Path.of(args[0]);
        int topN = args.length > 2 ? Integer.parseInt(args[2]) : 100;
        Decoder.Strategy strategy = args.length > 3 ? Decoder.Strategy.parse(args[3]) : Decoder.Strategy.AUTO;
        int repeats = args.length > 4 ? Integer.parseInt(args[4]) : 1;
        Set<String> unique = new LinkedHashSet<>();
        List<String> lines = Files.readAllLines(Path.of(args[1]), StandardCharsets.UTF_8);
        for (String l : lines.subList(1, lines.size())) {
            if (!l.isBlank()) unique.add(l.split("\t", -1)[0]);
        }
        List<String> queries = new ArrayList<>(unique);
        long t0 = System.nanoTime();
        try (MachModel model = BundleLoader.load("bench", bundle, false)) {
            System.out.printf(Locale.ROOT, "load+validate: %.0f ms; R=%d B=%d K=%d L=%d D=%d%n", (System.nanoTime() - t0) / 1e6,
                model.card().repetitions, model.card().buckets, model.productCount(), model.card().maxFeatures, model.card().dimension);
            Decoder.Options options = new Decoder.Options(topN, strategy, 10, 1, Decoder.ScoreMode.MEAN);
            for (int i = 0; i < Math.min(200, queries.size()); i++) {
                MachInferenceService.predict(model, queries.get(i), options); // warm-up
            }
            int n = queries.size() * repeats;
            double[] infer = new double[n], decode = new double[n];
            String used = null;
            long scored = 0;
            for (int i = 0; i < n; i++) {
                Prediction p = MachInferenceService.predict(model, queries.get(i % queries.size()), options);
                infer[i] = p.inferenceNanos() / 1e6;
                decode[i] = p.decodeNanos() / 1e6;
                used = p.result().used().value();
                scored += p.result().scored();
            }
            report("inference (featurize + ORT)", infer);
            report("decode (" + used + ", top " + topN + ")", decode);
            System.out.printf(Locale.ROOT, "%d queries, %d products scored per query%n", n, scored / n);
        }
    }

    private static void report(String what, double[] ms) {
        double[] s = ms.clone();
        Arrays.sort(s);
        double mean = Arrays.stream(s).average().orElse(0);
        System.out.printf(Locale.ROOT, "%-34s mean %.3f ms  p50 %.3f  p95 %.3f  p99 %.3f%n", what, mean, s[s.length / 2],
            s[(int) (s.length * 0.95)], s[(int) (s.length * 0.99)]);
    }
}
