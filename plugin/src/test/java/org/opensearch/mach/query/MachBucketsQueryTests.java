package org.opensearch.mach.query;

import org.apache.lucene.document.Document;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.StringField;
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
import org.apache.lucene.tests.search.QueryUtils;
import org.opensearch.common.io.stream.BytesStreamOutput;
import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.mach.index.BucketFields;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.model.ProductIndex;
import org.opensearch.test.OpenSearchTestCase;

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
        Decoder.Result r = Decoder.decode(fx.catalog, fx.probs, options);
        Map<String, Float> out = new HashMap<>();
        for (int i = 0; i < r.products().length; i++) out.put(fx.ids[r.products()[i]], Math.max(0f, r.scores()[i]));
        return out;
    }

    public void testCandidatesAndScoresEqualCatalogDecoding() throws Exception {
        try (Fixture fx = new Fixture(this, true)) {
            int R = fx.family.repetitions(), B = fx.family.buckets(), K = fx.ids.length;
            for (Decoder.ScoreMode mode : Decoder.ScoreMode.values()) {
                int m = randomIntBetween(1, B / 2), f = randomIntBetween(1, Math.min(3, R));
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
}
