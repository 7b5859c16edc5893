package org.opensearch.mach.index;

import org.apache.lucene.document.Field;
import org.apache.lucene.document.FieldType;
import org.apache.lucene.document.SortedNumericDocValuesField;
import org.apache.lucene.index.IndexOptions;
import org.apache.lucene.index.IndexableField;
import org.apache.lucene.index.SortedNumericDocValues;
import org.apache.lucene.util.BytesRef;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The Lucene encoding of a document's MACH buckets (spec/bundle-format.md, "Hash families"): for each
 * repetition r, the code {@code r * B + b} of its bucket b, indexed as a 4-byte big-endian term (so
 * "all documents in bucket b of repetition r" is one postings list) and as a sorted-numeric doc value
 * (so a scorer reads a document's R buckets, in repetition order). The mapper writes these fields and
 * the shard queries read them; nothing else may know the encoding.
 */
public final class BucketFields {
    /** The mapping type of the field. */
    public static final String TYPE = "mach_buckets";

    static final FieldType INDEXED = new FieldType();
    static {
        INDEXED.setIndexOptions(IndexOptions.DOCS);
        INDEXED.setTokenized(false);
        INDEXED.setOmitNorms(true);
        INDEXED.setStored(false);
        INDEXED.freeze();
    }

    private BucketFields() {}

    /** The indexed term of a code. */
    public static BytesRef term(int code) {
        return new BytesRef(new byte[] { (byte) (code >>> 24), (byte) (code >>> 16), (byte) (code >>> 8), (byte) code });
    }

    /** The Lucene fields of one document whose product has these codes (ascending, one per repetition). */
    public static List<IndexableField> fields(String field, int[] codes) {
        List<IndexableField> out = new ArrayList<>(2 * codes.length);
        for (int code : codes) {
            out.add(new Field(field, term(code), INDEXED));
            out.add(new SortedNumericDocValuesField(field, code));
        }
        return out;
    }

    /**
     * Reads the current document's codes into {@code codes} (length R) from doc values positioned on it
     * ({@code advanceExact} returned true); false when the document holds another number of codes.
     */
    public static boolean readCodes(SortedNumericDocValues values, int[] codes) throws IOException {
        if (values.docValueCount() != codes.length) return false;
        for (int r = 0; r < codes.length; r++) {
            codes[r] = (int) values.nextValue();
        }
        return true;
    }
}
