package org.opensearch.mach.query;

import org.apache.lucene.document.Document;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.TextField;
import org.apache.lucene.index.IndexReader;
import org.apache.lucene.index.Term;
import org.apache.lucene.search.BoostQuery;
import org.apache.lucene.search.Explanation;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TermQuery;
import org.apache.lucene.search.TopDocs;
import org.apache.lucene.search.similarities.BM25Similarity;
import org.apache.lucene.store.Directory;
import org.apache.lucene.tests.index.RandomIndexWriter;
import org.apache.lucene.tests.search.QueryUtils;
import org.opensearch.test.OpenSearchTestCase;

import java.util.HashMap;
import java.util.Map;

/** The score map on a real index: each score is boost * max(0, scale * s + offset) of the wrapped query's, explain agrees. */
public class AffineScoreQueryTests extends OpenSearchTestCase {

    public void testScoresExplainAndLuceneChecks() throws Exception {
        // BM25, what the wrapped lexical queries score with on a node: the test framework's random similarity
        // can give every match the same score, and the range below needs them apart
        try (
            Directory dir = newDirectory();
            RandomIndexWriter w = new RandomIndexWriter(random(), dir, newIndexWriterConfig().setSimilarity(new BM25Similarity()))
        ) {
            for (int i = 0; i < 100; i++) {
                Document d = new Document();
                d.add(new TextField("body", "drill " + "cordless ".repeat(i % 7) + "x".repeat(1 + i % 3), Field.Store.NO));
                w.addDocument(d);
                if (rarely()) w.commit();
            }
            try (IndexReader reader = w.getReader()) {
                IndexSearcher searcher = newSearcher(reader);
                searcher.setSimilarity(new BM25Similarity());
                Query inner = new TermQuery(new Term("body", "cordless"));
                Map<Integer, Float> raw = scores(searcher, inner);
                float min = Float.MAX_VALUE, max = 0;
                for (float s : raw.values()) {
                    min = Math.min(min, s);
                    max = Math.max(max, s);
                }
                ScoreRange range = new ScoreRange(min + (max - min) / 3, max); // a third of the docs fall below: they score 0
                AffineScoreQuery q = new AffineScoreQuery(inner, range.scale(), range.offset());
                QueryUtils.check(random(), q, searcher);
                Map<Integer, Float> mapped = scores(searcher, new BoostQuery(q, 0.7f));
                assertEquals("same matches", raw.keySet(), mapped.keySet());
                // the map amplifies a score's float rounding (and the few ulps by which BM25's explain differs
                // from its scorer) by scale * max
                float tolerance = 1e-5f * Math.max(1f, range.scale() * max);
                int zeros = 0;
                for (Map.Entry<Integer, Float> e : mapped.entrySet()) {
                    float expected = 0.7f * Math.max(0f, (raw.get(e.getKey()) - range.min()) / (max - range.min()));
                    assertEquals(expected, e.getValue(), tolerance);
                    zeros += e.getValue() == 0f ? 1 : 0;
                    Explanation ex = searcher.explain(new BoostQuery(q, 0.7f), e.getKey());
                    assertTrue(ex.isMatch());
                    assertEquals(e.getValue(), ex.getValue().floatValue(), 10 * tolerance);
                    assertTrue(ex.toString(), ex.getDescription().contains("computed as boost * max(0, scale * score + offset)"));
                }
                assertTrue("scores below the range map to 0", zeros > 0);
                assertFalse(searcher.explain(q, docWithout(searcher)).isMatch());
            }
        }
    }

    private static Map<Integer, Float> scores(IndexSearcher searcher, Query q) throws Exception {
        TopDocs top = searcher.search(q, 1000);
        Map<Integer, Float> out = new HashMap<>();
        for (ScoreDoc sd : top.scoreDocs) out.put(sd.doc, sd.score);
        return out;
    }

    private static int docWithout(IndexSearcher searcher) throws Exception {
        Map<Integer, Float> with = scores(searcher, new TermQuery(new Term("body", "cordless")));
        for (int d = 0; d < searcher.getIndexReader().maxDoc(); d++) {
            if (!with.containsKey(d)) return d;
        }
        throw new AssertionError("every doc matches");
    }

    public void testEqualsHashCode() {
        Query inner = new TermQuery(new Term("f", "a"));
        AffineScoreQuery a = new AffineScoreQuery(inner, 0.5f, -1f);
        assertEquals(a, new AffineScoreQuery(new TermQuery(new Term("f", "a")), 0.5f, -1f));
        assertEquals(a.hashCode(), new AffineScoreQuery(new TermQuery(new Term("f", "a")), 0.5f, -1f).hashCode());
        assertNotEquals(a, new AffineScoreQuery(inner, 0.25f, -1f));
        assertNotEquals(a, new AffineScoreQuery(inner, 0.5f, 0f));
        assertNotEquals(a, new AffineScoreQuery(new TermQuery(new Term("f", "b")), 0.5f, -1f));
        expectThrows(IllegalArgumentException.class, () -> new AffineScoreQuery(inner, -1f, 0f));
        expectThrows(IllegalArgumentException.class, () -> new AffineScoreQuery(inner, Float.NaN, 0f));
    }
}
