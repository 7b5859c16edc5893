package org.opensearch.mach.query;

import org.apache.lucene.search.DocIdSetIterator;
import org.apache.lucene.search.Scorer;

import java.util.Arrays;

/**
 * A scorer over one segment's matches gathered up front as a sorted doc-id array: the iteration
 * (next, advance by binary search) for {@link MachProductsQuery} and {@link MachBucketsQuery}, which
 * differ only in how they score the current entry ({@link #index}) and in which entries they may skip.
 */
abstract class SortedDocsScorer extends Scorer {
    /** sorted, unique */
    protected final int[] docs;
    /** position of the current document in {@link #docs} */
    protected int index = -1;
    private int doc = -1;

    SortedDocsScorer(int[] docs) {
        this.docs = docs;
    }

    /** The first position at or after {@code i} to stop at (at most {@code docs.length}); every one by default. */
    protected int firstFrom(int i) {
        return i;
    }

    @Override
    public final int docID() {
        return doc;
    }

    @Override
    public final DocIdSetIterator iterator() {
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
        index = i < docs.length ? firstFrom(i) : i;
        doc = index < docs.length ? docs[index] : DocIdSetIterator.NO_MORE_DOCS;
        return doc;
    }
}
