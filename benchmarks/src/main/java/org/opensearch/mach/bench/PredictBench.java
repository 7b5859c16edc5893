package org.opensearch.mach.bench;

import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInference;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.mach.inference.QueryInput;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.MachModel;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * The coordinator's per-query work on a real bundle, one query text after another (the
 * {@code queries} TSV's distinct first-column texts): {@code featurize} (normalize, tokenize, hash
 * the features), {@code inference} (featurize + ONNX Runtime: the [R, B] probabilities) and
 * {@code predict} (inference + decoding with the plugin's defaults: top 100, decoding auto, m = 10),
 * all single-threaded. ONNX time does not depend on K; decoding does (see DecodeBench).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
@Fork(value = 1, jvmArgsAppend = { "-Xmx4g", "--enable-native-access=ALL-UNNAMED" })
public class PredictBench {
    @Param("plugin/src/test/resources/fixtures/tiny/bundle")
    public String bundle;
    @Param("../shared/data/homedepot/judgments-dev.tsv")
    public String queries;
    /**
     * Megabytes of other memory touched before each call, outside the timing (0: none): on a node the shard's search runs
     * between two queries' networks and takes the CPU cache that back-to-back calls keep the weights in.
     */
    @Param("0")
    public int evictMegabytes;

    /** ONNX Runtime threads per call (the node's {@code mach.inference.intra_op_threads}). */
    @Param("1")
    public int intraOpThreads;

    private byte[] evict;
    private MachModel model;
    private List<String> texts;
    private Decoder.Options options;
    private int next;

    @Setup
    public void setup() throws Exception {
        model = BundleLoader.load("bench", BenchData.existing("bundle", bundle), false, intraOpThreads);
        texts = BenchData.queries(queries, 100_000);
        options = new Decoder.Options(100, Decoder.Strategy.AUTO, 10, 1, Decoder.ScoreMode.MEAN);
        System.out.printf(Locale.ROOT, "%n%s: R=%d B=%d H=%d K=%d; %d query texts%n", bundle, model.card().repetitions, model.card().buckets,
            model.card().raw.path("H").asInt(), model.productCount(), texts.size());
    }

    @Setup(Level.Invocation)
    public void touchOtherMemory() {
        if (evictMegabytes == 0) return;
        if (evict == null) evict = new byte[evictMegabytes << 20];
        for (int i = 0; i < evict.length; i += 64) evict[i]++;
    }

    @TearDown
    public void close() {
        model.close();
    }

    private String nextText() {
        return texts.get(next++ % texts.size());
    }

    /** The network's input for one text: hashed features (format 1) or WordPiece ids (format 2). */
    @Benchmark
    public QueryInput featurize() {
        return model.network().encode(nextText());
    }

    @Benchmark
    public float[][] inference() throws Exception {
        return MachInference.probabilities(model, nextText());
    }

    @Benchmark
    public Prediction predict() {
        return MachInferenceService.predict(model, nextText(), options);
    }
}
