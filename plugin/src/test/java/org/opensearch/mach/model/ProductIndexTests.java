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
}
