package org.opensearch.mach.bench;

import org.opensearch.common.io.stream.BytesStreamOutput;
import org.opensearch.core.common.bytes.BytesReference;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.MachModel;
import org.opensearch.mach.query.BucketTable;
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

import java.io.IOException;
import java.util.concurrent.TimeUnit;

/**
 * The per-query fixed cost of index-side MACH outside the network, part by part: the coordinator
 * building the {@link BucketTable} from [R][B] probabilities ({@code build}), serializing it
 * ({@code write}), the shard deserializing it ({@code read}) and expanding it into the dense
 * float[R * B] lookup ({@code dense}). Probabilities: softmaxed Gaussian logits (BenchData), or with
 * {@code bundle} its network's output on the {@code queries} texts (its R and B).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
@Fork(value = 1, jvmArgsAppend = { "-Xmx2g" })
public class BucketTableBench {
    @Param("16")
    public int repetitions;
    @Param("4096")
    public int buckets;
    /** scored_buckets (the default is 256) */
    @Param("256")
    public int scored;
    /** rest_buckets: "quantized" (the default) or "residual" */
    @Param({ "quantized", "residual" })
    public String rest;
    /** a bundle directory, or "" for synthetic probabilities */
    @Param("")
    public String bundle;
    @Param("../shared/data/homedepot/judgments-dev.tsv")
    public String queries;

    private float[][][] probs;
    private BucketTable[] tables;
    private BytesReference[] wire;
    private int next;

    @Setup
    public void setup() throws Exception {
        if (bundle.isEmpty()) {
            probs = BenchData.syntheticProbabilities(64, repetitions, buckets, 1);
        } else {
            try (MachModel model = BundleLoader.load("bench", BenchData.existing("bundle", bundle), false)) {
                probs = BenchData.modelProbabilities(model, BenchData.queries(queries, 64));
            }
        }
        tables = new BucketTable[probs.length];
        wire = new BytesReference[probs.length];
        for (int q = 0; q < probs.length; q++) {
            tables[q] = BucketTable.of(probs[q], scored, quantized());
            wire[q] = serialize(tables[q]);
        }
        System.out.println("wire bytes per table: " + wire[0].length());
    }

    private boolean quantized() {
        return rest.equals("quantized");
    }

    private int nextQuery() {
        return next = (next + 1) % probs.length;
    }

    private static BytesReference serialize(BucketTable t) throws IOException {
        try (BytesStreamOutput out = new BytesStreamOutput()) {
            t.writeTo(out);
            return out.bytes();
        }
    }

    @Benchmark
    public BucketTable build() {
        return BucketTable.of(probs[nextQuery()], scored, quantized());
    }

    @Benchmark
    public BytesReference write() throws IOException {
        return serialize(tables[nextQuery()]);
    }

    @Benchmark
    public BucketTable read() throws IOException {
        return new BucketTable(wire[nextQuery()].streamInput());
    }

    /** read + dense: a fresh copy each time, as each shard query gets one */
    @Benchmark
    public float[] readDense() throws IOException {
        return new BucketTable(wire[nextQuery()].streamInput()).dense();
    }
}
