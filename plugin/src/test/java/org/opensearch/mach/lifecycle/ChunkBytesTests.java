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
        byte[] data = randomByteArrayOfLength(3 * 1000 + 7);
        ByteArrayInputStream in = new ByteArrayInputStream(data);
        ChunkBytes first = ChunkBytes.read(in, 1000);
        assertEquals(1000, first.length());
        ChunkBytes.read(in, 1000);
        ChunkBytes.read(in, 1000);
        ChunkBytes last = ChunkBytes.read(in, 1000);
        assertEquals(7, last.length());
        assertEquals(0, ChunkBytes.read(in, 1000).length());
        assertArrayEquals(java.util.Arrays.copyOfRange(data, 0, 1000), concat(first));
    }

    public void testMoreThanTheLimitIsRefused() {
        ChunkBytes.Builder b = new ChunkBytes.Builder(10);
        b.write(new byte[10], 0, 10);
        expectThrows(IllegalArgumentException.class, () -> b.write(1));
    }
}
