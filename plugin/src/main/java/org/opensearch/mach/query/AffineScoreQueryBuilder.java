package org.opensearch.mach.query;

import org.apache.lucene.search.Query;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.query.QueryBuilder;
import org.opensearch.index.query.QueryRewriteContext;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.mach.rest.StrictJson;

import java.io.IOException;
import java.util.List;
import java.util.Objects;

/**
 * A query whose scores pass through the affine map {@code max(0, scale * s + offset)}: what the
 * lexical part of a {@code mach} query with {@code normalization: min_max} becomes on the
 * coordinator, once its score range is known (scale = 1 / (max - min), offset = -min / (max - min)).
 * Serializable, so the shards receive the map with the query.
 *
 * <pre>{"mach_affine": {"query": {"match": {"title": "drill"}}, "scale": 0.125, "offset": -0.5, "boost": 0.7}}</pre>
 */
public class AffineScoreQueryBuilder extends NamedQueryBuilder<AffineScoreQueryBuilder> {
    public static final String NAME = "mach_affine";
    static final List<String> PARAMETERS = parameters(List.of("query", "scale", "offset"));

    private final QueryBuilder query;
    private final float scale;
    private final float offset;

    public AffineScoreQueryBuilder(QueryBuilder query, float scale, float offset) {
        super(NAME);
        if (query == null) throw new IllegalArgumentException("[" + NAME + "] requires [query], the query whose scores it maps");
        AffineScoreQuery.checkMap(scale, offset);
        this.query = query;
        this.scale = scale;
        this.offset = offset;
    }

    public AffineScoreQueryBuilder(StreamInput in) throws IOException {
        super(NAME, in);
        this.query = in.readNamedWriteable(QueryBuilder.class);
        this.scale = in.readFloat();
        this.offset = in.readFloat();
    }

    @Override
    protected void doWriteTo(StreamOutput out) throws IOException {
        out.writeNamedWriteable(query);
        out.writeFloat(scale);
        out.writeFloat(offset);
    }

    public QueryBuilder query() {
        return query;
    }

    public float scale() {
        return scale;
    }

    public float offset() {
        return offset;
    }

    @Override
    protected void fieldsToXContent(XContentBuilder builder) throws IOException {
        builder.field("query", query);
        builder.field("scale", scale);
        builder.field("offset", offset);
    }

    public static AffineScoreQueryBuilder fromXContent(XContentParser parser) throws IOException {
        String what = "[" + NAME + "]";
        Parsed q = new Parsed();
        return parseStrictly(parser, what, PARAMETERS, (field, p) -> {
            switch (field) {
                case "query" -> q.query = innerQuery(p, what, field);
                case "scale" -> q.scale = StrictJson.number(p, what, field);
                case "offset" -> q.offset = StrictJson.number(p, what, field);
                default -> throw new IllegalStateException("parameter [" + field + "] is listed but not read");
            }
        }, () -> {
            if (q.query == null || q.scale == null || q.offset == null) throw new IllegalArgumentException(what + " requires [query], [scale] and [offset]");
            return new AffineScoreQueryBuilder(q.query, q.scale, q.offset);
        });
    }

    private static final class Parsed {
        QueryBuilder query;
        Float scale, offset;
    }

    @Override
    protected QueryBuilder doRewrite(QueryRewriteContext context) throws IOException {
        return rewriteWrapped(this, query, context, rewritten -> new AffineScoreQueryBuilder(rewritten, scale, offset));
    }

    @Override
    protected Query doToQuery(QueryShardContext context) throws IOException {
        return new AffineScoreQuery(query.toQuery(context), scale, offset);
    }

    @Override
    protected boolean doEquals(AffineScoreQueryBuilder other) {
        return query.equals(other.query) && Float.compare(scale, other.scale) == 0 && Float.compare(offset, other.offset) == 0;
    }

    @Override
    protected int doHashCode() {
        return Objects.hash(query, scale, offset);
    }
}
