package org.opensearch.mach.model;

import org.opensearch.test.OpenSearchTestCase;

import java.util.ArrayList;
import java.util.List;

public class ProductIndexTests extends OpenSearchTestCase {

    /** 16-bit table up to B = 65,536 (bucket 65,535 included), 32-bit above: the same buckets, members and means. */
    public void testNarrowAndWideTablesHoldTheGivenBuckets() {
        for (int B : new int[] { 7, 4096, 65_536, 70_000 }) {
            int R = randomIntBetween(1, 40), K = randomIntBetween(1, 300);
            int[][] bucketOf = new int[R][K];
            for (int r = 0; r < R; r++) {
                for (int k = 0; k < K; k++) bucketOf[r][k] = rarely() ? B - 1 : randomIntBetween(0, B - 1);
            }
            ProductIndex index = new ProductIndex(bucketOf, B);
            float[][] probs = new float[R][B];
            for (float[] row : probs) {
                for (int b = 0; b < B; b++) row[b] = randomFloat();
            }
            for (int k = 0; k < K; k++) {
                double sum = 0;
                for (int r = 0; r < R; r++) {
                    assertEquals("B=" + B + " r=" + r + " k=" + k, bucketOf[r][k], index.bucket(r, k));
                    sum += probs[r][bucketOf[r][k]];
                }
                assertEquals(sum / R, index.mean(probs, k), 0);
            }
            for (int r = 0; r < R; r++) {
                int listed = 0;
                for (int b = 0; b < B; b++) {
                    List<Integer> expected = new ArrayList<>(), found = new ArrayList<>();
                    for (int k = 0; k < K; k++) if (bucketOf[r][k] == b) expected.add(k);
                    for (int i = 0; i < index.bucketSize(r, b); i++) found.add(index.member(r, b, i));
                    assertEquals(expected, found);
                    listed += found.size();
                }
                assertEquals(K, listed);
            }
        }
    }

    public void testNarrowTableTakesHalfTheBytes() {
        int R = 16, K = 1000;
        int[][] bucketOf = new int[R][K];
        long narrow = new ProductIndex(bucketOf, 65_536).heapBytes();
        long wide = new ProductIndex(bucketOf, 65_537).heapBytes();
        // table 2 vs 4 bytes per cell; members 4 bytes per cell and the bucket starts in both
        assertEquals(2L * R * K + 4L * R, wide - narrow);
    }

    public void testLabelsRoundTripAndPack() {
        String[] ids = { "100001", "B07-XYZ", "é-ü-漢字", "x".repeat(300), "p0000001" };
        ProductLabels labels = ProductLabels.of(ids);
        assertEquals(ids.length, labels.size());
        for (int k = 0; k < ids.length; k++) assertEquals(ids[k], labels.get(k));
        assertEquals(0, ProductLabels.of().size());
        // 1M 8-character ids: bytes + one offset each, far below the ~56 bytes of a String each
        String[] many = new String[100_000];
        for (int k = 0; k < many.length; k++) many[k] = String.format(java.util.Locale.ROOT, "p%07d", k);
        assertTrue(ProductLabels.of(many).heapBytes() <= 12L * many.length + 64);
    }

    private static long threadAllocated() {
        return ((com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes();
    }

    /**
     * The catalog's index is built from the packed ids in its final arrays: the same index as from the
     * ids as strings and from the buckets as [R][K] arrays, allocating barely more than it keeps (no
     * transient [R][K] copy of the buckets, no object per id), so loading a catalog peaks near its size.
     */
    public void testBuildFromPackedIdsAllocatesLittleMoreThanTheIndex() {
        int K = 50_000, R = 16, B = randomFrom(4096, 70_000);
        long[] seeds = new long[R];
        for (int r = 0; r < R; r++) seeds[r] = randomLongBetween(0, (1L << 32) - 1);
        org.opensearch.mach.featurize.ProductHash hash = new org.opensearch.mach.featurize.ProductHash(seeds, B);
        String[] ids = new String[K];
        for (int k = 0; k < K; k++) ids[k] = randomBoolean() ? "p" + k : randomUnicodeOfLengthBetween(1, 12) + k;
        ProductLabels labels = ProductLabels.of(ids);
        ProductIndex.build(labels, hash); // warm up (class loading, compilation)
        long before = threadAllocated();
        ProductIndex index = ProductIndex.build(labels, hash);
        long allocated = threadAllocated() - before;
        assertTrue("allocated " + allocated + " for an index of " + index.heapBytes(), allocated <= index.heapBytes() + (1 << 20));

        int[][] bucketOf = new int[R][K];
        for (int k = 0; k < K; k++) {
            int[] b = hash.bucketsOf(ids[k]);
            for (int r = 0; r < R; r++) bucketOf[r][k] = b[r];
        }
        ProductIndex fromArrays = new ProductIndex(bucketOf, B), fromStrings = ProductIndex.build(ids, hash);
        for (ProductIndex other : List.of(fromArrays, fromStrings)) {
            assertEquals(index.heapBytes(), other.heapBytes());
            for (int k = 0; k < K; k++) {
                for (int r = 0; r < R; r++) assertEquals(index.bucket(r, k), other.bucket(r, k));
            }
            for (int r = 0; r < R; r++) {
                for (int b = 0; b < B; b++) {
                    assertEquals(index.bucketSize(r, b), other.bucketSize(r, b));
                    for (int i = 0; i < index.bucketSize(r, b); i++) assertEquals(index.member(r, b, i), other.member(r, b, i));
                }
            }
        }
    }
}
