package org.opensearch.mach.index;

import org.apache.lucene.document.Document;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.SortedSetDocValuesField;
import org.apache.lucene.document.StringField;
import org.apache.lucene.index.IndexWriter;
import org.apache.lucene.index.IndexWriterConfig;
import org.apache.lucene.store.Directory;
import org.apache.lucene.store.FSDirectory;
import org.apache.lucene.util.BytesRef;
import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.test.OpenSearchTestCase;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;

/**
 * What the mach_buckets field adds to an index, per product: N synthetic products indexed with only
 * their product-id keyword (terms + sorted-set doc values, as OpenSearch's keyword writes it), then with
 * the bucket codes as well, each force-merged to one segment. N = 20,000 by default (a quick bound
 * check); docs/performance.md's figures use {@code -Dtests.mach.products=200000}.
 */
public class BucketFieldsIndexSizeTests extends OpenSearchTestCase {
    private static final int PRODUCTS = Integer.getInteger("tests.mach.products", 20_000);

    /** Bytes of the one-segment index, in total and by file extension (postings .doc, terms .tim/.tip, doc values .dvd...). */
    private java.util.Map<String, Long> indexBytes(Path path, HashFamily family) throws IOException {
        try (Directory dir = FSDirectory.open(path)) {
            try (IndexWriter w = new IndexWriter(dir, noCompoundFiles(new IndexWriterConfig().setRAMBufferSizeMB(64)))) {
                for (int i = 0; i < PRODUCTS; i++) {
                    String id = String.format(Locale.ROOT, "SKU-%09d", (long) i * 7_919 + 13);
                    Document doc = new Document();
                    doc.add(new StringField("product_id", id, Field.Store.NO));
                    doc.add(new SortedSetDocValuesField("product_id", new BytesRef(id)));
                    if (family != null) {
                        for (var f : BucketFields.fields("buckets", family.codesOf(id))) doc.add(f);
                    }
                    w.addDocument(doc);
                }
                w.forceMerge(1);
                w.commit();
            }
            java.util.Map<String, Long> bytes = new java.util.TreeMap<>();
            for (String f : dir.listAll()) {
                long n = dir.fileLength(f);
                bytes.merge("total", n, Long::sum);
                bytes.merge(f.substring(f.lastIndexOf('.') + 1), n, Long::sum);
            }
            return bytes;
        }
    }

    /** Separate files per part, so the figures split into postings, terms and doc values. */
    private static IndexWriterConfig noCompoundFiles(IndexWriterConfig config) {
        config.setUseCompoundFile(false);
        config.getMergePolicy().setNoCFSRatio(0.0);
        return config;
    }

    public void testBytesPerProduct() throws IOException {
        java.util.Map<String, Long> baseFiles = indexBytes(createTempDir(), null);
        long base = baseFiles.get("total");
        for (String name : new String[] { "murmur3_x86_32-r16-b4096-s1296122696", "murmur3_x86_32-r32-b20000-s1296122696" }) {
            HashFamily family = HashFamily.parse(name);
            java.util.Map<String, Long> withFiles = indexBytes(createTempDir(), family);
            long with = withFiles.get("total");
            double perProduct = (double) (with - base) / PRODUCTS;
            StringBuilder byFile = new StringBuilder();
            for (var e : withFiles.entrySet()) {
                long added = e.getValue() - baseFiles.getOrDefault(e.getKey(), 0L);
                if (!e.getKey().equals("total") && added > PRODUCTS) {
                    byFile.append(String.format(Locale.ROOT, " .%s +%.1f", e.getKey(), (double) added / PRODUCTS));
                }
            }
            logger.info("mach_buckets R{} B{}: bytes/product by file:{}", family.repetitions(), family.buckets(), byFile);
            logger.info(
                "mach_buckets R{} B{}: {} products, index {} -> {} bytes: +{} bytes/product ({} per repetition)",
                family.repetitions(), family.buckets(), PRODUCTS, base, with,
                String.format(Locale.ROOT, "%.1f", perProduct), String.format(Locale.ROOT, "%.2f", perProduct / family.repetitions())
            );
            // a posting (~1 byte) and a doc value (~log2(R*B)/8 bytes) per repetition, with slack for small N's fixed costs
            assertTrue(perProduct + " bytes/product", perProduct > family.repetitions());
            assertTrue(perProduct + " bytes/product", perProduct < 8 * family.repetitions());
        }
    }
}
