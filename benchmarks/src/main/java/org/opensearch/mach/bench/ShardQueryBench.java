package org.opensearch.mach.bench;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.apache.lucene.index.DirectoryReader;
import org.apache.lucene.index.Term;
import org.apache.lucene.search.BooleanClause;
import org.apache.lucene.search.BooleanQuery;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.TermQuery;
import org.apache.lucene.search.TopDocs;
import org.apache.lucene.store.Directory;
import org.apache.lucene.store.FSDirectory;
import org.opensearch.mach.query.MachProductsQuery;
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

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * One shard's query, top 10, in Lucene alone (no OpenSearch node): a catalog TSV (product_id, title)
 * indexed as the node indexes it (product_id keyword, title with the english analyzer; kept under
 * {@code benchmarks/target/shard-index/} and reused), then per query text: {@code bm25} (the match
 * query on title: one SHOULD term query per analyzed token), {@code mach} (MachProductsQuery over 100
 * product ids with scores, what the coordinator sends after decoding), and {@code filter} /
 * {@code boost} / {@code hybrid} in the shapes the mach query rewrites to (bm25 must + mach filter;
 * bm25 must + mach should; either should). The 100 ids are random catalog products with descending
 * scores: the query's cost does not depend on which.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
@Fork(value = 1, jvmArgsAppend = { "-Xmx2g" })
public class ShardQueryBench {
    @Param("../shared/data/homedepot/products.tsv")
    public String catalog;
    @Param("../shared/data/homedepot/judgments-dev.tsv")
    public String queries;
    @Param({ "bm25", "mach", "filter", "boost", "hybrid" })
    public String method;
    @Param("100")
    public int topN;

    private Directory directory;
    private DirectoryReader reader;
    private IndexSearcher searcher;
    private Query[] compiled;
    private int next;

    @Setup
    public void setup() throws IOException {
        Path file = BenchData.existing("catalog", catalog).toAbsolutePath().normalize();
        Path dir = Path.of("benchmarks/target/shard-index", Integer.toHexString(file.hashCode()) + "-" + Files.size(file));
        List<String> ids = BenchData.catalogIndex(file, dir, (id, doc) -> {});
        directory = FSDirectory.open(dir);
        reader = DirectoryReader.open(directory);
        searcher = new IndexSearcher(reader);
        searcher.setQueryCache(null); // every request is new to the shard, as with the node's per-query mach ids
        List<String> texts = BenchData.queries(queries, 100_000);
        Random rnd = new Random(3);
        compiled = new Query[texts.size()];
        try (Analyzer english = new EnglishAnalyzer()) {
            for (int i = 0; i < compiled.length; i++) {
                compiled[i] = query(match(english, texts.get(i)), machProducts(ids, rnd));
            }
        }
        System.out.printf(Locale.ROOT, "%n%s: %d products, %d queries, %s%n", file, reader.numDocs(), compiled.length, method);
    }

    private Query query(Query match, Query mach) {
        return switch (method) {
            case "bm25" -> match;
            case "mach" -> mach;
            case "filter" -> new BooleanQuery.Builder().add(match, BooleanClause.Occur.MUST).add(mach, BooleanClause.Occur.FILTER).build();
            case "boost" -> new BooleanQuery.Builder().add(match, BooleanClause.Occur.MUST).add(mach, BooleanClause.Occur.SHOULD).build();
            case "hybrid" -> new BooleanQuery.Builder().add(match, BooleanClause.Occur.SHOULD)
                .add(mach, BooleanClause.Occur.SHOULD)
                .setMinimumNumberShouldMatch(1)
                .build();
            default -> throw new IllegalArgumentException("-p method=" + method + ": use bm25, mach, filter, boost or hybrid");
        };
    }

    /** What the match query on title does: the analyzed tokens, any of them. */
    static Query match(Analyzer analyzer, String text) throws IOException {
        BooleanQuery.Builder b = new BooleanQuery.Builder();
        try (TokenStream ts = analyzer.tokenStream("title", text)) {
            CharTermAttribute term = ts.addAttribute(CharTermAttribute.class);
            ts.reset();
            while (ts.incrementToken()) b.add(new TermQuery(new Term("title", term.toString())), BooleanClause.Occur.SHOULD);
            ts.end();
        }
        return b.build();
    }

    private MachProductsQuery machProducts(List<String> ids, Random rnd) {
        String[] chosen = rnd.ints(0, ids.size()).distinct().limit(Math.min(topN, ids.size())).mapToObj(ids::get).toArray(String[]::new);
        float[] scores = new float[chosen.length];
        for (int i = 0; i < scores.length; i++) scores[i] = 0.5f / (i + 1);
        return new MachProductsQuery("product_id", chosen, scores);
    }

    @TearDown
    public void close() throws IOException {
        reader.close();
        directory.close();
    }

    @Benchmark
    public TopDocs search() throws IOException {
        return searcher.search(compiled[next++ % compiled.length], 10);
    }
}
