package org.opensearch.mach.model;

import java.lang.management.ManagementFactory;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Heap of reading a bundle's labels, outside OpenSearch (a measurement, not a test): {@code check} is
 * registration's streamed validation ({@link LabelsFile#check}), {@code catalog} the catalog load
 * ({@link ProductCatalog#read}, what registration called before the streamed check). Prints the
 * bytes the reading thread allocated, the heap still held after a full GC with the result alive, and
 * the time. Run it with a fixed heap to find the smallest that the read fits in:
 * <pre>java -Xmx128m -cp plugin/target/classes:plugin/target/test-classes:$(cat plugin/target/test-classpath.txt) \
 *     org.opensearch.mach.model.LabelsMemory /work/models/synth/k5m/bundle check</pre>
 * (classpath: {@code ./mvnw -o -q -pl plugin test-compile dependency:build-classpath -Dmdep.outputFile=target/test-classpath.txt}).
 * Reflection keeps it runnable against builds without {@link LabelsFile}.
 */
public final class LabelsMemory {
    private LabelsMemory() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2 || !(args[1].equals("check") || args[1].equals("catalog"))) {
            System.err.println("usage: LabelsMemory BUNDLE_DIR check|catalog");
            System.exit(2);
        }
        Path dir = Path.of(args[0]);
        ModelCard card = ModelCard.parse(Files.readAllBytes(dir.resolve(ModelCard.CARD_FILE)));
        Path labels = dir.resolve(card.labelsFile);
        Method read = args[1].equals("check")
            ? Class.forName("org.opensearch.mach.model.LabelsFile").getDeclaredMethod("check", Path.class, ModelCard.class)
            : ProductCatalog.class.getDeclaredMethod("read", Path.class, ModelCard.class);
        read.setAccessible(true);
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long heap0 = heapAfterGc();
        long allocated0 = threads.getCurrentThreadAllocatedBytes();
        long t0 = System.nanoTime();
        Object result = read.invoke(null, labels, card);
        long millis = (System.nanoTime() - t0) / 1_000_000;
        long allocated = threads.getCurrentThreadAllocatedBytes() - allocated0;
        long held = heapAfterGc() - heap0;
        System.out.printf(
            Locale.ROOT,
            "%s K=%d labels=%.1f MB: allocated %.1f MB, held after GC %.1f MB, %d ms (max heap %d MB)%n",
            args[1], card.labelCount, Files.size(labels) / 1e6, allocated / 1e6, held / 1e6, millis,
            Runtime.getRuntime().maxMemory() >> 20
        );
        if (result == null) throw new AssertionError("no result");
    }

    private static long heapAfterGc() {
        for (int i = 0; i < 3; i++) System.gc();
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }
}
