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
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
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
    /**
     * "random": K products with random buckets; "bundle": the bundle's own products (their real buckets,
     * which a trained network's probabilities agree with) followed by random products up to K.
     */
    @Param("random")
    public String index;

    private ProductIndex productIndex;
    private float[][][] probs;
    private Decoder.Options options;
    private int next;

    @Setup
    public void setup() throws Exception {
        ProductIndex own = null;
        if (bundle.isEmpty()) {
            probs = BenchData.syntheticProbabilities(64, repetitions, buckets, 1);
        } else {
            try (MachModel model = BundleLoader.load("bench", BenchData.existing("bundle", bundle), false)) {
                repetitions = model.card().repetitions;
                buckets = model.card().buckets;
                probs = BenchData.modelProbabilities(model, BenchData.queries(queries, 300));
                own = model.index();
            }
        }
        this.productIndex = switch (index) {
            case "random" -> BenchData.randomIndex(repetitions, buckets, products, 7);
            case "bundle" -> {
                if (own == null) throw new IllegalArgumentException("index=bundle needs a bundle");
                products = Math.max(products, own.products());
                yield BenchData.paddedIndex(own, products, 7);
            }
            default -> throw new IllegalArgumentException("index must be random or bundle, got " + index);
        };
        options = new Decoder.Options(topN, Decoder.Strategy.parse(decoding), m, f, Decoder.ScoreMode.MEAN);
        long scored = 0;
        double found = 0, foundAllCandidates = 0;
        Decoder.Options exact = new Decoder.Options(topN, Decoder.Strategy.EXACT, m, 1, Decoder.ScoreMode.MEAN);
        for (float[][] p : probs) {
            Decoder.Result result = Decoder.decode(productIndex, p, options);
            scored += result.scored();
            Set<Integer> truth = ids(Decoder.decode(productIndex, p, exact).products());
            found += overlap(result.products(), truth);
            foundAllCandidates += overlap(allCandidatesTopN(p), truth);
        }
        // fidelity: how much of the exact top-N the decoder returns, and what scoring every candidate would return
        System.out.printf(Locale.ROOT,
            "%nR=%d B=%d K=%d (%s index) %s m=%d f=%d: %d products scored per query; recall of the exact top-%d %.4f (every candidate scored: %.4f) (%d probability rows from %s)%n",
            repetitions, buckets, products, index, decoding, m, f, scored / probs.length, topN, found / probs.length, foundAllCandidates / probs.length,
            probs.length, bundle.isEmpty() ? "synthetic logits" : Path.of(bundle));
    }

    private static Set<Integer> ids(int[] products) {
        Set<Integer> set = new HashSet<>();
        for (int k : products) set.add(k);
        return set;
    }

    private double overlap(int[] products, Set<Integer> truth) {
        int hits = 0;
        for (int k : products) if (truth.contains(k)) hits++;
        return truth.isEmpty() ? 1 : (double) hits / truth.size();
    }

    /** Reference for the fidelity line: the exact top-N among every product in >= f repetitions' top-m buckets. */
    private int[] allCandidatesTopN(float[][] p) {
        Map<Integer, Integer> seen = new HashMap<>();
        for (int r = 0; r < repetitions; r++) {
            for (int b : Decoder.topBuckets(p[r], m)) {
                for (int i = 0; i < productIndex.bucketSize(r, b); i++) seen.merge(productIndex.member(r, b, i), 1, Integer::sum);
            }
        }
        return seen.entrySet().stream().filter(e -> e.getValue() >= f).map(Map.Entry::getKey)
            .sorted(Comparator.comparingDouble((Integer k) -> -productIndex.mean(p, k)).thenComparing(k -> k))
            .limit(topN).mapToInt(Integer::intValue).toArray();
    }

    @Benchmark
    public Decoder.Result decode() {
        return Decoder.decode(productIndex, probs[next++ % probs.length], options);
    }
}
