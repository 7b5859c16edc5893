package org.opensearch.mach.query;

import org.apache.lucene.index.DocValues;
import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.SortedNumericDocValues;
import org.apache.lucene.search.BooleanClause;
import org.apache.lucene.search.BooleanQuery;
import org.apache.lucene.search.BoostQuery;
import org.apache.lucene.search.BulkScorer;
import org.apache.lucene.search.DocIdSetIterator;
import org.apache.lucene.search.Explanation;
import org.apache.lucene.search.FilterScorer;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.LeafCollector;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.QueryVisitor;
import org.apache.lucene.search.Scorable;
import org.apache.lucene.search.ScoreMode;
import org.apache.lucene.search.Scorer;
import org.apache.lucene.search.ScorerSupplier;
import org.apache.lucene.search.Weight;
import org.apache.lucene.util.Bits;
import org.opensearch.mach.index.BucketFields;

import java.io.IOException;
import java.util.Collection;
import java.util.List;
import java.util.Objects;

/**
 * Per-document fusion: matches what {@code inner} matches, scoring each document
 * {@code inner score + weight * MACH score}, the MACH score read from the document's codes in the
 * {@code mach_buckets} field (0 without them). Every lexical hit gets its MACH score, not only MACH's
 * top products. Top-k pruning of the inner query still works: top-level, the inner query's own bulk
 * scorer runs (Lucene's MaxScore for a disjunction) and a minimum competitive score reaches it less
 * {@code weight} times a bound on the MACH score of the documents in no top-10 bucket of any repetition
 * ({@link BucketBounds}: small for a peaked network output); those in one are merged in from a second
 * inner scorer. Nested, the max score is the inner one plus {@code weight} times the table's bound.
 */
public final class MachScoreQuery extends Query {
    /** Buckets per repetition that set a document apart for its bound (the query default m). */
    private static final int BOUND_BUCKETS = MachOptions.DEFAULT_BUCKETS_PER_REPETITION;

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
        if (!scoreMode.needsScores()) return inner.createWeight(searcher, scoreMode, boost);
        float machWeight = boost * weight;
        float[] dense = scoring.table().dense();
        float machBound = machWeight * scoring.maxScore();
        // top-k only: documents in no top bucket bounded apart, when that bound is well under the table's (a peaked output)
        BucketBounds split = null;
        Query scored = inner;
        if (scoreMode == ScoreMode.TOP_SCORES) {
            MachBucketsQuery clause = candidateClause();
            // a flat output (every document scores at least half the bound) would not use the split below: skip its selection
            if (clause != null || machWeight * scoring.score(scoring.table().minMean()) < 0.5f * machBound) {
                split = new BucketBounds(scoring, clause == null ? BOUND_BUCKETS : clause.bucketsPerRepetition());
            }
            if (clause != null) scored = withCandidates(clause.sharing(split));
        }
        Weight in = scored.createWeight(searcher, scoreMode, boost);
        float restBound = split == null ? machBound : machWeight * split.restScore();
        BucketBounds bounds = restBound < 0.5f * machBound ? split : null;
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
                    public BulkScorer bulkScorer() throws IOException {
                        BulkScorer bulk = supplier.bulkScorer();
                        SortedNumericDocValues values = DocValues.getSortedNumeric(context.reader(), field);
                        if (bounds == null) return new FusedBulkScorer(bulk, values, dense, machWeight, machBound, null, null, null);
                        BucketBounds.Candidates found = bounds.candidates(context.reader(), field, 1, true);
                        return new FusedBulkScorer(bulk, values, dense, machWeight, restBound, bounds, found, () -> in.scorerSupplier(context));
                    }

                    @Override
                    public void setTopLevelScoringClause() throws IOException {
                        supplier.setTopLevelScoringClause();
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

    /**
     * The hybrid shape: a SHOULD clause of the inner disjunction is MACH's candidates (boosted or not)
     * over this field and table. Then the fused scorer's bounds are the clause's (its m): one set of
     * candidates per segment, gathered once for the clause, the bounds and the second inner scorer.
     */
    private MachBucketsQuery candidateClause() {
        if (!(inner instanceof BooleanQuery bool)) return null;
        for (BooleanClause c : bool.clauses()) {
            if (c.occur() != BooleanClause.Occur.SHOULD) continue;
            Query q = c.query() instanceof BoostQuery b ? b.getQuery() : c.query();
            if (q instanceof MachBucketsQuery m && m.field().equals(field) && m.scoring().equals(scoring)) return m;
        }
        return null;
    }

    /** The inner disjunction with its candidate clause replaced by {@code sharing} (its boost kept). */
    private Query withCandidates(MachBucketsQuery sharing) {
        BooleanQuery bool = (BooleanQuery) inner;
        BooleanQuery.Builder b = new BooleanQuery.Builder().setMinimumNumberShouldMatch(bool.getMinimumNumberShouldMatch());
        boolean replaced = false;
        for (BooleanClause c : bool.clauses()) {
            Query q = c.query();
            if (!replaced && c.occur() == BooleanClause.Occur.SHOULD) {
                if (q instanceof BoostQuery boosted && sharing.equals(boosted.getQuery())) {
                    q = new BoostQuery(sharing, boosted.getBoost());
                    replaced = true;
                } else if (sharing.equals(q)) {
                    q = sharing;
                    replaced = true;
                }
            }
            b.add(q, c.occur());
        }
        return b.build();
    }

    /**
     * The inner query's own bulk scorer (for a disjunction, Lucene's MaxScore: block skipping with the
     * minimum competitive score), its hits fused on the way to the collector; a hit whose inner score
     * plus its MACH bound stays under the collector's minimum competitive score is not collected
     * (Lucene's own bulk scorers skip such documents too), so its codes are never read.
     *
     * <p>With {@code candidates} (a peaked table): documents in no top bucket have the small bound
     * {@code restBound}, and only that lowers the minimum passed to the inner scorer; the candidates,
     * whose bounds are larger, come from a second inner scorer advanced onto each (pruned with the
     * largest candidate bound) and are merged in doc-id order with the inner hits.
     */
    private final class FusedBulkScorer extends BulkScorer {
        private final BulkScorer in;
        private final SortedNumericDocValues values;
        private final float[] dense;
        private final float machWeight;
        private final float restBound;
        private final int[] codes;
        private final BucketBounds bounds;
        private final int[] candidates;
        private final float[] added;
        private final float candidateBound;
        private final ScorerSupplierSource second;
        private Scorer secondScorer;
        private DocIdSetIterator secondDocs;
        private int next; // the next candidate to merge
        private int innerNext; // where the inner bulk scorer goes on
        private float secondMin; // the minimum competitive score the second scorer has

        /** Where the second inner scorer comes from (made only when a candidate needs it). */
        interface ScorerSupplierSource {
            ScorerSupplier get() throws IOException;
        }

        FusedBulkScorer(
            BulkScorer in,
            SortedNumericDocValues values,
            float[] dense,
            float machWeight,
            float restBound,
            BucketBounds bounds,
            BucketBounds.Candidates found,
            ScorerSupplierSource second
        ) {
            this.in = in;
            this.values = values;
            this.dense = dense;
            this.machWeight = machWeight;
            this.restBound = restBound;
            this.codes = new int[scoring.table().repetitions()];
            this.bounds = bounds;
            this.candidates = found == null ? new int[0] : found.docs();
            this.added = found == null || found.added() == null ? new float[0] : found.added();
            float most = 0;
            for (float a : added) most = Math.max(most, a);
            this.candidateBound = machWeight * (bounds == null ? 0f : bounds.score(most));
            this.second = second;
        }

        @Override
        public int score(LeafCollector collector, Bits acceptDocs, int min, int max) throws IOException {
            while (next < candidates.length && candidates[next] < min) next++;
            FusingCollector fusing = new FusingCollector(collector, acceptDocs);
            if (innerNext < max) innerNext = in.score(fusing, acceptDocs, Math.max(min, innerNext), max);
            fusing.mergeCandidatesBefore(max);
            // the inner scorer's next hit, or an earlier candidate (which it may have pruned)
            return Math.min(innerNext, next < candidates.length ? candidates[next] : DocIdSetIterator.NO_MORE_DOCS);
        }

        @Override
        public long cost() {
            return in.cost();
        }

        private final class FusingCollector implements LeafCollector {
            private final LeafCollector out;
            private final Bits acceptDocs;
            private final FusedScorable scorable = new FusedScorable();

            FusingCollector(LeafCollector out, Bits acceptDocs) throws IOException {
                this.out = out;
                this.acceptDocs = acceptDocs;
                out.setScorer(scorable);
            }

            @Override
            public void setScorer(Scorable inner) throws IOException {
                scorable.setInner(inner);
            }

            @Override
            public void collect(int doc) throws IOException {
                mergeCandidatesBefore(doc);
                float bound = restBound;
                if (next < candidates.length && candidates[next] == doc) bound = machWeight * bounds.score(added[next++]);
                float lexical = scorable.inner.score();
                // inner + weight * mach <= inner + bound in floats too (every step is monotone)
                if (lexical + bound < scorable.minCompetitive) return;
                scorable.doc = doc;
                scorable.lexical = lexical;
                out.collect(doc);
            }

            /** Collects the candidates before {@code limit} that the inner bulk scorer passed over but the inner query matches. */
            void mergeCandidatesBefore(int limit) throws IOException {
                while (next < candidates.length && candidates[next] < limit) {
                    int c = candidates[next];
                    float bound = machWeight * bounds.score(added[next++]);
                    if (acceptDocs != null && !acceptDocs.get(c)) continue;
                    if (secondDocs == null && !openSecond()) {
                        next = candidates.length;
                        return;
                    }
                    int d = secondDocs.docID();
                    if (d < c) {
                        scorable.pruneSecond();
                        d = secondDocs.advance(c);
                    }
                    if (d != c) {
                        while (next < candidates.length && candidates[next] < Math.min(d, limit)) next++;
                        continue;
                    }
                    float lexical = secondScorer.score();
                    if (lexical + bound < scorable.minCompetitive) continue;
                    scorable.doc = c;
                    scorable.lexical = lexical;
                    out.collect(c);
                }
            }

            private boolean openSecond() throws IOException {
                ScorerSupplier supplier = second.get();
                if (supplier == null) return false;
                supplier.setTopLevelScoringClause(); // we pass it a minimum competitive score
                secondScorer = supplier.get(candidates.length);
                secondDocs = secondScorer.iterator();
                return true;
            }

            @Override
            public DocIdSetIterator competitiveIterator() throws IOException {
                return out.competitiveIterator();
            }

            @Override
            public void finish() throws IOException {
                out.finish();
            }
        }

        private final class FusedScorable extends Scorable {
            Scorable inner;
            int doc = -1;
            float lexical;
            float minCompetitive = Float.NEGATIVE_INFINITY;
            float innerSet; // the minimum competitive score the inner scorable has

            void setInner(Scorable inner) throws IOException {
                this.inner = inner;
                innerSet = 0;
                pruneInner();
            }

            @Override
            public float score() throws IOException {
                if (!values.advanceExact(doc) || !BucketFields.readCodes(values, codes)) return lexical;
                return lexical + machWeight * scoring.score(scoring.mean(dense, codes));
            }

            @Override
            public void setMinCompetitiveScore(float minScore) throws IOException {
                minCompetitive = minScore;
                pruneInner();
            }

            /** inner + weight * mach >= minScore needs inner >= minScore - bound; a margin of ulps for float sums. */
            private void pruneInner() throws IOException {
                float innerMin = minCompetitive - restBound - 2 * Math.ulp(minCompetitive);
                if (inner != null && innerMin > innerSet) {
                    innerSet = innerMin;
                    inner.setMinCompetitiveScore(innerMin);
                }
            }

            /** Before the second scorer advances (so never once exhausted), and never lower than before. */
            void pruneSecond() throws IOException {
                float innerMin = minCompetitive - candidateBound - 2 * Math.ulp(minCompetitive);
                if (innerMin > secondMin) {
                    secondMin = innerMin;
                    secondScorer.setMinCompetitiveScore(innerMin);
                }
            }

            @Override
            public Collection<ChildScorable> getChildren() {
                return inner == null ? List.of() : List.of(new ChildScorable(inner, "MUST"));
            }
        }
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
