package org.opensearch.mach.bench;

import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.MachModel;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Memory of one loaded bundle outside OpenSearch, measured as bench.sh measures the node: the heap
 * used after a full GC (labels, product index, tokenizer vocabulary) and the process RSS (ONNX Runtime's native memory;
 * run with a pre-touched fixed heap so that the heap adds nothing to the RSS delta):
 * <pre>java -Xms4g -Xmx4g -XX:+AlwaysPreTouch -cp "$(ls benchmarks/target/mach-benchmarks-*.jar):$(cat benchmarks/target/classpath.txt)" \
 *     org.opensearch.mach.bench.ModelMemory BUNDLE_DIR</pre>
 */
public final class ModelMemory {
    private ModelMemory() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: ModelMemory BUNDLE_DIR");
            System.exit(2);
        }
        Path bundle = BenchData.existing("bundle", args[0]);
        long heap0 = heapAfterGc(), rss0 = rss();
        long t0 = System.nanoTime();
        try (MachModel model = BundleLoader.load("memory", bundle, false)) {
            long loadMs = (System.nanoTime() - t0) / 1_000_000;
            long heapNetwork = heapAfterGc();
            long t1 = System.nanoTime();
            if (model.hasCatalog()) model.catalog(); // loaded on first use since issue 15: the figures below include it
            long catalogMs = (System.nanoTime() - t1) / 1_000_000;
            long heap1 = heapAfterGc(), rss1 = rss();
            long onnx = 0; // the network's weights: model.onnx, and an encoder bundle's encoder.onnx
            for (String f : model.card().networkFiles()) onnx += Files.size(bundle.resolve(f));
            double mb = 1e6; // decimal MB, as docs/performance.md
            System.out.printf(Locale.ROOT, "%s: R=%d B=%d K=%d, %s %.1f MB, load + validation %d ms%n", bundle, model.card().repetitions,
                model.card().buckets, model.productCount(), String.join(" + ", model.card().networkFiles()), onnx / mb, loadMs);
            System.out.printf(Locale.ROOT, "native (RSS delta) %.1f MB, heap (after GC) %.1f MB, total %.1f MB = %.2f x the ONNX files; native %.2f x%n",
                (rss1 - rss0) / mb, (heap1 - heap0) / mb, (rss1 - rss0 + heap1 - heap0) / mb, (double) (rss1 - rss0 + heap1 - heap0) / onnx,
                (double) (rss1 - rss0) / onnx);
            System.out.printf(Locale.ROOT, "catalog (labels + product index, loaded on first use) %.1f MB of the heap (estimate %.1f MB), read in %d ms%n",
                (heap1 - heapNetwork) / mb, model.catalogBytes() / mb, catalogMs);
        }
    }

    private static long heapAfterGc() {
        MemoryMXBean mem = ManagementFactory.getMemoryMXBean();
        for (int i = 0; i < 3; i++) System.gc();
        return mem.getHeapMemoryUsage().getUsed();
    }

    /** Resident set size from /proc (Linux). */
    private static long rss() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        }
        throw new IOException("no VmRSS in /proc/self/status");
    }
}
