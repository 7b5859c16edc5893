package org.opensearch.mach.bench;

import org.opensearch.action.support.PlainActionFuture;
import org.opensearch.common.settings.Settings;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.mach.inference.PredictionCache;
import org.opensearch.mach.model.ModelRegistry;
import org.opensearch.threadpool.FixedExecutorBuilder;
import org.opensearch.threadpool.ThreadPool;
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
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The coordinator's inference path under concurrency, as the plugin runs it: {@code clients} JMH
 * threads each send one query at a time (closed loop) through {@link MachInferenceService#predict}
 * (no result cache) onto an inference pool of {@code workers} threads, with dynamic batching off
 * ({@code batchSize} 1) or on (8). Per-query latency (SampleTime); throughput = clients / mean latency.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
@Threads(4)
@Fork(value = 1, jvmArgsAppend = { "-Xmx4g", "--enable-native-access=ALL-UNNAMED" })
public class BatchingBench {
    @Param("plugin/src/test/resources/fixtures/tiny/bundle")
    public String bundle;
    @Param("../shared/data/homedepot/judgments-dev.tsv")
    public String queries;
    @Param({ "1", "8" })
    public int batchSize;
    @Param("2")
    public int workers;

    private ThreadPool threadPool;
    private ModelRegistry registry;
    private MachInferenceService service;
    private List<String> texts;
    private final AtomicInteger next = new AtomicInteger();
    private final Decoder.Options options = new Decoder.Options(100, Decoder.Strategy.AUTO, 10, 1, Decoder.ScoreMode.MEAN);

    @Setup
    public void setup() throws Exception {
        Path models = Files.createTempDirectory("mach-bench-models");
        Files.createSymbolicLink(models.resolve("bench"), BenchData.existing("bundle", bundle).toAbsolutePath());
        threadPool = new ThreadPool(
            Settings.builder().put("node.name", "bench").build(),
            new FixedExecutorBuilder(Settings.EMPTY, MachInferenceService.THREAD_POOL, workers, 1000, "mach")
        );
        registry = new ModelRegistry(models, false);
        registry.get("bench");
        service = new MachInferenceService(registry, threadPool, new PredictionCache(0), workers, batchSize);
        texts = BenchData.queries(queries, 100_000);
    }

    @TearDown
    public void close() {
        registry.close();
        ThreadPool.terminate(threadPool, 10, TimeUnit.SECONDS);
    }

    @Benchmark
    public Prediction predict() {
        PlainActionFuture<Prediction> f = PlainActionFuture.newFuture();
        service.predict("bench", texts.get(Math.floorMod(next.getAndIncrement(), texts.size())), options, f);
        return f.actionGet();
    }
}
