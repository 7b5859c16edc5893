package org.opensearch.mach.bench;

import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.apache.lucene.document.Document;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.StringField;
import org.apache.lucene.document.TextField;
import org.apache.lucene.index.IndexWriter;
import org.apache.lucene.index.IndexWriterConfig;
import org.apache.lucene.store.Directory;
import org.apache.lucene.store.FSDirectory;
import org.opensearch.mach.inference.MachInference;
import org.opensearch.mach.model.MachModel;
import org.opensearch.mach.model.ProductIndex;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.function.BiConsumer;
import java.util.Set;

/** Inputs shared by the benchmarks: query texts, random product indexes, bucket probabilities. */
final class BenchData {
    private BenchData() {}

    /** An existing file or folder, or a one-line error naming the parameter. */
    static Path existing(String param, String path) {
        Path p = Path.of(path);
        if (!Files.exists(p)) throw new IllegalArgumentException("-p " + param + "=" + path + ": no such file (run from the repository root)");
        return p;
    }

    /**
     * The product ids of a catalog TSV (header, then id TAB title), in file order; indexes it into
     * {@code dir} first unless a complete index is there (a {@code complete} marker): product_id
     * (keyword) and title (english analyzer), plus what {@code extra} adds per product, force-merged
     * into one segment like the bench node's index after a refresh and merge.
     */
    static List<String> catalogIndex(Path catalog, Path dir, BiConsumer<String, Document> extra) throws IOException {
        Path done = dir.resolve("complete");
        boolean build = !Files.exists(done);
        if (build) {
            Files.createDirectories(dir);
            try (var files = Files.list(dir)) {
                for (Path p : files.toList()) Files.delete(p);
            }
        }
        List<String> ids = new ArrayList<>();
        try (
            BufferedReader in = Files.newBufferedReader(catalog, StandardCharsets.UTF_8);
            Directory d = build ? FSDirectory.open(dir) : null;
            IndexWriter w = build ? new IndexWriter(d, new IndexWriterConfig(new EnglishAnalyzer()).setRAMBufferSizeMB(256)) : null
        ) {
            in.readLine();
            for (String line; (line = in.readLine()) != null;) {
                int tab = line.indexOf('\t');
                if (tab < 0) continue;
                String id = line.substring(0, tab);
                ids.add(id);
                if (w == null) continue;
                Document doc = new Document();
                doc.add(new StringField("product_id", id, Field.Store.NO));
                doc.add(new TextField("title", line.substring(tab + 1), Field.Store.NO));
                extra.accept(id, doc);
                w.addDocument(doc);
                if (ids.size() % 200_000 == 0) System.out.printf(Locale.ROOT, "indexed %,d products%n", ids.size());
            }
            if (w != null) w.forceMerge(1);
        }
        if (build) Files.writeString(done, Integer.toString(ids.size()));
        return ids;
    }

    /** The distinct texts of the first column of a TSV with a header (e.g. judgments-dev.tsv), at most {@code max}. */
    static List<String> queries(String path, int max) {
        try {
            List<String> lines = Files.readAllLines(existing("queries", path), StandardCharsets.UTF_8);
            Set<String> unique = new LinkedHashSet<>();
            for (String l : lines.subList(1, lines.size())) {
                if (!l.isBlank() && unique.size() < max) unique.add(l.split("\t", -1)[0]);
            }
            if (unique.isEmpty()) throw new IllegalArgumentException("-p queries=" + path + ": no queries");
            return new ArrayList<>(unique);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** K products with uniformly random buckets: what the card's product hash gives synthetic labels. */
    static ProductIndex randomIndex(int repetitions, int buckets, int products, long seed) {
        Random rnd = new Random(seed);
        int[][] bucketOf = new int[repetitions][products];
        for (int[] row : bucketOf) {
            for (int k = 0; k < products; k++) row[k] = rnd.nextInt(buckets);
        }
        return new ProductIndex(bucketOf, buckets);
    }

    /** The products of {@code own} (their buckets) followed by products with random buckets, K in all. */
    static ProductIndex paddedIndex(ProductIndex own, int products, long seed) {
        Random rnd = new Random(seed);
        int R = own.repetitions();
        int[][] bucketOf = new int[R][products];
        for (int r = 0; r < R; r++) {
            for (int k = 0; k < products; k++) bucketOf[r][k] = k < own.products() ? own.bucket(r, k) : rnd.nextInt(own.buckets());
        }
        return new ProductIndex(bucketOf, own.buckets());
    }

    /** Softmax rows of Gaussian logits (sd 2): a stand-in for a network's output when no bundle is given. */
    static float[][][] syntheticProbabilities(int queries, int repetitions, int buckets, long seed) {
        Random rnd = new Random(seed);
        float[][][] probs = new float[queries][repetitions][buckets];
        for (float[][] q : probs) {
            for (float[] row : q) {
                double sum = 0;
                for (int b = 0; b < buckets; b++) sum += row[b] = (float) Math.exp(rnd.nextGaussian() * 2);
                for (int b = 0; b < buckets; b++) row[b] /= sum;
            }
        }
        return probs;
    }

    /** The network's probabilities for each text it can read (any other text is never decoded). */
    static float[][][] modelProbabilities(MachModel model, List<String> texts) throws Exception {
        List<float[][]> out = new ArrayList<>();
        for (String t : texts) {
            if (model.network().encode(t).isEmpty() == false) out.add(MachInference.probabilities(model, t));
        }
        return out.toArray(new float[0][][]);
    }
}
