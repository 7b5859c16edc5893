package org.opensearch.mach.query;

import org.apache.lucene.index.DocValues;
import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.SortedNumericDocValues;
import org.apache.lucene.search.BooleanClause;
import org.apache.lucene.search.Explanation;
import org.apache.lucene.search.FilterScorer;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.QueryVisitor;
import org.apache.lucene.search.ScoreMode;
import org.apache.lucene.search.Scorer;
import org.apache.lucene.search.ScorerSupplier;
import org.apache.lucene.search.Weight;
import org.opensearch.mach.index.BucketFields;

import java.io.IOException;
import java.util.Objects;

/**
 * Per-document fusion: matches what {@code inner} matches, scoring each document
 * {@code inner score + weight * MACH score}, the MACH score read from the document's codes in the
 * {@code mach_buckets} field (0 without them). Every lexical hit gets its MACH score, not only MACH's
 * top products. Top-k pruning of the inner query still works: the max score is the inner one plus
 * {@code weight} times the table's bound, and a minimum competitive score reaches the inner scorer
 * less that bound.
 */
public final class MachScoreQuery extends Query {
    private final Query inner;
    private final String field;
    private final BucketScoring scoring;
    private final float weight;

    public MachScoreQuery(Query inner, String field, BucketScoring scoring, float weight) {
        this.inner = Objects.requireNonNull(inner);
        this.field = Objects.requireNonNull(field);
        this.scoring = Objects.requireNonNull(scoring);
        if (!Float.isFinite(weight) || weight < 0) throw new IllegalArgumentException("the MACH weight must be finite and >= 0, got " + weight);
        this.weight = weight;
    }

    public Query inner() {
        return inner;
    }

    @Override
    public Weight createWeight(IndexSearcher searcher, ScoreMode scoreMode, float boost) throws IOException {
        Weight in = inner.createWeight(searcher, scoreMode, boost);
        if (!scoreMode.needsScores()) return in;
        float machWeight = boost * weight;
        float[] dense = scoring.table().dense();
        float machBound = machWeight * scoring.maxScore();
        return new Weight(this) {
            @Override
            public ScorerSupplier scorerSupplier(LeafReaderContext context) throws IOException {
                ScorerSupplier supplier = in.scorerSupplier(context);
                if (supplier == null) return null;
                return new ScorerSupplier() {
                    @Override
                    public Scorer get(long leadCost) throws IOException {
                        return new FusedScorer(supplier.get(leadCost), DocValues.getSortedNumeric(context.reader(), field), dense, machWeight, machBound);
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
                SortedNumericDocValues values = DocValues.getSortedNumeric(context.reader(), field);
                int[] codes = new int[scoring.table().repetitions()];
                Explanation mach = values.advanceExact(doc) && BucketFields.readCodes(values, codes)
                    ? scoring.explain(dense, codes, 0)
                    : Explanation.match(0f, "[" + field + "] holds no MACH buckets: MACH score 0");
                float part = machWeight * mach.getValue().floatValue();
                return Explanation.match(
                    e.getValue().floatValue() + part,
                    "sum of:",
                    e,
                    Explanation.match(part, "mach_weight * MACH score, product of:", Explanation.match(machWeight, "mach_weight"), mach)
                );
            }

            @Override
            public boolean isCacheable(LeafReaderContext ctx) {
                return in.isCacheable(ctx) && DocValues.isCacheable(ctx, field);
            }
        };
    }

    private final class FusedScorer extends FilterScorer {
        private final SortedNumericDocValues values;
        private final float[] dense;
        private final float machWeight;
        private final float machBound;
        private final int[] codes;

        FusedScorer(Scorer in, SortedNumericDocValues values, float[] dense, float machWeight, float machBound) {
            super(in);
            this.values = values;
            this.dense = dense;
            this.machWeight = machWeight;
            this.machBound = machBound;
            this.codes = new int[scoring.table().repetitions()];
        }

        @Override
        public float score() throws IOException {
            float lexical = in.score();
            int doc = in.docID();
            if (!values.advanceExact(doc) || !BucketFields.readCodes(values, codes)) return lexical;
            return lexical + machWeight * scoring.score(scoring.mean(dense, codes));
        }

        @Override
        public int advanceShallow(int target) throws IOException {
            return in.advanceShallow(target);
        }

        @Override
        public float getMaxScore(int upTo) throws IOException {
            return in.getMaxScore(upTo) + machBound;
        }

        @Override
        public void setMinCompetitiveScore(float minScore) throws IOException {
            // inner + weight * mach >= minScore needs inner >= minScore - weight * bound; a margin of ulps for float sums
            float innerMin = minScore - machBound - 2 * Math.ulp(minScore);
            if (innerMin > 0) in.setMinCompetitiveScore(innerMin);
        }
    }

    @Override
    public Query rewrite(IndexSearcher searcher) throws IOException {
        Query rewritten = inner.rewrite(searcher);
        return rewritten == inner ? this : new MachScoreQuery(rewritten, field, scoring, weight);
    }

    @Override
    public void visit(QueryVisitor visitor) {
        inner.visit(visitor.getSubVisitor(BooleanClause.Occur.MUST, this));
    }

    @Override
    public String toString(String defaultField) {
        return "mach_score(" + inner.toString(defaultField) + " + " + weight + " * mach(" + field + ": " + scoring.family() + ", " + scoring.table() + "))";
    }

    @Override
    public boolean equals(Object o) {
        if (!sameClassAs(o)) return false;
        MachScoreQuery q = (MachScoreQuery) o;
        return inner.equals(q.inner) && field.equals(q.field) && scoring.equals(q.scoring) && Float.compare(weight, q.weight) == 0;
    }

    @Override
    public int hashCode() {
        return Objects.hash(classHash(), inner, field, scoring, weight);
    }
}
