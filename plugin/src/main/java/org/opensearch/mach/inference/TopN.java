package org.opensearch.mach.inference;

/**
 * Keeps the n best (id, score) pairs: higher score first, ties broken by lower id, so results
 * are deterministic. A bounded min-heap on primitives (no boxing on the per-query path).
 */
final class TopN {
    private final int capacity;
    private final int[] ids;
    private final double[] scores;
    private int size;

    TopN(int capacity) {
        this.capacity = capacity;
        this.ids = new int[capacity];
        this.scores = new double[capacity];
    }

    /** true if (a, ia) ranks below (b, ib). */
    private static boolean worse(double a, int ia, double b, int ib) {
        return a < b || (a == b && ia > ib);
    }

    void offer(int id, double score) {
        if (capacity == 0) return;
        if (size < capacity) {
            ids[size] = id;
            scores[size] = score;
            siftUp(size++);
        } else if (worse(scores[0], ids[0], score, id)) {
            ids[0] = id;
            scores[0] = score;
            siftDown(0);
        }
    }

    private void siftUp(int i) {
        while (i > 0) {
            int parent = (i - 1) >>> 1;
            if (!worse(scores[i], ids[i], scores[parent], ids[parent])) break;
            swap(i, parent);
            i = parent;
        }
    }

    private void siftDown(int i) {
        while (true) {
            int l = 2 * i + 1, r = l + 1, min = i;
            if (l < size && worse(scores[l], ids[l], scores[min], ids[min])) min = l;
            if (r < size && worse(scores[r], ids[r], scores[min], ids[min])) min = r;
            if (min == i) return;
            swap(i, min);
            i = min;
        }
    }

    private void swap(int a, int b) {
        int ti = ids[a];
        ids[a] = ids[b];
        ids[b] = ti;
        double ts = scores[a];
        scores[a] = scores[b];
        scores[b] = ts;
    }

    /** The ids, best first; empties the heap. */
    int[] drainBestFirst() {
        int[] out = new int[size];
        for (int i = size - 1; i >= 0; i--) {
            out[i] = ids[0];
            ids[0] = ids[size - 1];
            scores[0] = scores[size - 1];
            size--;
            siftDown(0);
        }
        return out;
    }
}
