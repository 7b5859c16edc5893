package org.opensearch.mach.bench;

import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.EncoderNetwork;
import org.opensearch.mach.inference.MachInference;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.mach.inference.QueryInput;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.MachModel;
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
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * The coordinator's per-query work stage by stage, single-threaded, for an encoder bundle (format 2)
 * and, as the baseline in the same run, a hashed one (format 1). Query texts: the {@code queries}
 * TSV's distinct first-column texts in turn; each stage after the first reads inputs computed in
 * setup, so it is timed alone:
 * <ul>
 * <li>{@code tokenize}: text to network input (format 2: WordPiece ids; format 1: the hashed features)</li>
 * <li>{@code encoder}: format 2: the sentence encoder + mean pooling + L2 norm on token ids (format 1
 * has no encoder: a no-op, ignore it)</li>
 * <li>{@code heads}: format 2: the MACH heads on the embedding; format 1: the whole hashed network on
 * the feature ids</li>
 * <li>{@code network}: tokenize + encoder + heads, the [R, B] probabilities</li>
 * <li>{@code decode}: probabilities to the top 100 products with the plugin's defaults (auto, m 10)
 * at the bundle's K</li>
 * <li>{@code predict}: all of it plus the labels: the coordinator's whole uncached work</li>
 * </ul>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
@Fork(value = 1, jvmArgsAppend = { "-Xmx4g", "--enable-native-access=ALL-UNNAMED" })
public class EncoderBench {
    /** texts whose probabilities are kept for {@code decode} ([R][B] floats each) */
    private static final int DECODED_TEXTS = 200;

    @Param("plugin/src/test/resources/fixtures/tiny/bundle")
    public String bundle;
    @Param("../shared/data/homedepot/judgments-dev.tsv")
    public String queries;

    private MachModel model;
    /** null for a format 1 bundle */
    private EncoderNetwork encoder;
    private List<String> texts;
    private List<QueryInput> inputs;
    private List<float[][]> embeddings;
    private List<float[][]> probabilities;
    private Decoder.Options options;
    private int next;

    @Setup
    public void setup() throws Exception {
        model = BundleLoader.load("bench", BenchData.existing("bundle", bundle), false);
        encoder = model.network() instanceof EncoderNetwork e ? e : null;
        texts = new ArrayList<>();
        inputs = new ArrayList<>();
        embeddings = new ArrayList<>();
        probabilities = new ArrayList<>();
        for (String t : BenchData.queries(queries, 100_000)) {
            QueryInput in = model.network().encode(t);
            if (in.isEmpty()) continue; // nothing to run: the plugin answers no products without the network
            texts.add(t);
            inputs.add(in);
            if (encoder != null) embeddings.add(encoder.embed(List.of(in)));
            if (probabilities.size() < DECODED_TEXTS) probabilities.add(MachInference.probabilities(model, t));
        }
        options = new Decoder.Options(100, Decoder.Strategy.AUTO, 10, 1, Decoder.ScoreMode.MEAN);
        System.out.printf(Locale.ROOT, "%n%s: format %d, R=%d B=%d K=%d; %d query texts%n", bundle, model.card().formatVersion,
            model.card().repetitions, model.card().buckets, model.productCount(), texts.size());
    }

    @TearDown
    public void close() {
        model.close();
    }

    private int nextIndex() {
        return next++ % texts.size();
    }

    @Benchmark
    public QueryInput tokenize() {
        return model.network().encode(texts.get(nextIndex()));
    }

    @Benchmark
    public Object encoder() throws Exception {
        int i = nextIndex();
        return encoder == null ? inputs.get(i) : encoder.embed(List.of(inputs.get(i)));
    }

    @Benchmark
    public float[][][] heads() throws Exception {
        int i = nextIndex();
        List<QueryInput> in = List.of(inputs.get(i));
        return encoder == null ? model.network().run(in) : encoder.heads(embeddings.get(i), in);
    }

    @Benchmark
    public float[][] network() throws Exception {
        return MachInference.probabilities(model, texts.get(nextIndex()));
    }

    @Benchmark
    public Decoder.Result decode() {
        return Decoder.decode(model.index(), probabilities.get(next++ % probabilities.size()), options);
    }

    @Benchmark
    public Prediction predict() {
        return MachInferenceService.predict(model, texts.get(nextIndex()), options);
    }
}
