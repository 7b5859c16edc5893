package org.opensearch.mach.query;

import org.opensearch.index.query.BoolQueryBuilder;
import org.opensearch.index.query.MatchQueryBuilder;
import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.mach.inference.Aggregation;
import org.opensearch.mach.inference.Decoder;

import java.io.IOException;
import java.util.List;
import java.util.Map;

/** The index-side mach query (bucket_field): parsing, the shard query builders' wire and JSON forms, the rewritten shapes. */
public class MachBucketsQueryBuilderTests extends MachQueryParsingTestCase {
    private static final HashFamily FAMILY = new HashFamily(3, 8, 1296122696L);

    private static String mach(String params) {
        return "{\"mach\": {\"model_id\": \"m\", \"query_text\": \"red sofa\", \"bucket_field\": \"buckets\"" + params + "}}";
    }

    static float[][] probabilities(int R, int B) {
        float[][] p = new float[R][B];
        for (float[] row : p) {
            double sum = 0;
            for (int b = 0; b < B; b++) sum += row[b] = random().nextFloat();
            for (int b = 0; b < B; b++) row[b] /= (float) sum;
        }
        return p;
    }

    static BucketScoring scoring(int s) {
        return new BucketScoring(FAMILY.name(), BucketTable.of(probabilities(FAMILY.repetitions(), FAMILY.buckets()), s), Decoder.ScoreMode.MEAN, 1f, 0f);
    }

    public void testParseAndRoundTrip() throws IOException {
        MachQueryBuilder q = (MachQueryBuilder) parse(mach(", \"scored_buckets\": 64, \"buckets_per_repetition\": 5, \"lexical\": {\"match\": {\"title\": \"x\"}}"));
        assertEquals("buckets", q.bucketField());
        assertNull(q.productIdField());
        assertEquals("at least m, at most B", 8, q.options().scoredBucketsFor(16, 8));
        assertEquals(64, q.options().scoredBucketsFor(16, 4096));
        assertRoundTrips(q);
        assertTrue("the rest is quantized by default", q.options().quantizeRest());
        MachQueryBuilder residual = (MachQueryBuilder) parse(mach(", \"rest_buckets\": \"residual\""));
        assertFalse(residual.options().quantizeRest());
        assertRoundTrips(residual);
        MachQueryBuilder d = (MachQueryBuilder) parse(mach(", \"buckets_per_repetition\": 300"));
        assertEquals("over 65,536 probabilities scored_buckets defaults to 256, raised to m", 300, d.options().scoredBucketsFor(32, 4096));
        MachOptions plain = ((MachQueryBuilder) parse(mach(""))).options();
        assertEquals("up to 65,536 probabilities the whole table", 4096, plain.scoredBucketsFor(16, 4096));
        assertEquals(4096, d.options().scoredBucketsFor(16, 4096));
        assertEquals(MachOptions.DEFAULT_SCORED_BUCKETS, plain.scoredBucketsFor(16, 4097));
        assertEquals(MachOptions.DEFAULT_SCORED_BUCKETS, plain.scoredBucketsFor(32, 4096));
        assertEquals("rest_buckets given: the top 256", MachOptions.DEFAULT_SCORED_BUCKETS, residual.options().scoredBucketsFor(16, 4096));
    }

    public void testStrictErrors() {
        assertTrue(parseError(mach(", \"product_id_field\": \"pid\"")).contains("not both"));
        for (String bad : new String[] { "\"256\"", "null", "1.5", "true" }) {
            String e = parseError(mach(", \"scored_buckets\": " + bad));
            assertTrue(e, e.contains("[scored_buckets] must be an integer"));
        }
        for (String bad : new String[] { "0", "-3", "99999999999" }) {
            String e = parseError(mach(", \"scored_buckets\": " + bad));
            assertTrue(e, e.contains("[scored_buckets] must be between 1 and"));
        }
        assertTrue(parseError("{\"mach\": {\"model_id\": \"m\", \"query_text\": \"x\", \"bucket_field\": 3}}").contains("[bucket_field] must be a string"));
        assertTrue(parseError("{\"mach\": {\"model_id\": \"m\", \"query_text\": \"x\", \"bucket_field\": \" \"}}").contains("[bucket_field] must not be empty"));
        String e = parseError("{\"mach\": {\"model_id\": \"m\", \"query_text\": \"x\", \"product_id_field\": \"p\", \"scored_buckets\": 5}}");
        assertTrue(e, e.contains("[scored_buckets] and [rest_buckets] apply only with [bucket_field]"));
        e = parseError(mach(", \"rest_buckets\": \"some\""));
        assertTrue(e, e.contains("[rest_buckets] must be [quantized] or [residual]"));
        e = parseError(mach(", \"rest_buckets\": 1"));
        assertTrue(e, e.contains("[rest_buckets] must be a string"));
    }

    public void testIndexBindingNeedsExactlyOneField() {
        Map<String, String> idx = Map.of("i", "m");
        assertNull(new IndexBinding("m", "pid", null, idx).requireOneField());
        assertEquals("b", new IndexBinding("m", null, "b", idx).requireOneField());
        String both = expectThrows(IllegalArgumentException.class, () -> new IndexBinding("m", "pid", "b", idx).requireOneField()).getMessage();
        assertTrue(both, both.contains("index.mach.product_id_field [pid]") && both.contains("index.mach.bucket_field [b]"));
        String neither = expectThrows(IllegalArgumentException.class, () -> new IndexBinding("m", null, null, idx).requireOneField()).getMessage();
        assertTrue(neither, neither.contains("[product_id_field] or [bucket_field]"));
    }

    public void testShardBuildersRoundTripAndParseStrictly() throws IOException {
        BucketScoring s = scoring(randomIntBetween(2, 8)).withMap(0.5f, 0.25f);
        MachBucketsQueryBuilder b = new MachBucketsQueryBuilder("buckets", s, 2, 2);
        b.boost(1.5f).queryName("n");
        assertRoundTrips(b);
        MachScoreQueryBuilder w = new MachScoreQueryBuilder(new MatchQueryBuilder("title", "x"), "buckets", s, 3f);
        assertRoundTrips(w);
        BucketScoring quantized = new BucketScoring(FAMILY.name(), BucketTable.of(probabilities(3, 8), 2, true), Decoder.ScoreMode.CALIBRATED, 1f, 0f);
        assertRoundTrips(new MachBucketsQueryBuilder("buckets", quantized, 2, 1));
        assertNotEquals(new MachBucketsQueryBuilder("buckets", quantized, 2, 1), new MachBucketsQueryBuilder("buckets", scoring(2), 2, 1));
        assertNotEquals(w, new MachScoreQueryBuilder(new MatchQueryBuilder("title", "x"), "buckets", s, 4f));
        assertNotEquals(b, new MachBucketsQueryBuilder("buckets", s, 1, 2));
        String table = "\"table\": {\"buckets\": 8, \"repetitions\": [" + "{\"buckets\": [1, 4], \"probabilities\": [0.5, 0.25], \"residual\": 0.04},".repeat(2)
            + "{\"buckets\": [1, 4], \"probabilities\": [0.5, 0.25], \"residual\": 0.04}]}";
        String ok = "{\"mach_buckets\": {\"field\": \"buckets\", \"hash_family\": \"" + FAMILY.name() + "\", \"buckets_per_repetition\": 2, " + table + "}}";
        MachBucketsQueryBuilder parsed = (MachBucketsQueryBuilder) parse(ok);
        assertEquals(0.04f, parsed.scoring().table().residual(2), 0f);
        assertTrue(parsed.scoring().table().isSent(0, 4));
        assertTrue(parseError(ok.replace("\"buckets_per_repetition\": 2", "\"buckets_per_repetition\": 3")).contains("fewer than [buckets_per_repetition] 3"));
        assertTrue(parseError(ok.replace("0.25", "1.25")).contains("probabilities must be in [0, 1]"));
        assertTrue(parseError(ok.replace("[1, 4]", "[4, 1]")).contains("ascending"));
        assertTrue(parseError(ok.replace("\"buckets\": 8", "\"buckets\": 9")).contains("does not fit hash family"));
        assertTrue(parseError(ok.replace("\"field\"", "\"fields\"")).contains("unknown parameter [fields]"));
        assertTrue(parseError(ok.replace(FAMILY.name(), "nope")).contains("unknown hash family [nope]"));
        assertTrue(parseError(ok.replace("\"residual\": 0.04}]", "\"residual\": \"x\"}]")).contains("[residual] must be a number"));
        // log_mean tables carry their aggregation through JSON and the wire
        BucketTable logTable = BucketTable.of(probabilities(3, 8), 2, true).withAggregation(Aggregation.LOG_MEAN);
        BucketScoring log = new BucketScoring(FAMILY.name(), logTable, Decoder.ScoreMode.MEAN, 1f, 0f);
        assertRoundTrips(new MachBucketsQueryBuilder("buckets", log, 2, 1));
        assertRoundTrips(new MachScoreQueryBuilder(new MatchQueryBuilder("title", "x"), "buckets", log, 3f));
        assertNotEquals(new MachBucketsQueryBuilder("buckets", log, 2, 1), new MachBucketsQueryBuilder("buckets", new BucketScoring(FAMILY.name(), logTable.withAggregation(Aggregation.MEAN), Decoder.ScoreMode.MEAN, 1f, 0f), 2, 1));
        MachBucketsQueryBuilder parsedLog = (MachBucketsQueryBuilder) parse(ok.replace("\"table\": {\"buckets\": 8,", "\"table\": {\"buckets\": 8, \"aggregation\": \"log_mean\","));
        assertEquals(Aggregation.LOG_MEAN, parsedLog.scoring().table().aggregation());
        assertNotEquals(parsed, parsedLog);
        String bad = parseError(ok.replace("\"table\": {\"buckets\": 8,", "\"table\": {\"buckets\": 8, \"aggregation\": \"max\","));
        assertTrue(bad, bad.contains("[aggregation]") && bad.contains("unknown aggregation [max]"));
    }

    public void testRewrittenShapes() throws IOException {
        BucketScoring s = scoring(8);
        MachQueryBuilder bare = (MachQueryBuilder) parse(mach(", \"buckets_per_repetition\": 3, \"min_repetitions\": 2, \"boost\": 2"));
        MachBucketsQueryBuilder alone = (MachBucketsQueryBuilder) bare.bucketsQuery(s, bare.options(), null);
        assertEquals(3, alone.bucketsPerRepetition());
        assertEquals(2, alone.minRepetitions());
        assertEquals("buckets", alone.field());
        assertEquals(2f, alone.boost(), 0f);

        String lexical = ", \"lexical\": {\"match\": {\"title\": \"x\"}}";
        MachQueryBuilder filter = (MachQueryBuilder) parse(mach(lexical + ", \"combine\": \"filter\""));
        BoolQueryBuilder f = (BoolQueryBuilder) filter.bucketsQuery(s, filter.options(), null);
        assertEquals(List.of(new MatchQueryBuilder("title", "x")), f.must());
        assertTrue(f.filter().get(0) instanceof MachBucketsQueryBuilder);

        MachQueryBuilder boost = (MachQueryBuilder) parse(mach(lexical + ", \"mach_weight\": 4"));
        MachScoreQueryBuilder b = (MachScoreQueryBuilder) boost.bucketsQuery(s, boost.options(), null);
        assertEquals(new MatchQueryBuilder("title", "x"), b.query());
        assertEquals(4f, b.weight(), 0f);
        assertSame(s, b.scoring());

        MachQueryBuilder hybrid = (MachQueryBuilder) parse(mach(lexical + ", \"combine\": \"hybrid\""));
        MachScoreQueryBuilder h = (MachScoreQueryBuilder) hybrid.bucketsQuery(s, hybrid.options(), null);
        BoolQueryBuilder union = (BoolQueryBuilder) h.query();
        assertEquals("1", union.minimumShouldMatch());
        assertEquals(new MatchQueryBuilder("title", "x"), union.should().get(0));
        MachBucketsQueryBuilder candidates = (MachBucketsQueryBuilder) union.should().get(1);
        assertEquals("the candidates only add documents; their MACH score comes from the wrapper", 0f, candidates.boost(), 0f);
        assertEquals(MachQueryBuilder.DEFAULT_MACH_WEIGHT, h.weight(), 0f);
        assertRoundTrips(h);

        MachQueryBuilder minMax = (MachQueryBuilder) parse(mach(lexical + ", \"normalization\": \"min_max\", \"mach_weight\": 0.3"));
        MachScoreQueryBuilder mm = (MachScoreQueryBuilder) minMax.bucketsQuery(s.withMap(0.5f, -0.1f), minMax.options(), new ScoreRange(2f, 10f));
        AffineScoreQueryBuilder affine = (AffineScoreQueryBuilder) mm.query();
        assertEquals(0.7f, affine.boost(), 1e-6f);
        assertEquals(0.125f, affine.scale(), 1e-6f);
        assertEquals(0.5f, mm.scoring().scale(), 0f);
        assertEquals(-0.1f, mm.scoring().offset(), 0f);
    }
}
