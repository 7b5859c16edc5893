package org.opensearch.mach.bench;

import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.MachModel;
import org.opensearch.mach.model.ProductIndex;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * Decoding one query's [R, B] probabilities into the top-N products, exact and candidates, at K
 * products with random buckets (as synthetic labels get from the product hash). Probabilities: the
 * network of {@code bundle} on the {@code queries} texts (its R and B), or, without a bundle,
 * softmaxed Gaussian logits of shape [repetitions, buckets].
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
@Fork(value = 1, jvmArgsAppend = { "-Xmx4g", "--enable-native-access=ALL-UNNAMED" })
public class DecodeBench {
    @Param({ "54667", "1000000" })
    public int products;
    @Param({ "exact", "candidates" })
    public String decoding;
    /** buckets_per_repetition */
    @Param("10")
    public int m;
    /** min_repetitions (candidates only) */
    @Param("1")
    public int f;
    @Param("100")
    public int topN;
    /** a bundle directory, or "" for synthetic probabilities */
    @Param("")
    public String bundle;
    @Param("../shared/data/homedepot/judgments-dev.tsv")
    public String queries;
    @Param("16")
    public int repetitions;
    @Param("4096")
    public int buckets;

    private ProductIndex index;
    private float[][][] probs;
    private Decoder.Options options;
    private int next;

    @Setup
    public void setup() throws Exception {
        if (bundle.isEmpty()) {
            probs = BenchData.syntheticProbabilities(64, repetitions, buckets, 1);
        } else {
            try (MachModel model = BundleLoader.load("bench", BenchData.existing("bundle", bundle), false)) {
                repetitions = model.card().repetitions;
                buckets = model.card().buckets;
                probs = BenchData.modelProbabilities(model, BenchData.queries(queries, 300));
            }
        }
        index = BenchData.randomIndex(repetitions, buckets, products, 7);
        options = new Decoder.Options(topN, Decoder.Strategy.parse(decoding), m, f, Decoder.ScoreMode.MEAN);
        long scored = 0;
        for (float[][] p : probs) scored += Decoder.decode(index, p, options).scored();
        System.out.printf(Locale.ROOT, "%nR=%d B=%d K=%d %s m=%d f=%d: %d products scored per query (%d probability rows from %s)%n",
            repetitions, buckets, products, decoding, m, f, scored / probs.length, probs.length, bundle.isEmpty() ? "synthetic logits" : Path.of(bundle));
    }

    @Benchmark
    public Decoder.Result decode() {
        return Decoder.decode(index, probs[next++ % probs.length], options);
    }
}
