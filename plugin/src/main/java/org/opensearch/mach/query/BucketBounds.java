package org.opensearch.mach.query;

import org.apache.lucene.index.LeafReader;
import org.apache.lucene.index.PostingsEnum;
import org.apache.lucene.index.Terms;
import org.apache.lucene.index.TermsEnum;
import org.apache.lucene.search.DocIdSetIterator;
import org.apache.lucene.util.Bits;
import org.apache.lucene.util.FixedBitSet;
import org.apache.lucene.util.IntsRefBuilder;
import org.opensearch.mach.index.BucketFields;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Upper bounds on MACH scores from the top-m bucket lists a document is in, without reading its
 * codes. Repetition r gives a document at most {@code rest[r]}, the largest probability outside its
 * top m, unless the document is in one of those top-m buckets b, which adds at most
 * {@code dense[rB + b] - rest[r]}: the mean is at most {@code (base + the added parts of its lists) / R}.
 * With a peaked network output, {@code base / R} is far below the table's bound: documents in no
 * top-m bucket cannot score much.
 *
 * <p>One instance belongs to one weight tree (one search): a segment's candidates are gathered once
 * and handed to every scorer that asks again (the hybrid shape asks three times: the candidate
 * clause, the fused scorer's bounds, the fused scorer's second inner scorer).
 */
final class BucketBounds {
    /** Postings are read a window of documents at a time, all lists at once: no sort, memory of one window. */
    private static final int WINDOW = 1 << 16;
    /** Relative slack over float sums (16 terms: ~1e-6), so a bound never falls under a score. */
    private static final double SLACK = 1 + 1e-4;
    /** Up to this f (min_repetitions), candidates without bounds are counted in f bit sets over the segment; above, through a sort. */
    static final int BIT_SET_REPETITIONS = 4;

    /** A segment's live documents in the top-m buckets of at least f repetitions, ascending, and each one's added parts. */
    record Candidates(int[] docs, float[] added) {}

    private final BucketScoring scoring;
    private final int[][] top;
    private final float[][] added;
    private final double base;
    /** Per segment (reader identity) and way of gathering; one search's weights live only as long as it. */
    private final Map<Gathered, Candidates> gathered = new ConcurrentHashMap<>();

    private record Gathered(LeafReader reader, String field, int minRepetitions, boolean withAdded) {}

    BucketBounds(BucketScoring scoring, int bucketsPerRepetition) {
        this.scoring = scoring;
        float[] dense = scoring.table().dense();
        int R = scoring.table().repetitions(), B = scoring.table().buckets();
        top = new int[R][];
        added = new float[R][];
        double sum = 0;
        boolean[] isTop = new boolean[B];
        for (int r = 0; r < R; r++) {
            float rest;
            if (scoring.table().sentBuckets(r) == B) {
                // every bucket sent: the best one outside the top m is the (m + 1)-th (its score, as the scores rise with the
                // probability), one selection instead of a selection and a scan of all B
                int[] next = scoring.table().topBuckets(r, bucketsPerRepetition + 1);
                top[r] = Arrays.copyOf(next, Math.min(bucketsPerRepetition, next.length));
                rest = next.length > bucketsPerRepetition ? Math.max(0f, dense[r * B + next[bucketsPerRepetition]]) : 0f;
            } else {
                top[r] = scoring.table().topBuckets(r, bucketsPerRepetition);
                Arrays.fill(isTop, false);
                for (int b : top[r]) isTop[b] = true;
                rest = scoring.table().maxOutside(r, isTop);
            }
            added[r] = new float[top[r].length];
            for (int i = 0; i < top[r].length; i++) added[r][i] = Math.max(0f, dense[r * B + top[r][i]] - rest);
            sum += rest;
        }
        base = sum;
    }

    /** No document whose lists add up to {@code added} has a higher MACH score (times nothing: the scoring's own map). */
    float score(float added) {
        return scoring.score((base + added) / top.length * SLACK);
    }

    /** No document in no top-m list has a higher MACH score. */
    float restScore() {
        return score(0f);
    }

    /** The candidates of one segment from the postings of the R x m lists, with their added parts when {@code withAdded}; gathered once. */
    Candidates candidates(LeafReader reader, String field, int minRepetitions, boolean withAdded) throws IOException {
        Gathered key = new Gathered(reader, field, minRepetitions, withAdded); // (IndexReader's equals is identity)
        Candidates found = gathered.get(key);
        if (found == null) {
            found = gather(reader, field, minRepetitions, withAdded);
            gathered.putIfAbsent(key, found); // a race gathers twice, the same candidates
        }
        return found;
    }

    private Candidates gather(LeafReader reader, String field, int minRepetitions, boolean withAdded) throws IOException {
        Terms terms = reader.terms(field);
        if (terms == null) return new Candidates(new int[0], null);
        TermsEnum te = terms.iterator();
        int B = scoring.table().buckets();
        Bits live = reader.getLiveDocs();
        int maxDoc = reader.maxDoc();
        int window = Math.min(WINDOW, maxDoc);
        if (!withAdded) {
            // as Lucene's DocIdSetBuilder: bit sets once the lists hold over 1/128 of the segment (each about 1/B of it:
            // the hash spreads products evenly), a sorted array of ids for fewer
            int lists = 0;
            for (int[] t : top) lists += t.length;
            boolean dense = (long) lists * 128 >= B;
            return dense && minRepetitions <= BIT_SET_REPETITIONS ? inBitSets(te, live, maxDoc, minRepetitions) : members(te, live, minRepetitions);
        }
        Window w = new Window(window, minRepetitions, withAdded);
        if (maxDoc <= WINDOW) {
            // one window: each list read in turn
            eachList(te, (pe, r, i) -> w.add(pe, 0, maxDoc, added[r][i]));
            w.emit(0, maxDoc, live, minRepetitions);
            return w.candidates();
        }
        List<PostingsEnum> lists = new ArrayList<>();
        List<Float> listAdded = new ArrayList<>();
        for (int r = 0; r < top.length; r++) {
            for (int i = 0; i < top[r].length; i++) {
                if (!te.seekExact(BucketFields.term(r * B + top[r][i]))) continue;
                PostingsEnum pe = te.postings(null, PostingsEnum.NONE);
                pe.nextDoc();
                lists.add(pe);
                listAdded.add(added[r][i]);
            }
        }
        for (int from = 0; from < maxDoc; from += window) {
            int size = Math.min(maxDoc - from, window);
            for (int l = 0; l < lists.size(); l++) w.add(lists.get(l), from, size, listAdded.get(l));
            w.emit(from, size, live, minRepetitions);
        }
        return w.candidates();
    }

    /**
     * Without bounds, in f lists or more (f <= {@link #BIT_SET_REPETITIONS}): f bit sets over the segment, the i-th
     * holding the documents seen in more than i lists (f = 1: the union, or-ed list by list), the last read in doc
     * order. No sort: at 1M documents sorting the ~39,000 members of 160 lists took about a third of a hybrid query
     * in JMH; f x 125 KB of bits per 1M documents instead.
     */
    private Candidates inBitSets(TermsEnum te, Bits live, int maxDoc, int f) throws IOException {
        FixedBitSet[] seen = new FixedBitSet[f];
        for (int i = 0; i < f; i++) seen[i] = new FixedBitSet(maxDoc);
        eachList(te, (pe, r, i) -> {
            if (f == 1) {
                seen[0].or(pe);
                return;
            }
            // a document is once in a list: it climbs one level per list it is in
            for (int d = pe.nextDoc(); d != DocIdSetIterator.NO_MORE_DOCS; d = pe.nextDoc()) {
                for (int level = 0; level < f && seen[level].getAndSet(d); level++) {}
            }
        });
        FixedBitSet enough = seen[f - 1];
        int[] docs = new int[enough.cardinality()];
        int n = 0;
        for (int d = enough.nextSetBit(0); d != DocIdSetIterator.NO_MORE_DOCS; d = d + 1 < maxDoc ? enough.nextSetBit(d + 1) : DocIdSetIterator.NO_MORE_DOCS) {
            if (live == null || live.get(d)) docs[n++] = d;
        }
        return new Candidates(n == docs.length ? docs : Arrays.copyOf(docs, n), null);
    }

    /** Without bounds, few lists or f > {@link #BIT_SET_REPETITIONS}: every list read in turn into one array, sorted, then those seen f times or more. */
    private Candidates members(TermsEnum te, Bits live, int minRepetitions) throws IOException {
        IntsRefBuilder read = new IntsRefBuilder();
        eachList(te, (pe, r, i) -> {
            for (int d = pe.nextDoc(); d != DocIdSetIterator.NO_MORE_DOCS; d = pe.nextDoc()) {
                if (live == null || live.get(d)) read.append(d);
            }
        });
        int[] docs = read.ints();
        int n = read.length();
        // a document occurs once per repetition whose top-m holds its bucket
        Arrays.sort(docs, 0, n);
        int out = 0;
        for (int i = 0; i < n;) {
            int j = i;
            while (j < n && docs[j] == docs[i]) j++;
            if (j - i >= minRepetitions) docs[out++] = docs[i];
            i = j;
        }
        return new Candidates(Arrays.copyOf(docs, out), null);
    }

    /** What {@link #eachList} does with each top-m list: its postings, positioned before its first document. */
    @FunctionalInterface
    private interface ListReader {
        void read(PostingsEnum postings, int repetition, int rank) throws IOException;
    }

    /** Reads the postings of each repetition's top-m buckets present in the segment, one after the other (one enum reused). */
    private void eachList(TermsEnum te, ListReader reader) throws IOException {
        int B = scoring.table().buckets();
        PostingsEnum pe = null;
        for (int r = 0; r < top.length; r++) {
            for (int i = 0; i < top[r].length; i++) {
                if (!te.seekExact(BucketFields.term(r * B + top[r][i]))) continue;
                pe = te.postings(pe, PostingsEnum.NONE);
                reader.read(pe, r, i);
            }
        }
    }

    /** The accumulators of one window of documents, and the candidates found so far. */
    private static final class Window {
        final FixedBitSet seen;
        final int[] count;
        final float[] sum;
        int[] docs = new int[64];
        float[] adds;
        int n;

        Window(int size, int minRepetitions, boolean withAdded) {
            seen = new FixedBitSet(size);
            count = minRepetitions > 1 ? new int[size] : null;
            sum = withAdded ? new float[size] : null;
            adds = withAdded ? new float[64] : null;
        }

        /** Marks the documents of a list (positioned on or before its first in the window) in [from, from + size). */
        void add(PostingsEnum pe, int from, int size, float add) throws IOException {
            int d = pe.docID() < from ? pe.advance(from) : pe.docID();
            for (; d < from + size; d = pe.nextDoc()) {
                int i = d - from;
                seen.set(i);
                if (count != null) count[i]++;
                if (sum != null) sum[i] += add;
            }
        }

        /** Keeps the live documents of the window seen in enough lists, then clears it. */
        void emit(int from, int size, Bits live, int minRepetitions) {
            for (int i = seen.nextSetBit(0, size); i != DocIdSetIterator.NO_MORE_DOCS; i = i + 1 < size ? seen.nextSetBit(i + 1, size) : DocIdSetIterator.NO_MORE_DOCS) {
                int d = from + i;
                if ((count == null || count[i] >= minRepetitions) && (live == null || live.get(d))) {
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

        Candidates candidates() {
            return new Candidates(Arrays.copyOf(docs, n), adds != null ? Arrays.copyOf(adds, n) : null);
        }
    }
}
