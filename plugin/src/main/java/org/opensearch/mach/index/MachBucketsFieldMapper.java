package org.opensearch.mach.index;

import org.apache.lucene.index.IndexableField;
import org.apache.lucene.search.BooleanClause;
import org.apache.lucene.search.BooleanQuery;
import org.apache.lucene.search.ConstantScoreQuery;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.TermQuery;
import org.apache.lucene.index.Term;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.fielddata.IndexFieldData;
import org.opensearch.index.fielddata.IndexNumericFieldData.NumericType;
import org.opensearch.index.fielddata.plain.SortedNumericIndexFieldData;
import org.opensearch.index.mapper.MappedFieldType;
import org.opensearch.index.mapper.MapperParsingException;
import org.opensearch.index.mapper.ParametrizedFieldMapper;
import org.opensearch.index.mapper.ParseContext;
import org.opensearch.index.mapper.SourceValueFetcher;
import org.opensearch.index.mapper.TextSearchInfo;
import org.opensearch.index.mapper.ValueFetcher;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.search.lookup.SearchLookup;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The {@code mach_buckets} field: its value is the document's product id, and it indexes that
 * product's R bucket codes under the mapping's {@code hash_family} ({@link BucketFields}), so the
 * shards can find and score MACH's candidates without the catalog on the coordinator.
 *
 * <pre>{"type": "mach_buckets", "hash_family": "murmur3_x86_32-r16-b4096-s1296122696"}</pre>
 *
 * A document is one product: one string (or number, taken as its JSON text) per document; null or
 * absent leaves the document without buckets. Usually filled by {@code copy_to} from the product-id
 * keyword field. The family cannot change once mapped: the indexed codes would no longer mean it.
 */
public final class MachBucketsFieldMapper extends ParametrizedFieldMapper {
    public static final String CONTENT_TYPE = BucketFields.TYPE;
    public static final String HASH_FAMILY = "hash_family";

    public static final TypeParser PARSER = new TypeParser((name, context) -> new Builder(name));

    public static final class Builder extends ParametrizedFieldMapper.Builder {
        private final Parameter<String> hashFamily;
        private final Parameter<Map<String, String>> meta = Parameter.metaParam();

        public Builder(String name) {
            super(name);
            this.hashFamily = Parameter.stringParam(HASH_FAMILY, false, m -> ((MachBucketsFieldMapper) m).family.name(), null)
                .acceptsNull()
                .setValidator(value -> parseFamily(name, value));
        }

        @Override
        protected List<Parameter<?>> getParameters() {
            return List.of(hashFamily, meta);
        }

        @Override
        public MachBucketsFieldMapper build(BuilderContext context) {
            HashFamily family = parseFamily(name, hashFamily.getValue());
            BucketsFieldType type = new BucketsFieldType(buildFullName(context), family, meta.getValue());
            return new MachBucketsFieldMapper(name, type, family, multiFieldsBuilder.build(this, context), copyTo.build());
        }
    }

    /** The mapping's family, or a 400 naming the field and the parameter. */
    static HashFamily parseFamily(String field, String name) {
        if (name == null || name.isEmpty()) {
            throw new MapperParsingException(
                "[" + CONTENT_TYPE + "] field [" + field + "]: parameter [" + HASH_FAMILY + "] is required (the model card's "
                    + "product_hash.family, e.g. " + HashFamily.FUNCTION + "-r16-b4096-s1296122696)"
            );
        }
        try {
            return HashFamily.parse(name);
        } catch (IllegalArgumentException e) {
            throw new MapperParsingException("[" + CONTENT_TYPE + "] field [" + field + "]: parameter [" + HASH_FAMILY + "]: " + e.getMessage(), e);
        }
    }

    /**
     * The field type: the query side checks {@code fieldType instanceof BucketsFieldType t} and compares
     * {@link #family()} with its model's before reading the codes.
     */
    public static final class BucketsFieldType extends MappedFieldType {
        private final HashFamily family;

        public BucketsFieldType(String name, HashFamily family, Map<String, String> meta) {
            super(name, true, false, true, TextSearchInfo.SIMPLE_MATCH_ONLY, meta);
            this.family = family;
        }

        public HashFamily family() {
            return family;
        }

        @Override
        public String typeName() {
            return CONTENT_TYPE;
        }

        /** Documents of this product id: all of its R codes (constant score; mostly for debugging a mapping). */
        @Override
        public Query termQuery(Object value, QueryShardContext context) {
            String productId = value instanceof org.apache.lucene.util.BytesRef b ? b.utf8ToString() : value.toString();
            BooleanQuery.Builder all = new BooleanQuery.Builder();
            for (int code : family.codesOf(productId)) {
                all.add(new TermQuery(new Term(name(), BucketFields.term(code))), BooleanClause.Occur.FILTER);
            }
            return new ConstantScoreQuery(all.build());
        }

        /** docvalue_fields: the document's R codes, in repetition order. */
        @Override
        public IndexFieldData.Builder fielddataBuilder(String fullyQualifiedIndexName, Supplier<SearchLookup> searchLookup) {
            failIfNoDocValues();
            return new SortedNumericIndexFieldData.Builder(name(), NumericType.INT);
        }

        /** fields: the product id as written in _source (nothing when the field was filled by copy_to). */
        @Override
        public ValueFetcher valueFetcher(QueryShardContext context, SearchLookup searchLookup, String format) {
            return SourceValueFetcher.toString(name(), context, format);
        }
    }

    private final HashFamily family;

    private MachBucketsFieldMapper(String simpleName, BucketsFieldType type, HashFamily family, MultiFields multiFields, CopyTo copyTo) {
        super(simpleName, type, multiFields, copyTo);
        this.family = family;
    }

    @Override
    public BucketsFieldType fieldType() {
        return (BucketsFieldType) super.fieldType();
    }

    @Override
    public ParametrizedFieldMapper.Builder getMergeBuilder() {
        return new Builder(simpleName()).init(this);
    }

    @Override
    protected String contentType() {
        return CONTENT_TYPE;
    }

    @Override
    protected void parseCreateField(ParseContext context) throws IOException {
        String productId = productId(context);
        if (productId == null) return; // no product: no buckets
        String field = fieldType().name();
        if (context.doc().getField(field) != null) {
            throw new MapperParsingException(
                "[" + CONTENT_TYPE + "] field [" + field + "] takes one product id per document (a document is one product), got more than one"
            );
        }
        if (productId.isEmpty()) {
            throw new MapperParsingException("[" + CONTENT_TYPE + "] field [" + field + "]: the product id must not be empty");
        }
        for (IndexableField f : BucketFields.fields(field, family.codesOf(productId))) {
            context.doc().add(f);
        }
    }

    /** The value: a string, or a number taken as its JSON text; null for JSON null. */
    private String productId(ParseContext context) throws IOException {
        if (context.externalValueSet()) {
            Object value = context.externalValue();
            return value == null ? null : value.toString();
        }
        XContentParser parser = context.parser();
        XContentParser.Token token = parser.currentToken();
        if (token == XContentParser.Token.VALUE_NULL) return null;
        if (token == XContentParser.Token.VALUE_STRING || token == XContentParser.Token.VALUE_NUMBER) return parser.text();
        throw new MapperParsingException(
            "[" + CONTENT_TYPE + "] field [" + fieldType().name() + "] takes the document's product id (a string), got " + token
        );
    }
}
