package org.opensearch.mach.index;

import org.apache.lucene.document.SortedNumericDocValuesField;
import org.apache.lucene.index.DirectoryReader;
import org.apache.lucene.index.IndexOptions;
import org.apache.lucene.index.IndexableField;
import org.apache.lucene.index.LeafReader;
import org.apache.lucene.index.SortedNumericDocValues;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.util.BytesRef;
import org.opensearch.index.mapper.DocumentMapper;
import org.opensearch.index.mapper.MappedFieldType;
import org.opensearch.index.mapper.MapperParsingException;
import org.opensearch.index.mapper.MapperService;
import org.opensearch.index.mapper.MapperServiceTestCase;
import org.opensearch.index.mapper.ParsedDocument;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.mach.MachPlugin;
import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.plugins.Plugin;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;

public class MachBucketsFieldMapperTests extends MapperServiceTestCase {
    private static final String FAMILY = "murmur3_x86_32-r16-b4096-s1296122696";
    private static final HashFamily F = HashFamily.parse(FAMILY);

    @Override
    protected Collection<? extends Plugin> getPlugins() {
        return List.of(new MachPlugin());
    }

    private DocumentMapper mapper(String family) throws IOException {
        return createDocumentMapper(fieldMapping(b -> b.field("type", "mach_buckets").field("hash_family", family)));
    }

    /** The document's codes, as the indexed terms and as the doc values, each in field order. */
    private static int[] termCodes(ParsedDocument doc, String field) {
        List<Integer> codes = new ArrayList<>();
        for (IndexableField f : doc.rootDoc().getFields(field)) {
            if (f.fieldType().indexOptions() == IndexOptions.DOCS) {
                BytesRef t = f.binaryValue();
                assertEquals(4, t.length);
                codes.add(((t.bytes[t.offset] & 0xFF) << 24) | ((t.bytes[t.offset + 1] & 0xFF) << 16) | ((t.bytes[t.offset + 2] & 0xFF) << 8)
                    | (t.bytes[t.offset + 3] & 0xFF));
            }
        }
        return codes.stream().mapToInt(Integer::intValue).toArray();
    }

    private static int[] docValueCodes(ParsedDocument doc, String field) {
        return Arrays.stream(doc.rootDoc().getFields(field))
            .filter(f -> f instanceof SortedNumericDocValuesField)
            .mapToInt(f -> f.numericValue().intValue())
            .toArray();
    }

    public void testCodesAreTheFamilysCodes() throws IOException {
        DocumentMapper mapper = mapper(FAMILY);
        for (String id : List.of("p1", "205013347", "ÉCRAN-42", randomAlphaOfLengthBetween(1, 30))) {
            ParsedDocument doc = mapper.parse(source(b -> b.field("field", id)));
            int[] expected = F.codesOf(id);
            assertEquals(16, expected.length);
            assertArrayEquals(id, expected, termCodes(doc, "field"));
            assertArrayEquals(id, expected, docValueCodes(doc, "field"));
            for (int r = 0; r < 16; r++) {
                assertTrue(expected[r] >= r * 4096 && expected[r] < (r + 1) * 4096);
            }
        }
        assertFalse(Arrays.equals(F.codesOf("p1"), F.codesOf("p2")));
    }

    public void testFamilyOfTheFieldType() throws IOException {
        MapperService service = createMapperService(fieldMapping(b -> b.field("type", "mach_buckets").field("hash_family", FAMILY)));
        MappedFieldType type = service.fieldType("field");
        assertTrue(type instanceof MachBucketsFieldMapper.BucketsFieldType);
        assertEquals(F, ((MachBucketsFieldMapper.BucketsFieldType) type).family());
        assertEquals("mach_buckets", type.typeName());
    }

    public void testNumberIsTakenAsItsText() throws IOException {
        ParsedDocument doc = mapper(FAMILY).parse(source(b -> b.field("field", 205013347)));
        assertArrayEquals(F.codesOf("205013347"), termCodes(doc, "field"));
    }

    public void testNullAndAbsentHaveNoBuckets() throws IOException {
        DocumentMapper mapper = mapper(FAMILY);
        assertEquals(0, mapper.parse(source(b -> b.nullField("field"))).rootDoc().getFields("field").length);
        assertEquals(0, mapper.parse(source(b -> b.field("other", "x"))).rootDoc().getFields("field").length);
    }

    public void testArrayOfTwoProductsIsRefused() throws IOException {
        DocumentMapper mapper = mapper(FAMILY);
        MapperParsingException e = expectThrows(MapperParsingException.class, () -> mapper.parse(source(b -> b.array("field", "a", "b"))));
        assertTrue(e.getCause().getMessage(), e.getCause().getMessage().contains("a document is one product"));
        // an array of one is one product
        assertArrayEquals(F.codesOf("a"), termCodes(mapper.parse(source(b -> b.array("field", "a"))), "field"));
    }

    public void testObjectAndEmptyAreRefused() throws IOException {
        DocumentMapper mapper = mapper(FAMILY);
        MapperParsingException e = expectThrows(
            MapperParsingException.class,
            () -> mapper.parse(source(b -> b.startObject("field").field("id", "a").endObject()))
        );
        assertTrue(e.getMessage(), e.getMessage().contains("[field]"));
        e = expectThrows(MapperParsingException.class, () -> mapper.parse(source(b -> b.field("field", ""))));
        assertTrue(e.getCause().getMessage(), e.getCause().getMessage().contains("must not be empty"));
    }

    public void testCopyToFromKeyword() throws IOException {
        DocumentMapper mapper = createDocumentMapper(mapping(b -> {
            b.startObject("product_id").field("type", "keyword").field("copy_to", "buckets").endObject();
            b.startObject("buckets").field("type", "mach_buckets").field("hash_family", FAMILY).endObject();
        }));
        ParsedDocument doc = mapper.parse(source(b -> b.field("product_id", "SKU-9")));
        assertArrayEquals(F.codesOf("SKU-9"), termCodes(doc, "buckets"));
        assertArrayEquals(F.codesOf("SKU-9"), docValueCodes(doc, "buckets"));
        MapperParsingException e = expectThrows(
            MapperParsingException.class,
            () -> mapper.parse(source(b -> b.array("product_id", "SKU-1", "SKU-2")))
        );
        assertTrue(e.getCause().getMessage(), e.getCause().getMessage().contains("a document is one product"));
    }

    public void testFamilyIsRequiredAndChecked() {
        MapperParsingException e = expectThrows(
            MapperParsingException.class,
            () -> createMapperService(fieldMapping(b -> b.field("type", "mach_buckets")))
        );
        assertTrue(e.getMessage(), e.getMessage().contains("field [field]: parameter [hash_family] is required"));
        for (String bad : List.of("murmur3_x86_32-r16-b4096", "sha1-r16-b4096-s1", "murmur3_x86_32-r0-b4096-s1")) {
            e = expectThrows(
                MapperParsingException.class,
                () -> createMapperService(fieldMapping(b -> b.field("type", "mach_buckets").field("hash_family", bad)))
            );
            assertTrue(e.getMessage(), e.getMessage().contains("field [field]: parameter [hash_family]"));
        }
    }

    public void testFamilyUpdateIsRefused() throws IOException {
        MapperService service = createMapperService(fieldMapping(b -> b.field("type", "mach_buckets").field("hash_family", FAMILY)));
        // the same family again is a no-op update
        merge(service, fieldMapping(b -> b.field("type", "mach_buckets").field("hash_family", FAMILY)));
        IllegalArgumentException e = expectThrows(
            IllegalArgumentException.class,
            () -> merge(service, fieldMapping(b -> b.field("type", "mach_buckets").field("hash_family", "murmur3_x86_32-r32-b20000-s1296122696")))
        );
        assertTrue(e.getMessage(), e.getMessage().contains("Cannot update parameter [hash_family]"));
        assertEquals(F, ((MachBucketsFieldMapper.BucketsFieldType) service.fieldType("field")).family());
    }

    public void testMappingRoundTrip() throws IOException {
        MapperService service = createMapperService(fieldMapping(b -> b.field("type", "mach_buckets").field("hash_family", FAMILY)));
        String json = org.opensearch.core.common.Strings.toString(org.opensearch.common.xcontent.XContentType.JSON, service.documentMapper().mapping());
        assertTrue(json, json.contains("\"field\":{\"type\":\"mach_buckets\",\"hash_family\":\"" + FAMILY + "\"}"));
    }

    public void testTermQueryDocValuesAndExists() throws IOException {
        MapperService service = createMapperService(fieldMapping(b -> b.field("type", "mach_buckets").field("hash_family", FAMILY)));
        List<String> ids = List.of("a", "b", "c");
        withLuceneIndex(service, iw -> {
            for (String id : ids) iw.addDocument(service.documentMapper().parse(source(b -> b.field("field", id))).rootDoc());
            iw.addDocument(service.documentMapper().parse(source(b -> b.field("other", "no product"))).rootDoc());
        }, reader -> {
            IndexSearcher searcher = newSearcher(reader);
            QueryShardContext context = createQueryShardContext(service);
            MappedFieldType type = service.fieldType("field");
            for (String id : ids) {
                assertEquals(id, 1, searcher.count(type.termQuery(id, context)));
            }
            assertEquals(0, searcher.count(type.termQuery("zzz-not-indexed", context)));
            assertEquals(3, searcher.count(type.existsQuery(context)));
            LeafReader leaf = reader.leaves().get(0).reader();
            SortedNumericDocValues dv = leaf.getSortedNumericDocValues("field");
            int[] codes = new int[16];
            for (int doc = 0; doc < 3; doc++) {
                assertTrue(dv.advanceExact(doc));
                assertTrue(BucketFields.readCodes(dv, codes));
                assertArrayEquals(F.codesOf(ids.get(doc)), codes);
            }
            assertFalse(dv.advanceExact(3));
        });
    }
}
