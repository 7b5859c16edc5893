package org.opensearch.mach.lifecycle;

import org.opensearch.test.OpenSearchTestCase;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;

public class ChunkBytesTests extends OpenSearchTestCase {

    private static byte[] concat(ChunkBytes c) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : c.parts()) out.write(p, 0, p.length);
        return out.toByteArray();
    }

    public void testPartsAreSmallAndHoldTheBytesInOrder() {
        byte[] data = randomByteArrayOfLength(2 * ChunkBytes.PART_BYTES + randomIntBetween(1, 1000));
        ChunkBytes c = ChunkBytes.of(data);
        assertEquals(3, c.parts().size());
        for (byte[] p : c.parts()) assertTrue(p.length <= ChunkBytes.PART_BYTES);
        assertArrayEquals(data, concat(c));
        assertEquals(data.length, c.length());
        assertEquals(BundleStore.sha256(data), c.sha256());
    }

    public void testWritesOfAnySizeGiveTheSameParts() {
        byte[] data = randomByteArrayOfLength(ChunkBytes.PART_BYTES + 5);
        ChunkBytes.Builder b = new ChunkBytes.Builder(Long.MAX_VALUE);
        for (int off = 0; off < data.length;) {
            int n = Math.min(data.length - off, randomIntBetween(1, 70_000));
            b.write(data, off, n);
            off += n;
        }
        ChunkBytes c = b.build();
        assertArrayEquals(data, concat(c));
        assertEquals(2, c.parts().size());
        assertEquals(BundleStore.sha256(data), c.sha256());
    }

    public void testReadCutsAStreamIntoChunks() throws Exception {
        // chunks both smaller and larger than a part (a stored chunk spans several parts)
        for (int max : new int[] { 1000, 2 * ChunkBytes.PART_BYTES + 5 }) {
            byte[] data = randomByteArrayOfLength(3 * max + 7);
            ByteArrayInputStream in = new ByteArrayInputStream(data);
            for (int c = 0; c < 4; c++) {
                ChunkBytes chunk = ChunkBytes.read(in, max);
                int from = c * max, to = Math.min(data.length, from + max);
                assertEquals("max " + max + " chunk " + c, to - from, chunk.length());
                byte[] expected = java.util.Arrays.copyOfRange(data, from, to);
                assertArrayEquals("max " + max + " chunk " + c, expected, concat(chunk));
                assertEquals(BundleStore.sha256(expected), chunk.sha256());
            }
            assertEquals(0, ChunkBytes.read(in, max).length());
        }
    }

    public void testMoreThanTheLimitIsRefused() {
        ChunkBytes.Builder b = new ChunkBytes.Builder(10);
        b.write(new byte[10], 0, 10);
        expectThrows(IllegalArgumentException.class, () -> b.write(1));
    }
}
