package org.opensearch.mach.query;

import org.apache.lucene.search.MatchNoDocsQuery;
import org.apache.lucene.search.Query;
import org.opensearch.core.ParseField;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.mapper.KeywordFieldMapper;
import org.opensearch.index.mapper.MappedFieldType;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.index.query.QueryShardException;
import org.opensearch.mach.rest.StrictJson;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * What a {@code mach} query becomes after inference on the coordinator: a keyword field and
 * (product id, score) pairs. Serializable, so shards receive the decoded products, never the model.
 *
 * <pre>{"mach_products": {"field": "product_id", "ids": ["P1", "P2"], "scores": [1.0, 0.62], "boost": 1.0}}</pre>
 *
 * Matches documents whose {@code field} holds one of the ids (exactly as indexed), scoring each
 * with {@code boost * score}. It can also be written by hand (e.g. to replay a decoded query).
 */
public class MachProductsQueryBuilder extends NamedQueryBuilder<MachProductsQueryBuilder> {
    public static final String NAME = "mach_products";
    /** Same bound as the mach query's top_n. */
    public static final int MAX_PRODUCTS = MachQueryBuilder.MAX_TOP_N;

    static final ParseField FIELD = new ParseField("field");
    static final ParseField IDS = new ParseField("ids");
    static final ParseField SCORES = new ParseField("scores");

    private final String field;
    private final String[] ids;
    private final float[] scores;

    public MachProductsQueryBuilder(String field, String[] ids, float[] scores) {
        super(NAME);
        if (field == null || field.isEmpty()) {
            throw new IllegalArgumentException("[" + NAME + "] requires [field], the keyword field holding product ids");
        }
        if (ids == null || scores == null || ids.length != scores.length) {
            throw new IllegalArgumentException("[" + NAME + "] [ids] and [scores] must be arrays of the same length");
        }
        if (ids.length > MAX_PRODUCTS) {
            throw new IllegalArgumentException("[" + NAME + "] holds at most " + MAX_PRODUCTS + " products, got " + ids.length);
        }
        Set<String> seen = new HashSet<>();
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] == null || ids[i].isEmpty()) throw new IllegalArgumentException("[" + NAME + "] product ids must be non-empty strings");
            if (!seen.add(ids[i])) throw new IllegalArgumentException("[" + NAME + "] duplicate product id [" + ids[i] + "]");
            if (!Float.isFinite(scores[i]) || scores[i] < 0) {
                throw new IllegalArgumentException("[" + NAME + "] scores must be finite and >= 0, got [" + scores[i] + "] for [" + ids[i] + "]");
            }
        }
        this.field = field;
        this.ids = ids.clone();
        this.scores = scores.clone();
    }

    public MachProductsQueryBuilder(StreamInput in) throws IOException {
        super(NAME, in);
        this.field = in.readString();
        this.ids = in.readStringArray();
        this.scores = in.readFloatArray();
    }

    @Override
    protected void doWriteTo(StreamOutput out) throws IOException {
        out.writeString(field);
        out.writeStringArray(ids);
        out.writeFloatArray(scores);
    }

    public String field() {
        return field;
    }

    public String[] ids() {
        return ids.clone();
    }

    public float[] scores() {
        return scores.clone();
    }

    @Override
    protected void fieldsToXContent(XContentBuilder builder) throws IOException {
        builder.field(FIELD.getPreferredName(), field);
        builder.array(IDS.getPreferredName(), ids);
        builder.startArray(SCORES.getPreferredName());
        for (float s : scores) builder.value(s);
        builder.endArray();
    }

    static final List<String> PARAMETERS = parameters(List.of(FIELD.getPreferredName(), IDS.getPreferredName(), SCORES.getPreferredName()));

    /** Read by the strict parser ({@link StrictJson}) like every query of the plugin: a wrong type, a null, an unknown field is a 400 naming it. */
    public static MachProductsQueryBuilder fromXContent(XContentParser parser) throws IOException {
        String what = "[" + NAME + "]";
        Parsed q = new Parsed();
        return parseStrictly(parser, what, PARAMETERS, (field, p) -> {
            switch (field) {
                case "field" -> q.field = StrictJson.text(p, what, field);
                case "ids" -> {
                    q.ids = new ArrayList<>();
                    StrictJson.array(p, what, field, () -> q.ids.add(StrictJson.text(p, what, field)));
                }
                case "scores" -> {
                    q.scores = new ArrayList<>();
                    StrictJson.array(p, what, field, () -> q.scores.add(StrictJson.number(p, what, field)));
                }
                default -> throw new IllegalStateException("parameter [" + field + "] is listed but not read");
            }
        }, () -> {
            if (q.ids == null || q.scores == null) throw new IllegalArgumentException(what + " requires [ids] and [scores]");
            float[] s = new float[q.scores.size()];
            for (int i = 0; i < s.length; i++) s[i] = q.scores.get(i);
            return new MachProductsQueryBuilder(q.field, q.ids.toArray(new String[0]), s);
        });
    }

    private static final class Parsed {
        String field;
        List<String> ids;
        List<Float> scores;
    }

    @Override
    protected Query doToQuery(QueryShardContext context) {
        MappedFieldType ft = context.fieldMapper(field);
        String index = context.index().getName();
        if (ft == null) {
            throw new QueryShardException(
                context,
                "[mach] product_id_field [" + field + "] does not exist in index [" + index + "]; map it as a keyword field holding the product ids"
            );
        }
        if (!(ft instanceof KeywordFieldMapper.KeywordFieldType)) {
            throw new QueryShardException(
                context,
                "[mach] product_id_field [" + field + "] must be a keyword field, but it is [" + ft.typeName() + "] in index [" + index + "]"
            );
        }
        if (!ft.isSearchable()) {
            throw new QueryShardException(context, "[mach] product_id_field [" + field + "] is not indexed in index [" + index + "]; set index: true");
        }
        if (ids.length == 0) return new MatchNoDocsQuery("no MACH products");
        return new MachProductsQuery(ft.name(), ids, scores);
    }

    @Override
    protected boolean doEquals(MachProductsQueryBuilder other) {
        return field.equals(other.field) && Arrays.equals(ids, other.ids) && Arrays.equals(scores, other.scores);
    }

    @Override
    protected int doHashCode() {
        return Objects.hash(field, Arrays.hashCode(ids), Arrays.hashCode(scores));
    }
}
