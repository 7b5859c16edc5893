package org.opensearch.mach.query;

import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.search.BooleanClause;
import org.apache.lucene.search.Explanation;
import org.apache.lucene.search.FilterScorer;
import org.apache.lucene.search.FilterWeight;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.QueryVisitor;
import org.apache.lucene.search.ScoreMode;
import org.apache.lucene.search.Scorer;
import org.apache.lucene.search.ScorerSupplier;
import org.apache.lucene.search.Weight;

import java.io.IOException;
import java.util.Objects;

/**
 * Matches what {@code query} matches and scores each document {@code boost * max(0, scale * s + offset)},
 * s being the wrapped query's score. The min-max normalization of a lexical query's scores (scale
 * = 1 / (max - min), offset = -min / (max - min)) is such a map. scale >= 0, so the order of the
 * wrapped query's scores is kept and its score bounds map to bounds.
 */
public final class AffineScoreQuery extends Query {
    private final Query query;
    private final float scale;
    private final float offset;

    public AffineScoreQuery(Query query, float scale, float offset) {
        this.query = Objects.requireNonNull(query);
        checkMap(scale, offset);
        this.scale = scale;
        this.offset = offset;
    }

    static void checkMap(float scale, float offset) {
        if (!Float.isFinite(scale) || scale < 0) throw new IllegalArgumentException("[scale] must be a finite number >= 0, got [" + scale + "]");
        if (!Float.isFinite(offset)) throw new IllegalArgumentException("[offset] must be a finite number, got [" + offset + "]");
    }

    public Query query() {
        return query;
    }

    float map(float score) {
        return Math.max(0f, scale * score + offset);
    }

    @Override
    public Weight createWeight(IndexSearcher searcher, ScoreMode scoreMode, float boost) throws IOException {
        // the inner query scores unboosted and completely: the map needs its raw scores, and a
        // minimum competitive score set on this scorer would not translate to the inner one
        ScoreMode inner = scoreMode.needsScores() ? ScoreMode.COMPLETE : scoreMode;
        Weight in = searcher.createWeight(query, inner, 1f);
        return new FilterWeight(this, in) {
            @Override
            public ScorerSupplier scorerSupplier(LeafReaderContext context) throws IOException {
                ScorerSupplier supplier = in.scorerSupplier(context);
                if (supplier == null) return null;
                return new ScorerSupplier() {
                    @Override
                    public Scorer get(long leadCost) throws IOException {
                        Scorer s = supplier.get(leadCost);
                        return new FilterScorer(s) {
                            @Override
                            public float score() throws IOException {
                                return boost * map(in.score());
                            }

                            @Override
                            public int advanceShallow(int target) throws IOException {
                                return in.advanceShallow(target);
                            }

                            @Override
                            public float getMaxScore(int upTo) throws IOException {
                                return boost * map(in.getMaxScore(upTo));
                            }
                        };
                    }

                    @Override
                    public long cost() {
                        return supplier.cost();
                    }
                };
            }

            @Override
            public Explanation explain(LeafReaderContext context, int doc) throws IOException {
                Explanation e = in.explain(context, doc);
                if (!e.isMatch()) return e;
                float score = boost * map(e.getValue().floatValue());
                return Explanation.match(
                    score,
                    "mapped score, computed as boost * max(0, scale * score + offset) from:",
                    e,
                    Explanation.match(scale, "scale"),
                    Explanation.match(offset, "offset"),
                    Explanation.match(boost, "boost")
                );
            }
        };
    }

    @Override
    public Query rewrite(IndexSearcher searcher) throws IOException {
        Query rewritten = query.rewrite(searcher);
        return rewritten == query ? this : new AffineScoreQuery(rewritten, scale, offset);
    }

    @Override
    public void visit(QueryVisitor visitor) {
        query.visit(visitor.getSubVisitor(BooleanClause.Occur.MUST, this));
    }

    @Override
    public String toString(String field) {
        return "max(0, " + scale + " * " + query.toString(field) + " + " + offset + ")";
    }

    @Override
    public boolean equals(Object o) {
        if (!sameClassAs(o)) return false;
        AffineScoreQuery other = (AffineScoreQuery) o;
        return query.equals(other.query) && Float.compare(scale, other.scale) == 0 && Float.compare(offset, other.offset) == 0;
    }

    @Override
    public int hashCode() {
        return Objects.hash(classHash(), query, scale, offset);
    }
}
