package org.opensearch.mach.query;

import org.apache.lucene.index.DocValues;
import org.apache.lucene.index.LeafReader;
import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.SortedNumericDocValues;
import org.apache.lucene.search.Explanation;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.QueryVisitor;
import org.apache.lucene.search.ScoreMode;
import org.apache.lucene.search.Scorer;
import org.apache.lucene.search.ScorerSupplier;
import org.apache.lucene.search.Weight;
import org.apache.lucene.util.Bits;
import org.opensearch.mach.index.BucketFields;

import java.io.IOException;
import java.util.Objects;

/**
 * MACH's own candidates on a shard, the paper's candidate decoding done per segment: the documents
 * of {@code field} (a {@code mach_buckets} field) in the top-m buckets of at least f repetitions,
 * found from the postings of those R x m codes, each scored from its doc values by
 * {@link BucketScoring} (times the boost). The candidates are gathered per segment into a sorted
 * doc-id array (R m postings lists: ~39k entries at K = 1M, B = 4,096, R = 16, m = 10), each with a
 * bound from the lists it is in ({@link BucketBounds}); scores are read lazily, and top-k collection
 * skips the candidates whose bound is under its minimum competitive score without reading their codes.
 */
public final class MachBucketsQuery extends Query {
    private final String field;
    private final BucketScoring scoring;
    private final int bucketsPerRepetition;
    private final int minRepetitions;
    /** Bounds (and so gathered candidates) shared with an enclosing {@link MachScoreQuery}'s weight; null: its own. */
    private final BucketBounds shared;

    public MachBucketsQuery(String field, BucketScoring scoring, int bucketsPerRepetition, int minRepetitions) {
        this(field, scoring, bucketsPerRepetition, minRepetitions, null);
    }

    private MachBucketsQuery(String field, BucketScoring scoring, int bucketsPerRepetition, int minRepetitions, BucketBounds shared) {
        this.field = Objects.requireNonNull(field);
        this.scoring = Objects.requireNonNull(scoring);
        if (bucketsPerRepetition < 1) throw new IllegalArgumentException("buckets_per_repetition must be >= 1, got " + bucketsPerRepetition);
        if (minRepetitions < 1 || minRepetitions > scoring.table().repetitions()) {
            throw new IllegalArgumentException(
                "min_repetitions must be between 1 and R = " + scoring.table().repetitions() + ", got " + minRepetitions
            );
        }
        this.bucketsPerRepetition = bucketsPerRepetition;
        this.minRepetitions = minRepetitions;
        this.shared = shared;
    }

    /** The same query, its weight using {@code bounds} (made from the same scoring and m): their candidates gathered once per segment. */
    MachBucketsQuery sharing(BucketBounds bounds) {
        return new MachBucketsQuery(field, scoring, bucketsPerRepetition, minRepetitions, Objects.requireNonNull(bounds));
    }

    public String field() {
        return field;
    }

    public BucketScoring scoring() {
        return scoring;
    }

    public int bucketsPerRepetition() {
        return bucketsPerRepetition;
    }

    public int minRepetitions() {
        return minRepetitions;
    }

    @Override
    public Weight createWeight(IndexSearcher searcher, ScoreMode scoreMode, float boost) {
        float[] dense = scoring.table().dense();
        BucketBounds bounds = shared != null ? shared : new BucketBounds(scoring, bucketsPerRepetition);
        boolean scores = scoreMode.needsScores();
        return new Weight(this) {
            @Override
            public ScorerSupplier scorerSupplier(LeafReaderContext context) throws IOException {
                BucketBounds.Candidates found = bounds.candidates(context.reader(), field, minRepetitions, scores);
                if (found.docs().length == 0) return null;
                return new ScorerSupplier() {
                    @Override
                    public Scorer get(long leadCost) throws IOException {
                        return new CandidateScorer(found, DocValues.getSortedNumeric(context.reader(), field), dense, boost, bounds);
                    }

                    @Override
                    public long cost() {
                        return found.docs().length;
                    }
                };
            }

            @Override
            public Explanation explain(LeafReaderContext context, int doc) throws IOException {
                int R = scoring.table().repetitions();
                SortedNumericDocValues values = DocValues.getSortedNumeric(context.reader(), field);
                int[] codes = new int[R];
                Bits live = context.reader().getLiveDocs();
                if ((live != null && !live.get(doc)) || !values.advanceExact(doc) || !BucketFields.readCodes(values, codes)) {
                    return Explanation.noMatch("[" + field + "] holds no MACH buckets of R = " + R + " repetitions");
                }
                int found = repetitionsInTop(codes);
                if (found < minRepetitions) {
                    return Explanation.noMatch(
                        "in the top " + bucketsPerRepetition + " buckets of " + found + " repetitions, fewer than min_repetitions " + minRepetitions
                    );
                }
                Explanation mach = scoring.explain(dense, codes, bucketsPerRepetition);
                return Explanation.match(
                    boost * mach.getValue().floatValue(),
                    "mach candidate in [" + field + "] (top " + bucketsPerRepetition + " buckets of " + found + " repetitions), product of:",
                    mach,
                    Explanation.match(boost, "boost")
                );
            }

            @Override
            public boolean isCacheable(LeafReaderContext ctx) {
                return DocValues.isCacheable(ctx, field);
            }
        };
    }

    private int repetitionsInTop(int[] codes) {
        int B = scoring.table().buckets(), found = 0;
        for (int r = 0; r < codes.length; r++) {
            for (int b : scoring.table().topBuckets(r, bucketsPerRepetition)) {
                if (codes[r] == r * B + b) {
                    found++;
                    break;
                }
            }
        }
        return found;
    }

    /** The live documents of one segment in the top-m buckets of at least f repetitions, ascending. */
    int[] candidates(LeafReader reader) throws IOException {
        return new BucketBounds(scoring, bucketsPerRepetition).candidates(reader, field, minRepetitions, false).docs();
    }

    /**
     * Iterates a segment's candidates; scores each document from its codes when asked. Given a
     * minimum competitive score, it skips the candidates whose bound ({@link BucketBounds}) is under
     * it, so top-k reads the codes of few documents.
     */
    private final class CandidateScorer extends SortedDocsScorer {
        private final float[] added;
        private final SortedNumericDocValues values;
        private final float[] dense;
        private final float boost;
        private final float maxScore;
        private final int[] codes;
        private final BucketBounds bounds;
        private float minCompetitive = Float.NEGATIVE_INFINITY;

        CandidateScorer(BucketBounds.Candidates found, SortedNumericDocValues values, float[] dense, float boost, BucketBounds bounds) {
            super(found.docs());
            this.added = found.added();
            this.bounds = bounds;
            this.values = values;
            this.dense = dense;
            this.boost = boost;
            this.codes = new int[scoring.table().repetitions()];
            float max = boost * scoring.maxScore();
            if (added != null) {
                float most = 0;
                for (float a : added) most = Math.max(most, a);
                max = Math.min(max, bound(most));
            }
            this.maxScore = max;
        }

        /** No candidate whose lists add {@code added} scores more. */
        private float bound(float added) {
            return boost * bounds.score(added);
        }

        @Override
        public float score() throws IOException {
            if (!values.advanceExact(docID()) || !BucketFields.readCodes(values, codes)) return 0f;
            return boost * scoring.score(scoring.mean(dense, codes));
        }

        @Override
        public float getMaxScore(int upTo) {
            return maxScore;
        }

        @Override
        public void setMinCompetitiveScore(float minScore) {
            if (added != null) minCompetitive = minScore;
        }

        /** Past the candidates whose bound is under the minimum competitive score. */
        @Override
        protected int firstFrom(int i) {
            if (minCompetitive > 0) {
                while (i < docs.length && bound(added[i]) < minCompetitive) i++;
            }
            return i;
        }
    }

    @Override
    public void visit(QueryVisitor visitor) {
        if (visitor.acceptField(field)) visitor.visitLeaf(this);
    }

    @Override
    public String toString(String defaultField) {
        return "mach_buckets(" + field + ": " + scoring.family() + ", " + scoring.table() + ", m=" + bucketsPerRepetition + ", f=" + minRepetitions
            + ", " + scoring.mode().value() + ", scale=" + scoring.scale() + ", offset=" + scoring.offset() + ")";
    }

    @Override
    public boolean equals(Object o) {
        if (!sameClassAs(o)) return false;
        MachBucketsQuery q = (MachBucketsQuery) o;
        return field.equals(q.field) && scoring.equals(q.scoring) && bucketsPerRepetition == q.bucketsPerRepetition && minRepetitions == q.minRepetitions;
    }

    @Override
    public int hashCode() {
        return Objects.hash(classHash(), field, scoring, bucketsPerRepetition, minRepetitions);
    }
}
