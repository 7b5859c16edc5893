package org.opensearch.mach.query;

import org.apache.lucene.index.LeafReader;
import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.PostingsEnum;
import org.apache.lucene.index.Terms;
import org.apache.lucene.index.TermsEnum;
import org.apache.lucene.search.DocIdSetIterator;
import org.apache.lucene.search.Explanation;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.QueryVisitor;
import org.apache.lucene.search.ScoreMode;
import org.apache.lucene.search.Scorer;
import org.apache.lucene.search.ScorerSupplier;
import org.apache.lucene.search.Weight;
import org.apache.lucene.util.Bits;
import org.apache.lucene.util.BytesRef;

import java.io.IOException;
import java.util.Arrays;
import java.util.Objects;

/**
 * Lucene side of the rewritten mach query: the documents whose keyword {@code field} holds one of
 * the given product ids, each scored with that product's MACH score (times the query boost). Per
 * segment the ids are looked up in the terms dictionary (seekExact + postings), giving a sorted
 * doc-id array with scores; a document holding several of the ids takes the largest score.
 */
public final class MachProductsQuery extends Query {
    private final String field;
    /** sorted by term, unique */
    private final BytesRef[] terms;
    private final float[] scores;
    private final String[] ids;
    private final int hash;

    public MachProductsQuery(String field, String[] productIds, float[] productScores) {
        if (productIds.length != productScores.length) {
            throw new IllegalArgumentException("ids and scores differ in length");
        }
        this.field = Objects.requireNonNull(field);
        Integer[] order = new Integer[productIds.length];
        BytesRef[] raw = new BytesRef[productIds.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
            raw[i] = new BytesRef(productIds[i]);
        }
        Arrays.sort(order, (a, b) -> raw[a].compareTo(raw[b]));
        this.terms = new BytesRef[order.length];
        this.scores = new float[order.length];
        this.ids = new String[order.length];
        for (int i = 0; i < order.length; i++) {
            terms[i] = raw[order[i]];
            scores[i] = productScores[order[i]];
            ids[i] = productIds[order[i]];
            if (i > 0 && terms[i].equals(terms[i - 1])) {
                throw new IllegalArgumentException("duplicate product id [" + ids[i] + "]");
            }
        }
        this.hash = Objects.hash(classHash(), field, Arrays.hashCode(terms), Arrays.hashCode(scores));
    }

    public String field() {
        return field;
    }

    public int size() {
        return terms.length;
    }

    @Override
    public Weight createWeight(IndexSearcher searcher, ScoreMode scoreMode, float boost) {
        return new MachProductsWeight(boost);
    }

    private final class MachProductsWeight extends Weight {
        private final float boost;

        MachProductsWeight(float boost) {
            super(MachProductsQuery.this);
            this.boost = boost;
        }

        @Override
        public ScorerSupplier scorerSupplier(LeafReaderContext context) throws IOException {
            DocScores ds = collect(context.reader());
            if (ds == null) return null;
            return new ScorerSupplier() {
                @Override
                public Scorer get(long leadCost) {
                    return new ArrayScorer(ds.docs, ds.scores, boost);
                }

                @Override
                public long cost() {
                    return ds.docs.length;
                }
            };
        }

        @Override
        public Explanation explain(LeafReaderContext context, int doc) throws IOException {
            Terms t = context.reader().terms(field);
            Bits live = context.reader().getLiveDocs();
            int best = -1;
            if (t != null && (live == null || live.get(doc))) {
                TermsEnum te = t.iterator();
                PostingsEnum pe = null;
                for (int i = 0; i < terms.length; i++) {
                    if (te.seekExact(terms[i])) {
                        pe = te.postings(pe, PostingsEnum.NONE);
                        if (pe.advance(doc) == doc && (best < 0 || scores[i] > scores[best])) best = i;
                    }
                }
            }
            if (best < 0) {
                return Explanation.noMatch("[" + field + "] holds none of the " + terms.length + " MACH products");
            }
            return Explanation.match(
                boost * scores[best],
                "mach product [" + ids[best] + "] in [" + field + "], product of:",
                Explanation.match(scores[best], "MACH score of product [" + ids[best] + "] (from the model's decoding)"),
                Explanation.match(boost, "boost")
            );
        }

        @Override
        public boolean isCacheable(LeafReaderContext ctx) {
            return true;
        }
    }

    private record DocScores(int[] docs, float[] scores) {}

    /** Matching docs of one segment, sorted, with scores; null if none. */
    private DocScores collect(LeafReader reader) throws IOException {
        Terms t = reader.terms(field);
        if (t == null) return null;
        TermsEnum te = t.iterator();
        PostingsEnum pe = null;
        Bits live = reader.getLiveDocs(); // skip deleted docs here: the arrays are exact, and so is cost()
        int[] docs = new int[Math.min(terms.length, 1024)];
        float[] s = new float[docs.length];
        int n = 0;
        for (int i = 0; i < terms.length; i++) {
            if (!te.seekExact(terms[i])) continue;
            pe = te.postings(pe, PostingsEnum.NONE);
            for (int d = pe.nextDoc(); d != DocIdSetIterator.NO_MORE_DOCS; d = pe.nextDoc()) {
                if (live != null && !live.get(d)) continue;
                if (n == docs.length) {
                    docs = Arrays.copyOf(docs, n * 2);
                    s = Arrays.copyOf(s, n * 2);
                }
                docs[n] = d;
                s[n++] = scores[i];
            }
        }
        if (n == 0) return null;
        // sort by doc, then merge duplicates (a multi-valued field holding several ids) keeping the max score
        long[] packed = new long[n];
        for (int i = 0; i < n; i++) {
            packed[i] = ((long) docs[i] << 32) | Integer.toUnsignedLong(i);
        }
        Arrays.sort(packed);
        int[] outDocs = new int[n];
        float[] outScores = new float[n];
        int m = 0;
        for (long p : packed) {
            int doc = (int) (p >>> 32);
            float score = s[(int) p];
            if (m > 0 && outDocs[m - 1] == doc) {
                outScores[m - 1] = Math.max(outScores[m - 1], score);
            } else {
                outDocs[m] = doc;
                outScores[m++] = score;
            }
        }
        return new DocScores(Arrays.copyOf(outDocs, m), Arrays.copyOf(outScores, m));
    }

    /** Iterates a sorted doc-id array. */
    private static final class ArrayScorer extends SortedDocsScorer {
        private final float[] scores;
        private final float boost;
        private final float maxScore;

        ArrayScorer(int[] docs, float[] scores, float boost) {
            super(docs);
            this.scores = scores;
            this.boost = boost;
            float max = 0;
            for (float f : scores) max = Math.max(max, f);
            this.maxScore = max * boost;
        }

        @Override
        public float score() {
            return scores[index] * boost;
        }

        @Override
        public float getMaxScore(int upTo) {
            return maxScore;
        }
    }

    @Override
    public void visit(QueryVisitor visitor) {
        // a leaf, not a term query: ids need no term statistics (dfs) nor highlighting
        if (visitor.acceptField(field)) visitor.visitLeaf(this);
    }

    @Override
    public String toString(String defaultField) {
        StringBuilder sb = new StringBuilder("mach_products(").append(field).append(": ");
        int shown = Math.min(terms.length, 5);
        for (int i = 0; i < shown; i++) {
            sb.append(i > 0 ? ", " : "").append(ids[i]).append('=').append(scores[i]);
        }
        if (terms.length > shown) sb.append(", ... ").append(terms.length - shown).append(" more");
        return sb.append(')').toString();
    }

    @Override
    public boolean equals(Object o) {
        if (sameClassAs(o) == false) return false;
        MachProductsQuery other = (MachProductsQuery) o;
        return field.equals(other.field) && Arrays.equals(terms, other.terms) && Arrays.equals(scores, other.scores);
    }

    @Override
    public int hashCode() {
        return hash;
    }
}
