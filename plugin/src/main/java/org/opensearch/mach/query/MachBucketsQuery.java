package org.opensearch.mach.query;

import org.apache.lucene.index.DocValues;
import org.apache.lucene.index.LeafReader;
import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.PostingsEnum;
import org.apache.lucene.index.SortedNumericDocValues;
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
import org.apache.lucene.util.FixedBitSet;
import org.opensearch.mach.index.BucketFields;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * MACH's own candidates on a shard, the paper's candidate decoding done per segment: the documents
 * of {@code field} (a {@code mach_buckets} field) in the top-m buckets of at least f repetitions,
 * found from the postings of those R x m codes, each scored from its doc values by
 * {@link BucketScoring} (times the boost). The candidates are gathered per segment into a sorted
 * doc-id array (R m postings lists: ~39k entries at K = 1M, B = 4,096, R = 16, m = 10); scores are
 * read lazily, so top-k collection skips reading the codes of documents it does not score.
 */
public final class MachBucketsQuery extends Query {
    private final String field;
    private final BucketScoring scoring;
    private final int bucketsPerRepetition;
    private final int minRepetitions;

    public MachBucketsQuery(String field, BucketScoring scoring, int bucketsPerRepetition, int minRepetitions) {
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
    }

    public String field() {
        return field;
    }

    public BucketScoring scoring() {
        return scoring;
    }

    @Override
    public Weight createWeight(IndexSearcher searcher, ScoreMode scoreMode, float boost) {
        float[] dense = scoring.table().dense();
        boolean scores = scoreMode.needsScores();
        Contributions contributions = scores ? contributions(dense) : null;
        return new Weight(this) {
            @Override
            public ScorerSupplier scorerSupplier(LeafReaderContext context) throws IOException {
                Candidates found = candidates(context.reader(), contributions);
                if (found.docs.length == 0) return null;
                return new ScorerSupplier() {
                    @Override
                    public Scorer get(long leadCost) throws IOException {
                        return new CandidateScorer(found, DocValues.getSortedNumeric(context.reader(), field), dense, boost, contributions);
                    }

                    @Override
                    public long cost() {
                        return found.docs.length;
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

    /**
     * A bound on a candidate's mean from the lists it is in, without reading its codes: repetition r
     * gives at most {@code rest[r]} (the largest probability outside its top m) unless the document is
     * in one of its top-m buckets b, which adds at most {@code dense[rB + b] - rest[r]}. So the mean is
     * at most {@code base + the sum of the added parts of its lists, / R}.
     */
    private record Contributions(int[][] top, float[][] added, double base) {}

    private Contributions contributions(float[] dense) {
        int R = scoring.table().repetitions(), B = scoring.table().buckets();
        int[][] top = new int[R][];
        float[][] added = new float[R][];
        double base = 0;
        for (int r = 0; r < R; r++) {
            top[r] = scoring.table().topBuckets(r, bucketsPerRepetition);
            boolean[] isTop = new boolean[B];
            for (int b : top[r]) isTop[b] = true;
            float rest = 0;
            for (int b = 0; b < B; b++) if (!isTop[b]) rest = Math.max(rest, dense[r * B + b]);
            added[r] = new float[top[r].length];
            for (int i = 0; i < top[r].length; i++) added[r][i] = Math.max(0f, dense[r * B + top[r][i]] - rest);
            base += rest;
        }
        return new Contributions(top, added, base);
    }

    /** A segment's candidates, ascending, and (when scoring) the sum of each one's added parts. */
    record Candidates(int[] docs, float[] added) {}

    /** The live documents of one segment in the top-m buckets of at least f repetitions, ascending. */
    int[] candidates(LeafReader reader) throws IOException {
        return candidates(reader, null).docs;
    }

    /** Postings are read a window of documents at a time, all lists at once: no sort, memory of one window. */
    private static final int WINDOW = 1 << 15;

    private Candidates candidates(LeafReader reader, Contributions contributions) throws IOException {
        Terms terms = reader.terms(field);
        if (terms == null) return new Candidates(new int[0], null);
        TermsEnum te = terms.iterator();
        int R = scoring.table().repetitions(), B = scoring.table().buckets();
        List<PostingsEnum> lists = new ArrayList<>();
        List<Float> listAdds = new ArrayList<>();
        for (int r = 0; r < R; r++) {
            int[] top = contributions != null ? contributions.top[r] : scoring.table().topBuckets(r, bucketsPerRepetition);
            for (int i = 0; i < top.length; i++) {
                if (!te.seekExact(BucketFields.term(r * B + top[i]))) continue;
                PostingsEnum pe = te.postings(null, PostingsEnum.NONE);
                pe.nextDoc();
                lists.add(pe);
                listAdds.add(contributions != null ? contributions.added[r][i] : 0f);
            }
        }
        if (lists.isEmpty()) return new Candidates(new int[0], null);
        Bits live = reader.getLiveDocs();
        int maxDoc = reader.maxDoc();
        int window = Math.min(WINDOW, maxDoc);
        FixedBitSet seen = new FixedBitSet(window);
        int[] count = minRepetitions > 1 ? new int[window] : null;
        float[] sum = contributions != null ? new float[window] : null;
        int[] docs = new int[64];
        float[] adds = sum != null ? new float[64] : null;
        int n = 0;
        for (int from = 0; from < maxDoc; from += window) {
            int to = Math.min(maxDoc, from + window);
            for (int l = 0; l < lists.size(); l++) {
                PostingsEnum pe = lists.get(l);
                float add = listAdds.get(l);
                for (int d = pe.docID(); d < to; d = pe.nextDoc()) {
                    int i = d - from;
                    seen.set(i);
                    if (count != null) count[i]++;
                    if (sum != null) sum[i] += add;
                }
            }
            int size = to - from;
            for (int i = seen.nextSetBit(0, size); i != DocIdSetIterator.NO_MORE_DOCS; i = i + 1 < size ? seen.nextSetBit(i + 1, size) : DocIdSetIterator.NO_MORE_DOCS) {
                int d = from + i;
                boolean keep = (count == null || count[i] >= minRepetitions) && (live == null || live.get(d));
                if (keep) {
                    if (n == docs.length) {
                        docs = Arrays.copyOf(docs, n * 2);
                        if (adds != null) adds = Arrays.copyOf(adds, n * 2);
                    }
                    docs[n] = d;
                    if (adds != null) adds[n] = sum[i];
                    n++;
                }
                if (count != null) count[i] = 0;
                if (sum != null) sum[i] = 0f;
            }
            seen.clear();
        }
        return new Candidates(Arrays.copyOf(docs, n), adds != null ? Arrays.copyOf(adds, n) : null);
    }

    /**
     * Iterates a segment's candidates; scores each document from its codes when asked. Given a
     * minimum competitive score, it skips the candidates whose bound ({@link Contributions}) is under
     * it, so top-k reads the codes of few documents.
     */
    private final class CandidateScorer extends Scorer {
        private final int[] docs;
        private final float[] added;
        private final SortedNumericDocValues values;
        private final float[] dense;
        private final float boost;
        private final float maxScore;
        private final int[] codes;
        private final double base;
        private final int repetitions;
        private float minCompetitive = Float.NEGATIVE_INFINITY;
        private int index = -1;
        private int doc = -1;

        CandidateScorer(Candidates found, SortedNumericDocValues values, float[] dense, float boost, Contributions contributions) {
            this.docs = found.docs;
            this.added = found.added;
            this.values = values;
            this.dense = dense;
            this.boost = boost;
            this.codes = new int[scoring.table().repetitions()];
            this.repetitions = codes.length;
            this.base = contributions != null ? contributions.base : 0;
            float max = boost * scoring.maxScore();
            if (added != null) {
                float most = 0;
                for (float a : added) most = Math.max(most, a);
                max = Math.min(max, bound(most));
            }
            this.maxScore = max;
        }

        /** No candidate whose added parts sum to {@code added} scores more (a relative margin covers float sums). */
        private float bound(float added) {
            return boost * scoring.score((base + added) / repetitions * (1 + 1e-4));
        }

        @Override
        public int docID() {
            return doc;
        }

        @Override
        public float score() throws IOException {
            if (!values.advanceExact(doc) || !BucketFields.readCodes(values, codes)) return 0f;
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

        @Override
        public DocIdSetIterator iterator() {
            return new DocIdSetIterator() {
                @Override
                public int docID() {
                    return doc;
                }

                @Override
                public int nextDoc() {
                    return move(index + 1);
                }

                @Override
                public int advance(int target) {
                    int from = index + 1;
                    if (from >= docs.length) return move(docs.length);
                    int pos = Arrays.binarySearch(docs, from, docs.length, target);
                    return move(pos >= 0 ? pos : -pos - 1);
                }

                @Override
                public long cost() {
                    return docs.length;
                }
            };
        }

        /** To candidate i, or the first after it that can compete. */
        private int move(int i) {
            if (minCompetitive > 0) {
                while (i < docs.length && bound(added[i]) < minCompetitive) i++;
            }
            index = i;
            doc = i < docs.length ? docs[i] : DocIdSetIterator.NO_MORE_DOCS;
            return doc;
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
