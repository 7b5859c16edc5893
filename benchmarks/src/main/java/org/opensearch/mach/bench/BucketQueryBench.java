package org.opensearch.mach.bench;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.apache.lucene.index.DirectoryReader;
import org.apache.lucene.search.BooleanClause;
import org.apache.lucene.search.BooleanQuery;
import org.apache.lucene.search.BoostQuery;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.TopDocs;
import org.apache.lucene.store.Directory;
import org.apache.lucene.store.FSDirectory;
import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.mach.index.BucketFields;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInference;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.MachModel;
import org.opensearch.mach.query.BucketScoring;
import org.opensearch.mach.query.BucketTable;
import org.opensearch.mach.query.MachBucketsQuery;
import org.opensearch.mach.query.MachOptions;
import org.opensearch.mach.query.MachScoreQuery;
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

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * One shard's index-side query (bucket_field), top 10, in Lucene alone: a catalog TSV indexed as the
 * node indexes it with a {@code mach_buckets} field (product_id keyword, title english, the R codes
 * of the bundle's hash family; one segment, kept under {@code benchmarks/target/bucket-index/}), and
 * per query text the bucket table the coordinator would send: the bundle's network run once per text
 * in the setup, the query defaults (scored_buckets 256, rest quantized, mean scores, m 10, f 1,
 * mach_weight 10). Methods, in the shapes {@code MachQueryBuilder.bucketsQuery} rewrites to:
 * {@code bm25} (the match on title), {@code mach} (MachBucketsQuery alone), {@code filter} (match must
 * + candidates filter), {@code boost} (MachScoreQuery over the match), {@code hybrid} (MachScoreQuery
 * over match should + candidates should, boost 0, one of them). Texts the network cannot read are left out.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
@Fork(value = 1, jvmArgsAppend = { "-Xmx2g" })
public class BucketQueryBench {
    static final String FIELD = "buckets";

    @Param("../shared/data/homedepot/products.tsv")
    public String catalog;
    @Param("../shared/data/homedepot/judgments-dev.tsv")
    public String queries;
    /** a bundle whose product hash is a hash family (its network makes the tables) */
    @Param("/work/models/hd-enc")
    public String bundle;
    @Param({ "bm25", "mach", "filter", "boost", "hybrid" })
    public String method;
    /** the query's scored_buckets; 0: not given (the plugin's default: the whole table up to R x B = 65,536) */
    @Param("0")
    public int scoredBuckets;
    @Param("" + MachOptions.DEFAULT_BUCKETS_PER_REPETITION)
    public int m;
    /** min_repetitions f: a candidate is in the top-m buckets of at least f repetitions */
    @Param("1")
    public int f;
    /** at most this many distinct query texts (the network runs once on each in the setup) */
    @Param("200")
    public int maxQueries;

    private Directory directory;
    private DirectoryReader reader;
    private IndexSearcher searcher;
    private Query[] compiled;
    private int next;

    @Setup
    public void setup() throws Exception {
        List<String> texts = BenchData.queries(queries, maxQueries);
        List<float[][]> tables = new ArrayList<>();
        List<String> readable = new ArrayList<>();
        HashFamily family;
        try (MachModel model = BundleLoader.load("bench", BenchData.existing("bundle", bundle), false)) {
            family = model.card().hashFamily;
            if (family == null) throw new IllegalArgumentException("-p bundle=" + bundle + ": its product hash is not a hash family");
            for (String t : texts) {
                if (model.network().encode(t).isEmpty()) continue;
                readable.add(t);
                tables.add(MachInference.probabilities(model, t));
            }
        }
        Path file = BenchData.existing("catalog", catalog).toAbsolutePath().normalize();
        Path dir = Path.of("benchmarks/target/bucket-index", Integer.toHexString(file.hashCode()) + "-" + Files.size(file) + "-" + family.name());
        int products = BenchData.catalogIndex(file, dir, (id, doc) -> BucketFields.fields(FIELD, family.codesOf(id)).forEach(doc::add)).size();
        directory = FSDirectory.open(dir);
        reader = DirectoryReader.open(directory);
        searcher = new IndexSearcher(reader);
        searcher.setQueryCache(null); // every table is new to the shard
        compiled = new Query[readable.size()];
        MachOptions options = new MachOptions().bucketsPerRepetition(m);
        if (scoredBuckets > 0) options.scoredBuckets(scoredBuckets);
        try (Analyzer english = new EnglishAnalyzer()) {
            for (int i = 0; i < compiled.length; i++) {
                BucketTable table = BucketTable.of(tables.get(i), options.scoredBucketsFor(family.repetitions(), family.buckets()), true);
                BucketScoring scoring = new BucketScoring(family.name(), table, Decoder.ScoreMode.MEAN, 1f, 0f);
                compiled[i] = query(ShardQueryBench.match(english, readable.get(i)), scoring);
            }
        }
        System.out.printf(Locale.ROOT, "%n%s: %d products (%s), %d queries, %s%n", file, products, family, compiled.length, method);
    }

    private Query query(Query match, BucketScoring scoring) {
        float w = MachOptions.DEFAULT_MACH_WEIGHT;
        MachBucketsQuery candidates = new MachBucketsQuery(FIELD, scoring, m, f);
        return switch (method) {
            case "bm25" -> match;
            case "mach" -> candidates;
            case "filter" -> new BooleanQuery.Builder().add(match, BooleanClause.Occur.MUST).add(candidates, BooleanClause.Occur.FILTER).build();
            case "boost" -> new MachScoreQuery(match, FIELD, scoring, w);
            case "hybrid" -> new MachScoreQuery(
                new BooleanQuery.Builder().add(match, BooleanClause.Occur.SHOULD)
                    .add(new BoostQuery(candidates, 0f), BooleanClause.Occur.SHOULD)
                    .setMinimumNumberShouldMatch(1)
                    .build(),
                FIELD,
                scoring,
                w
            );
            default -> throw new IllegalArgumentException("-p method=" + method + ": use bm25, mach, filter, boost or hybrid");
        };
    }

    @TearDown
    public void close() throws Exception {
        reader.close();
        directory.close();
    }

    @Benchmark
    public TopDocs search() throws Exception {
        return searcher.search(compiled[next++ % compiled.length], 10);
    }
}
