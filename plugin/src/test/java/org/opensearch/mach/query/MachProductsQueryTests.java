package org.opensearch.mach.query;

import org.apache.lucene.document.Document;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.StringField;
import org.apache.lucene.index.IndexReader;
import org.apache.lucene.index.Term;
import org.apache.lucene.search.BooleanClause;
import org.apache.lucene.search.BooleanQuery;
import org.apache.lucene.search.BoostQuery;
import org.apache.lucene.search.ConstantScoreQuery;
import org.apache.lucene.search.DisjunctionMaxQuery;
import org.apache.lucene.search.Explanation;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.tests.search.QueryUtils;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TermQuery;
import org.apache.lucene.search.TopDocs;
import org.apache.lucene.store.Directory;
import org.apache.lucene.tests.index.RandomIndexWriter;
import org.opensearch.test.OpenSearchTestCase;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** The Lucene query on a real index: matches, scores, explain, Lucene's own query checks, composition. */
public class MachProductsQueryTests extends OpenSearchTestCase {

    public void testScoresExplainAndComposition() throws Exception {
        try (Directory dir = newDirectory(); RandomIndexWriter w = new RandomIndexWriter(random(), dir)) {
            int n = 200;
            for (int i = 0; i < n; i++) {
                Document d = new Document();
                d.add(new StringField("pid", "P" + i, Field.Store.YES));
                d.add(new StringField("color", i % 2 == 0 ? "red" : "blue", Field.Store.NO));
                if (i == 7) d.add(new StringField("pid", "ALT7", Field.Store.NO)); // multi-valued: takes the max score
                w.addDocument(d);
                if (rarely()) w.commit(); // several segments
            }
            w.deleteDocuments(new Term("pid", "P3"));
            try (IndexReader reader = w.getReader()) {
                IndexSearcher searcher = newSearcher(reader);
                String[] ids = { "P5", "P3", "P7", "ALT7", "P150", "NOPE", "P0" };
                float[] scores = { 0.9f, 0.8f, 0.1f, 0.6f, 0.5f, 0.4f, 0.05f };
                MachProductsQuery q = new MachProductsQuery("pid", ids, scores);
                QueryUtils.check(random(), q, searcher);

                TopDocs top = searcher.search(q, 100);
                Map<String, Float> got = new HashMap<>();
                for (ScoreDoc sd : top.scoreDocs) {
                    got.put(searcher.storedFields().document(sd.doc).get("pid"), sd.score);
                    Explanation ex = searcher.explain(q, sd.doc);
                    assertTrue(ex.isMatch());
                    assertEquals(sd.score, ex.getValue().floatValue(), 1e-6f);
                }
                // P3 deleted, NOPE absent, P7 scored by ALT7 (the larger of its two ids)
                assertEquals(Map.of("P5", 0.9f, "P7", 0.6f, "P150", 0.5f, "P0", 0.05f), got);
                assertEquals(4, top.totalHits.value());
                assertEquals("P5", searcher.storedFields().document(top.scoreDocs[0].doc).get("pid"));

                TopDocs other = searcher.search(new TermQuery(new Term("pid", "P9")), 1);
                Explanation no = searcher.explain(q, other.scoreDocs[0].doc);
                assertFalse(no.isMatch());

                // boost multiplies
                TopDocs boosted = searcher.search(new BoostQuery(q, 3f), 10);
                assertEquals(0.9f * 3, boosted.scoreDocs[0].score, 1e-6f);

                // inside bool with a filter, constant_score, dis_max
                BooleanQuery bool = new BooleanQuery.Builder().add(q, BooleanClause.Occur.MUST)
                    .add(new TermQuery(new Term("color", "red")), BooleanClause.Occur.FILTER)
                    .build();
                TopDocs red = searcher.search(bool, 10);
                assertEquals(2, red.totalHits.value()); // P0, P150 are even; P5, P7 odd
                assertEquals(0.5f, red.scoreDocs[0].score, 1e-6f);
                QueryUtils.check(random(), bool, searcher);

                TopDocs cs = searcher.search(new ConstantScoreQuery(q), 10);
                assertEquals(4, cs.totalHits.value());
                assertEquals(1f, cs.scoreDocs[0].score, 0f);

                DisjunctionMaxQuery dm = new DisjunctionMaxQuery(List.of(q, new TermQuery(new Term("pid", "P9"))), 0f);
                assertEquals(5, searcher.search(dm, 10).totalHits.value());
            }
        }
    }

    public void testEqualsHashCode() {
        MachProductsQuery a = new MachProductsQuery("f", new String[] { "a", "b" }, new float[] { 1, 2 });
        MachProductsQuery sameOtherOrder = new MachProductsQuery("f", new String[] { "b", "a" }, new float[] { 2, 1 });
        assertEquals(a, sameOtherOrder);
        assertEquals(a.hashCode(), sameOtherOrder.hashCode());
        assertNotEquals(a, new MachProductsQuery("f", new String[] { "a", "b" }, new float[] { 1, 3 }));
        assertNotEquals(a, new MachProductsQuery("g", new String[] { "a", "b" }, new float[] { 1, 2 }));
        assertNotEquals(a, new MachProductsQuery("f", new String[] { "a", "c" }, new float[] { 1, 2 }));
        expectThrows(IllegalArgumentException.class, () -> new MachProductsQuery("f", new String[] { "a", "a" }, new float[] { 1, 2 }));
    }
}
