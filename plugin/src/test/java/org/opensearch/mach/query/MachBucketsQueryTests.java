package org.opensearch.mach.query;

import org.apache.lucene.document.Document;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.StringField;
import org.apache.lucene.document.TextField;
import org.apache.lucene.index.IndexReader;
import org.apache.lucene.index.IndexWriterConfig;
import org.apache.lucene.index.Term;
import org.apache.lucene.search.BooleanClause;
import org.apache.lucene.search.BooleanQuery;
import org.apache.lucene.search.Explanation;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.MatchAllDocsQuery;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TermQuery;
import org.apache.lucene.search.TopDocs;
import org.apache.lucene.search.TopScoreDocCollectorManager;
import org.apache.lucene.store.Directory;
import org.apache.lucene.tests.index.RandomIndexWriter;
import org.apache.lucene.search.Query;
import org.apache.lucene.tests.search.QueryUtils;
import org.opensearch.common.io.stream.BytesStreamOutput;
import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.mach.index.BucketFields;
import org.opensearch.mach.inference.Aggregation;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.model.ProductIndex;
import org.opensearch.test.OpenSearchTestCase;

import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/**
 * The shard queries of index-side MACH on a real Lucene index of random product ids, against the
 * catalog decoder over the same ids: every document's doc-value score equals the decoder's exact
 * score of its product (s = B), the candidates equal candidate decoding for (m, f), explain adds up.
 */
public class MachBucketsQueryTests extends OpenSearchTestCase {
    static final String FIELD = "buckets";

    /** An index of K random products (some deleted, some without buckets) and the same products' catalog. */
    static final class Fixture implements AutoCloseable {
        final HashFamily family;
        final String[] ids;
        final ProductIndex catalog;
        final float[][] probs;
        final Set<String> deleted = new HashSet<>();
        final Set<String> noBuckets = new HashSet<>();
        final Directory dir;
        final IndexReader reader;
        final IndexSearcher searcher;

        Fixture(MachBucketsQueryTests test, boolean deletes) throws Exception {
            int R = randomIntBetween(2, 8), B = randomIntBetween(8, 64), K = randomIntBetween(100, 400);
            family = new HashFamily(R, B, randomLongBetween(0, 0xFFFFFFFFL));
            ids = new String[K];
            Set<String> seen = new HashSet<>();
            for (int k = 0; k < K; k++) {
                String id;
                do {
                    id = randomAlphaOfLengthBetween(3, 12);
                } while (!seen.add(id));
                ids[k] = id;
            }
            catalog = ProductIndex.build(ids, family.productHash());
            probs = new float[R][B];
            for (int r = 0; r < R; r++) {
                double sum = 0;
                for (int b = 0; b < B; b++) sum += probs[r][b] = (float) Math.pow(random().nextDouble(), 4); // peaked, like a softmax
                for (int b = 0; b < B; b++) probs[r][b] /= (float) sum;
            }
            dir = newDirectory();
            try (RandomIndexWriter w = new RandomIndexWriter(random(), dir, new IndexWriterConfig().setMergePolicy(newLogMergePolicy()))) {
                for (int k = 0; k < K; k++) {
                    Document d = new Document();
                    d.add(new StringField("pid", ids[k], Field.Store.YES));
                    d.add(new StringField("color", k % 3 == 0 ? "red" : "blue", Field.Store.NO));
                    StringBuilder title = new StringBuilder();
                    for (int t = randomIntBetween(1, 6); t > 0; t--) title.append(" w").append(randomIntBetween(0, 9));
                    d.add(new TextField("title", title.toString(), Field.Store.NO));
                    if (k % 17 == 5) noBuckets.add(ids[k]);
                    else for (var f : BucketFields.fields(FIELD, family.codesOf(ids[k]))) d.add(f);
                    w.addDocument(d);
                    if (rarely()) w.commit();
                }
                for (int k = 0; deletes && k < K; k += 23) {
                    w.deleteDocuments(new Term("pid", ids[k]));
                    deleted.add(ids[k]);
                }
                reader = w.getReader();
            }
            searcher = test.newSearcherForTest(reader);
        }

        BucketScoring scoring(int s, Decoder.ScoreMode mode) {
            return new BucketScoring(family.name(), BucketTable.of(probs, s), mode, 1f, 0f);
        }

        String pid(int doc) throws Exception {
            return searcher.storedFields().document(doc).get("pid");
        }

        @Override
        public void close() throws Exception {
            reader.close();
            dir.close();
        }
    }

    IndexSearcher newSearcherForTest(IndexReader reader) {
        return newSearcher(reader);
    }

    /** The decoder's products as id -> score. */
    static Map<String, Float> decoded(Fixture fx, Decoder.Options options) {
        return decoded(fx, options, Aggregation.MEAN);
    }

    static Map<String, Float> decoded(Fixture fx, Decoder.Options options, Aggregation aggregation) {
        Decoder.Result r = Decoder.decode(fx.catalog, fx.probs, options, aggregation);
        Map<String, Float> out = new HashMap<>();
        for (int i = 0; i < r.products().length; i++) out.put(fx.ids[r.products()[i]], Math.max(0f, r.scores()[i]));
        return out;
    }

    public void testCandidatesAndScoresEqualCatalogDecoding() throws Exception {
        try (Fixture fx = new Fixture(this, true)) {
            int R = fx.family.repetitions(), B = fx.family.buckets(), K = fx.ids.length;
            for (Decoder.ScoreMode mode : Decoder.ScoreMode.values()) {
                // f: the bit sets (1..4) and the sort (above 4) of the candidates without scores
                int m = randomIntBetween(1, B / 2), f = randomIntBetween(1, Math.min(BucketBounds.BIT_SET_REPETITIONS + 2, R));
                MachBucketsQuery q = new MachBucketsQuery(FIELD, fx.scoring(B, mode), m, f);
                QueryUtils.check(random(), q, fx.searcher);
                Map<String, Float> expected = decoded(fx, new Decoder.Options(K, Decoder.Strategy.CANDIDATES, m, f, mode));
                expected.keySet().removeAll(fx.deleted);
                expected.keySet().removeAll(fx.noBuckets);
                TopDocs top = fx.searcher.search(q, K);
                Map<String, Float> got = new HashMap<>();
                for (ScoreDoc sd : top.scoreDocs) {
                    got.put(fx.pid(sd.doc), sd.score);
                    Explanation e = fx.searcher.explain(q, sd.doc);
                    assertTrue(e.isMatch());
                    assertEquals(sd.score, e.getValue().floatValue(), 1e-6f);
                    assertPerRepetitionSum(e.getDetails()[0]);
                }
                assertEquals("m " + m + " f " + f + " " + mode, expected.keySet(), got.keySet());
                for (var e : expected.entrySet()) assertEquals(e.getKey(), e.getValue(), got.get(e.getKey()), 1e-6f);
                // without scores (a filter) the candidates are gathered another way (f 1: a bit set; f > 1: sorted): the same ones
                Set<String> filtered = new HashSet<>();
                for (ScoreDoc sd : fx.searcher.search(new org.apache.lucene.search.ConstantScoreQuery(q), K).scoreDocs) filtered.add(fx.pid(sd.doc));
                assertEquals("no scores, m " + m + " f " + f, expected.keySet(), filtered);
                if (top.scoreDocs.length > 0) assertTrue(top.scoreDocs[0].score <= q.scoring().maxScore());
            }
        }
    }

    /** The MACH score's explanation: its first detail is the mean, whose details (p_r / R) sum to it. */
    static void assertPerRepetitionSum(Explanation mach) {
        Explanation mean = mach.getDetails()[0];
        double sum = 0;
        for (Explanation rep : mean.getDetails()) {
            assertTrue(rep.getDescription(), rep.getDescription().startsWith("repetition "));
            sum += rep.getValue().doubleValue();
        }
        assertEquals(mean.getValue().doubleValue(), sum, 1e-6);
    }

    public void testEveryLexicalHitGetsItsExactMachScore() throws Exception {
        try (Fixture fx = new Fixture(this, false)) {
            int B = fx.family.buckets(), K = fx.ids.length;
            Decoder.ScoreMode mode = randomFrom(Decoder.ScoreMode.values());
            Map<String, Float> exact = decoded(fx, new Decoder.Options(K, Decoder.Strategy.EXACT, 1, 1, mode));
            float w = 0.5f + 20f * random().nextFloat();
            TermQuery red = new TermQuery(new Term("color", "red"));
            // (no deletions here: QueryUtils advances a plain TermQuery onto deleted documents, which collection skips)
            MachScoreQuery q = new MachScoreQuery(red, FIELD, fx.scoring(B, mode), w);
            QueryUtils.check(random(), q, fx.searcher);
            TopDocs lexical = fx.searcher.search(red, K);
            Map<String, Float> lexicalScores = new HashMap<>();
            for (ScoreDoc sd : lexical.scoreDocs) lexicalScores.put(fx.pid(sd.doc), sd.score);
            TopDocs top = fx.searcher.search(q, K);
            assertEquals(lexical.totalHits.value(), top.totalHits.value());
            for (ScoreDoc sd : top.scoreDocs) {
                String id = fx.pid(sd.doc);
                float mach = fx.noBuckets.contains(id) ? 0f : exact.get(id);
                assertEquals(id, lexicalScores.get(id) + w * mach, sd.score, 1e-5f);
                Explanation e = fx.searcher.explain(q, sd.doc);
                assertEquals(sd.score, e.getValue().floatValue(), 1e-5f);
                assertEquals(sd.score, e.getDetails()[0].getValue().floatValue() + e.getDetails()[1].getValue().floatValue(), 1e-5f);
                if (!fx.noBuckets.contains(id)) assertPerRepetitionSum(e.getDetails()[1].getDetails()[1]);
            }
            // top-k with pruning (threshold 1) finds the same top 10 as counting every hit
            TopDocs pruned = fx.searcher.search(q, new TopScoreDocCollectorManager(10, null, 1));
            TopDocs full = fx.searcher.search(q, new TopScoreDocCollectorManager(10, null, Integer.MAX_VALUE));
            assertEquals(full.scoreDocs.length, pruned.scoreDocs.length);
            for (int i = 0; i < full.scoreDocs.length; i++) assertEquals(full.scoreDocs[i].score, pruned.scoreDocs[i].score, 0f);
            // hybrid: the union of lexical and MACH candidates, every one scored lexical + w * MACH
            BooleanQuery union = new BooleanQuery.Builder().add(red, BooleanClause.Occur.SHOULD)
                .add(new org.apache.lucene.search.BoostQuery(new MachBucketsQuery(FIELD, fx.scoring(B, mode), 2, 1), 0f), BooleanClause.Occur.SHOULD)
                .build();
            MachScoreQuery hybrid = new MachScoreQuery(union, FIELD, fx.scoring(B, mode), w);
            QueryUtils.check(random(), hybrid, fx.searcher);
            for (ScoreDoc sd : fx.searcher.search(hybrid, K).scoreDocs) {
                String id = fx.pid(sd.doc);
                float mach = fx.noBuckets.contains(id) ? 0f : exact.get(id);
                assertEquals(id, lexicalScores.getOrDefault(id, 0f) + w * mach, sd.score, 1e-5f);
            }
        }
    }

    /** Top-k that skips (minimum competitive score: bulk fusion, candidate bounds) finds what scoring every hit finds. */
    public void testPruningKeepsTheTopHits() throws Exception {
        try (Fixture fx = new Fixture(this, randomBoolean())) {
            int R = fx.family.repetitions(), B = fx.family.buckets();
            // a flat output too (every bucket within 10% of 1/B), whose fusion skips the split bounds
            float[][] flat = new float[R][B];
            for (float[] row : flat) for (int b = 0; b < B; b++) row[b] = (0.95f + 0.1f * random().nextFloat()) / B;
            for (int round = 0; round < 8; round++) {
                Aggregation aggregation = round % 2 == 0 ? Aggregation.MEAN : Aggregation.LOG_MEAN;
                Decoder.ScoreMode mode = aggregation == Aggregation.LOG_MEAN ? Decoder.ScoreMode.MEAN : randomFrom(Decoder.ScoreMode.values());
                int s = randomIntBetween(1, B), m = randomIntBetween(1, s), f = randomIntBetween(1, Math.min(3, R));
                BucketTable table = BucketTable.of(round >= 6 ? flat : fx.probs, round == 6 ? B : s, randomBoolean()).withAggregation(aggregation);
                BucketScoring scoring = new BucketScoring(fx.family.name(), table, mode, 1f, 0f);
                BooleanQuery.Builder words = new BooleanQuery.Builder();
                for (int t = randomIntBetween(1, 4); t > 0; t--) words.add(new TermQuery(new Term("title", "w" + randomIntBetween(0, 9))), BooleanClause.Occur.SHOULD);
                float w = 0.5f + 20f * random().nextFloat();
                MachBucketsQuery candidates = new MachBucketsQuery(FIELD, scoring, m, f);
                Query[] queries = {
                    candidates,
                    new MachScoreQuery(words.build(), FIELD, scoring, w),
                    new MachScoreQuery(
                        new BooleanQuery.Builder().add(words.build(), BooleanClause.Occur.SHOULD)
                            .add(new org.apache.lucene.search.BoostQuery(candidates, 0f), BooleanClause.Occur.SHOULD)
                            .build(),
                        FIELD,
                        scoring,
                        w
                    ) };
                for (Query q : queries) {
                    int k = randomIntBetween(1, 20);
                    TopDocs pruned = fx.searcher.search(q, new TopScoreDocCollectorManager(k, null, 1));
                    TopDocs full = fx.searcher.search(q, new TopScoreDocCollectorManager(k, null, Integer.MAX_VALUE));
                    assertEquals(q.toString(), full.scoreDocs.length, pruned.scoreDocs.length);
                    // (the inner bulk scorers of both modes may sum clause scores in another order: ulps apart, ties may swap)
                    Set<Integer> prunedDocs = new HashSet<>();
                    for (ScoreDoc sd : pruned.scoreDocs) prunedDocs.add(sd.doc);
                    float last = full.scoreDocs.length == 0 ? 0f : full.scoreDocs[full.scoreDocs.length - 1].score;
                    for (int i = 0; i < full.scoreDocs.length; i++) {
                        assertEquals(q + " rank " + i, full.scoreDocs[i].score, pruned.scoreDocs[i].score, 1e-5f);
                        if (full.scoreDocs[i].score > last + 1e-4f) assertTrue(q + " rank " + i, prunedDocs.contains(full.scoreDocs[i].doc));
                    }
                }
            }
        }
    }

    public void testTopBucketsTableKeepsCandidatesAndEstimatesTheRest() throws Exception {
        try (Fixture fx = new Fixture(this, true)) {
            int R = fx.family.repetitions(), B = fx.family.buckets(), K = fx.ids.length;
            int s = randomIntBetween(2, B - 1), m = randomIntBetween(1, s);
            BucketTable t = BucketTable.of(fx.probs, s);
            for (int r = 0; r < R; r++) {
                double sent = 0;
                int[] top = Decoder.topBuckets(fx.probs[r], s);
                for (int b : top) sent += fx.probs[r][b];
                assertEquals((1 - sent) / (B - s), t.residual(r), 1e-6);
                assertArrayEquals(Decoder.topBuckets(fx.probs[r], m), t.topBuckets(r, m));
            }
            // the candidates depend on the top m buckets only, so they equal the exact table's
            MachBucketsQuery truncated = new MachBucketsQuery(FIELD, fx.scoring(s, Decoder.ScoreMode.MEAN), m, 1);
            MachBucketsQuery exact = new MachBucketsQuery(FIELD, fx.scoring(B, Decoder.ScoreMode.MEAN), m, 1);
            Set<Integer> a = new HashSet<>(), b = new HashSet<>();
            for (ScoreDoc sd : fx.searcher.search(truncated, K).scoreDocs) a.add(sd.doc);
            for (ScoreDoc sd : fx.searcher.search(exact, K).scoreDocs) b.add(sd.doc);
            assertEquals(b, a);
            assertNotEquals(truncated, exact);
        }
    }

    static double maxMean(float[][] probs) {
        double sum = 0;
        for (float[] row : probs) {
            float max = 0;
            for (float p : row) max = Math.max(max, p);
            sum += max;
        }
        return sum / probs.length;
    }

    public void testWireRoundTripEqualityAndSize() throws Exception {
        int R = randomIntBetween(1, 16), B = randomIntBetween(2, 5000);
        float[][] probs = new float[R][B];
        for (float[] row : probs) for (int b = 0; b < B; b++) row[b] = random().nextFloat() / B;
        for (int s : new int[] { 1, randomIntBetween(1, B), B }) {
            BucketTable t = BucketTable.of(probs, s);
            try (BytesStreamOutput out = new BytesStreamOutput()) {
                t.writeTo(out);
                BucketTable read = new BucketTable(out.bytes().streamInput());
                assertEquals(t, read);
                assertEquals(t.hashCode(), read.hashCode());
                assertArrayEquals(t.dense(), read.dense(), 0f);
                int sent = Math.min(s, B);
                // ids as gaps (<= 2 bytes each below B 16k) + 4-byte probabilities; a complete repetition has no ids
                assertTrue(out.size() <= 10 + R * (5 + 4 + sent * (sent == B ? 4 : 6)));
            }
        }
        // a quantized tail: every unsent bucket within ~3% of its probability (values within 7 decades of the largest)
        BucketTable q = BucketTable.of(probs, 1, true);
        try (BytesStreamOutput out = new BytesStreamOutput()) {
            q.writeTo(out);
            BucketTable read = new BucketTable(out.bytes().streamInput());
            assertEquals(q, read);
            float[] dense = read.dense();
            for (int r = 0; r < R; r++) {
                assertTrue(read.quantizedTail(r));
                for (int b = 0; b < B; b++) {
                    float p = probs[r][b];
                    assertEquals("r " + r + " b " + b, p, dense[r * B + b], Math.max(0.03f * p, 1e-6f));
                }
            }
            assertTrue(read.maxMean() * 1.0001 >= maxMean(probs));
        }
        BucketScoring a = new BucketScoring(new HashFamily(R, B, 7).name(), BucketTable.of(probs, 3), Decoder.ScoreMode.MEAN, 1f, 0f);
        assertEquals(a, new BucketScoring(a.family(), BucketTable.of(probs, 3), Decoder.ScoreMode.MEAN, 1f, 0f));
        assertNotEquals(a, a.withMap(2f, 0f));
        assertNotEquals(a, new BucketScoring(a.family(), BucketTable.of(probs, 3), Decoder.ScoreMode.CALIBRATED, 1f, 0f));
        assertEquals(new MachBucketsQuery("f", a, 3, 1), new MachBucketsQuery("f", a, 3, 1));
        assertEquals(new MachBucketsQuery("f", a, 3, 1).hashCode(), new MachBucketsQuery("f", a, 3, 1).hashCode());
        assertNotEquals(new MachBucketsQuery("f", a, 3, 1), new MachBucketsQuery("f", a, 4, 1));
        assertNotEquals(new MachBucketsQuery("f", a, 3, 1), new MachBucketsQuery("g", a, 3, 1));
        MachScoreQuery s1 = new MachScoreQuery(new MatchAllDocsQuery(), "f", a, 2f);
        assertEquals(s1, new MachScoreQuery(new MatchAllDocsQuery(), "f", a, 2f));
        assertEquals(s1.hashCode(), new MachScoreQuery(new MatchAllDocsQuery(), "f", a, 2f).hashCode());
        assertNotEquals(s1, new MachScoreQuery(new MatchAllDocsQuery(), "f", a, 3f));
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
            () -> new BucketScoring(new HashFamily(R, B + 1, 7).name(), BucketTable.of(probs, 3), Decoder.ScoreMode.MEAN, 1f, 0f));
        assertTrue(e.getMessage(), e.getMessage().contains("does not fit hash family"));
    }

    /**
     * log_mean on the shard: with every bucket sent the candidates' and every lexical hit's MACH scores equal
     * the catalog decoder's exact log-mean scores; explain adds up; no score exceeds the table's bound.
     */
    public void testLogMeanShardScoresEqualCatalogDecoding() throws Exception {
        try (Fixture fx = new Fixture(this, false)) {
            int R = fx.family.repetitions(), B = fx.family.buckets(), K = fx.ids.length;
            BucketScoring scoring = new BucketScoring(fx.family.name(), BucketTable.of(fx.probs, B).withAggregation(Aggregation.LOG_MEAN), Decoder.ScoreMode.MEAN, 1f, 0f);
            int m = randomIntBetween(1, B / 2), f = randomIntBetween(1, Math.min(3, R));
            MachBucketsQuery q = new MachBucketsQuery(FIELD, scoring, m, f);
            QueryUtils.check(random(), q, fx.searcher);
            Map<String, Float> expected = decoded(fx, new Decoder.Options(K, Decoder.Strategy.CANDIDATES, m, f, Decoder.ScoreMode.MEAN), Aggregation.LOG_MEAN);
            expected.keySet().removeAll(fx.noBuckets);
            Map<String, Float> got = new HashMap<>();
            TopDocs top = fx.searcher.search(q, K);
            for (ScoreDoc sd : top.scoreDocs) {
                got.put(fx.pid(sd.doc), sd.score);
                Explanation e = fx.searcher.explain(q, sd.doc);
                assertEquals(sd.score, e.getValue().floatValue(), 1e-5f);
                assertPerRepetitionSum(e.getDetails()[0]);
                assertTrue(e.toString(), e.toString().contains("log score"));
            }
            assertEquals(expected.keySet(), got.keySet());
            for (var e : expected.entrySet()) assertEquals(e.getKey(), e.getValue(), got.get(e.getKey()), 1e-5f);
            // the log-mean ranks otherwise than the mean (else this test could not tell them apart)
            Map<String, Float> exact = decoded(fx, new Decoder.Options(K, Decoder.Strategy.EXACT, 1, 1, Decoder.ScoreMode.MEAN), Aggregation.LOG_MEAN);
            Decoder.Options all = new Decoder.Options(K, Decoder.Strategy.EXACT, 1, 1, Decoder.ScoreMode.MEAN);
            assertFalse(Arrays.equals(Decoder.decode(fx.catalog, fx.probs, all).products(), Decoder.decode(fx.catalog, fx.probs, all, Aggregation.LOG_MEAN).products()));
            float max = 0;
            for (float v : exact.values()) max = Math.max(max, v);
            assertTrue(max + " <= " + scoring.maxScore(), max <= scoring.maxScore());
            // per-document fusion: every lexical hit gets L + w * its exact log-mean score
            float w = 0.5f + 10f * random().nextFloat();
            TermQuery red = new TermQuery(new Term("color", "red"));
            MachScoreQuery fused = new MachScoreQuery(red, FIELD, scoring, w);
            QueryUtils.check(random(), fused, fx.searcher);
            Map<String, Float> lexical = new HashMap<>();
            for (ScoreDoc sd : fx.searcher.search(red, K).scoreDocs) lexical.put(fx.pid(sd.doc), sd.score);
            TopDocs hits = fx.searcher.search(fused, K);
            assertEquals(lexical.size(), hits.scoreDocs.length);
            for (ScoreDoc sd : hits.scoreDocs) {
                String id = fx.pid(sd.doc);
                float mach = fx.noBuckets.contains(id) ? 0f : exact.get(id);
                assertEquals(id, lexical.get(id) + w * mach, sd.score, 1e-4f);
            }
        }
    }

    /**
     * The default table (top s sent, the rest quantized): its floor is the full output's, the sent buckets
     * score exactly and each quantized one within half a code step of ln(max(p, f) / f), so a document's
     * log-mean score is within the mean half step of the exact one.
     */
    public void testLogMeanQuantizedTableWithinItsStep() throws Exception {
        try (Fixture fx = new Fixture(this, false)) {
            int R = fx.family.repetitions(), B = fx.family.buckets(), K = fx.ids.length;
            int s = randomIntBetween(1, B - 1);
            BucketTable table = BucketTable.of(fx.probs, s, true).withAggregation(Aggregation.LOG_MEAN);
            float[] dense = table.dense();
            double meanHalfStep = 0;
            for (int r = 0; r < R; r++) {
                float[] exact = Aggregation.LOG_MEAN.bucketScores(fx.probs[r]);
                float min = 1, max = 0;
                for (float p : fx.probs[r]) {
                    min = Math.min(min, p);
                    max = Math.max(max, p);
                }
                assertEquals("r " + r, Aggregation.floor(min, max), table.floor(r), 1e-6 * table.floor(r));
                double halfStep = 0;
                for (int b = 0; b < B; b++) {
                    double tol = table.isSent(r, b) ? 1e-5 : 0;
                    if (!table.isSent(r, b)) tol = stepOf(fx.probs[r], table, r) / 2 + 1e-5;
                    halfStep = Math.max(halfStep, tol);
                    assertEquals("r " + r + " b " + b, exact[b], dense[r * B + b], tol);
                }
                meanHalfStep += halfStep / R;
            }
            BucketScoring scoring = new BucketScoring(fx.family.name(), table, Decoder.ScoreMode.MEAN, 1f, 0f);
            Map<String, Float> exact = decoded(fx, new Decoder.Options(K, Decoder.Strategy.EXACT, 1, 1, Decoder.ScoreMode.MEAN), Aggregation.LOG_MEAN);
            MachScoreQuery all = new MachScoreQuery(new MatchAllDocsQuery(), FIELD, scoring, 1f);
            for (ScoreDoc sd : fx.searcher.search(all, K).scoreDocs) {
                String id = fx.pid(sd.doc);
                if (fx.noBuckets.contains(id)) continue;
                assertEquals(id, 1f + exact.get(id), sd.score, meanHalfStep + 1e-4);
                assertTrue(sd.score <= 1f + scoring.maxScore());
            }
        }
    }

    /** The quantized tail's code step in log space: ln(high / low) / 255 of the unsent probabilities. */
    private static double stepOf(float[] probs, BucketTable table, int r) {
        float high = 0, low = Float.MAX_VALUE;
        for (int b = 0; b < probs.length; b++) {
            if (table.isSent(r, b)) continue;
            high = Math.max(high, probs[b]);
            low = Math.min(low, probs[b]);
        }
        low = (float) Math.max(low, high * 1e-7);
        return high > 0 ? Math.log((double) high / low) / 255 : 0;
    }

    public void testLogMeanTableOnTheWire() throws Exception {
        int R = randomIntBetween(1, 8), B = randomIntBetween(2, 500);
        float[][] probs = new float[R][B];
        for (float[] row : probs) for (int b = 0; b < B; b++) row[b] = random().nextFloat() / B;
        for (BucketTable t : new BucketTable[] { BucketTable.of(probs, randomIntBetween(1, B), randomBoolean()), BucketTable.of(probs, B) }) {
            BucketTable log = t.withAggregation(Aggregation.LOG_MEAN);
            assertNotEquals(t, log);
            assertEquals(Aggregation.MEAN, t.aggregation());
            try (BytesStreamOutput out = new BytesStreamOutput()) {
                log.writeTo(out);
                BucketTable read = new BucketTable(out.bytes().streamInput());
                assertEquals(log, read);
                assertEquals(log.hashCode(), read.hashCode());
                assertEquals(Aggregation.LOG_MEAN, read.aggregation());
                assertArrayEquals(log.dense(), read.dense(), 0f);
            }
            // calibrated scores need the mean aggregation: B / (B - 1) (mean - 1 / B), at least 0
            BucketScoring mean = new BucketScoring(new HashFamily(R, B, 7).name(), t, Decoder.ScoreMode.CALIBRATED, 1f, 0f);
            assertEquals((double) B / (B - 1) * (0.75 - 1.0 / B), mean.score(0.75), 1e-6);
            assertEquals(0f, mean.score(0.5 / B), 0f);
            IllegalArgumentException e = expectThrows(
                IllegalArgumentException.class,
                () -> new BucketScoring(new HashFamily(R, B, 7).name(), log, Decoder.ScoreMode.CALIBRATED, 1f, 0f)
            );
            assertTrue(e.getMessage(), e.getMessage().contains("[score] [calibrated]"));
        }
    }
}
