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
import org.opensearch.mach.index.BucketFields;

import java.io.IOException;
import java.util.Arrays;
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
        return new Weight(this) {
            @Override
            public ScorerSupplier scorerSupplier(LeafReaderContext context) throws IOException {
                int[] docs = candidates(context.reader());
                if (docs.length == 0) return null;
                return new ScorerSupplier() {
                    @Override
                    public Scorer get(long leadCost) throws IOException {
                        return new CandidateScorer(docs, DocValues.getSortedNumeric(context.reader(), field), dense, boost);
                    }

                    @Override
                    public long cost() {
                        return docs.length;
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
        Terms terms = reader.terms(field);
        if (terms == null) return new int[0];
        TermsEnum te = terms.iterator();
        PostingsEnum pe = null;
        Bits live = reader.getLiveDocs();
        int B = scoring.table().buckets();
        int[] docs = new int[64];
        int n = 0;
        for (int r = 0; r < scoring.table().repetitions(); r++) {
            for (int b : scoring.table().topBuckets(r, bucketsPerRepetition)) {
                if (!te.seekExact(BucketFields.term(r * B + b))) continue;
                pe = te.postings(pe, PostingsEnum.NONE);
                for (int d = pe.nextDoc(); d != DocIdSetIterator.NO_MORE_DOCS; d = pe.nextDoc()) {
                    if (live != null && !live.get(d)) continue;
                    if (n == docs.length) docs = Arrays.copyOf(docs, n * 2);
                    docs[n++] = d;
                }
            }
        }
        // a document occurs once per repetition whose top-m holds its bucket: keep those seen f times or more
        Arrays.sort(docs, 0, n);
        int out = 0;
        for (int i = 0; i < n;) {
            int j = i;
            while (j < n && docs[j] == docs[i]) j++;
            if (j - i >= minRepetitions) docs[out++] = docs[i];
            i = j;
        }
        return Arrays.copyOf(docs, out);
    }

    /** Iterates a sorted doc-id array; scores each document from its codes when asked. */
    private final class CandidateScorer extends Scorer {
        private final int[] docs;
        private final SortedNumericDocValues values;
        private final float[] dense;
        private final float boost;
        private final float maxScore;
        private final int[] codes;
        private int index = -1;
        private int doc = -1;

        CandidateScorer(int[] docs, SortedNumericDocValues values, float[] dense, float boost) {
            this.docs = docs;
            this.values = values;
            this.dense = dense;
            this.boost = boost;
            this.maxScore = boost * scoring.maxScore();
            this.codes = new int[scoring.table().repetitions()];
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

        private int move(int i) {
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
