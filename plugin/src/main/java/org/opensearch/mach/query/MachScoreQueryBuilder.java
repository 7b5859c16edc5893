package org.opensearch.mach.query;

import org.apache.lucene.search.Query;
import org.opensearch.core.common.ParsingException;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentLocation;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.query.AbstractQueryBuilder;
import org.opensearch.index.query.MatchNoneQueryBuilder;
import org.opensearch.index.query.QueryBuilder;
import org.opensearch.index.query.QueryRewriteContext;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.mach.rest.StrictJson;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * What an index-side {@code mach} query with {@code combine: boost} or {@code hybrid} sends the
 * shards: the query to fuse with, and the bucket table; each shard runs a {@link MachScoreQuery},
 * scoring every hit of {@code query} as {@code its score + weight * MACH score}.
 *
 * <pre>{"mach_score": {"query": {"match": {"title": "drill"}}, "field": "buckets", "weight": 10.0, "hash_family": "...",
 *   "score": "mean", "scale": 1.0, "offset": 0.0, "table": {...}}}</pre>
 */
public class MachScoreQueryBuilder extends AbstractQueryBuilder<MachScoreQueryBuilder> {
    public static final String NAME = "mach_score";
    static final List<String> PARAMETERS;
    static {
        List<String> p = new ArrayList<>(List.of("query", "field", "weight"));
        p.addAll(BucketScoring.FIELDS);
        p.addAll(List.of("boost", "_name"));
        PARAMETERS = List.copyOf(p);
    }

    private final QueryBuilder query;
    private final String field;
    private final BucketScoring scoring;
    private final float weight;

    public MachScoreQueryBuilder(QueryBuilder query, String field, BucketScoring scoring, float weight) {
        if (query == null) throw new IllegalArgumentException("[" + NAME + "] requires [query], the query whose hits get MACH scores");
        if (field == null || field.isEmpty()) throw new IllegalArgumentException("[" + NAME + "] requires [field], a mach_buckets field");
        if (!Float.isFinite(weight) || weight < 0) throw new IllegalArgumentException("[" + NAME + "] [weight] must be a finite number >= 0, got [" + weight + "]");
        this.query = query;
        this.field = field;
        this.scoring = Objects.requireNonNull(scoring);
        this.weight = weight;
    }

    public MachScoreQueryBuilder(StreamInput in) throws IOException {
        super(in);
        this.query = in.readNamedWriteable(QueryBuilder.class);
        this.field = in.readString();
        this.scoring = new BucketScoring(in);
        this.weight = in.readFloat();
    }

    @Override
    protected void doWriteTo(StreamOutput out) throws IOException {
        out.writeNamedWriteable(query);
        out.writeString(field);
        scoring.writeTo(out);
        out.writeFloat(weight);
    }

    public QueryBuilder query() {
        return query;
    }

    public String field() {
        return field;
    }

    public BucketScoring scoring() {
        return scoring;
    }

    public float weight() {
        return weight;
    }

    @Override
    public String getWriteableName() {
        return NAME;
    }

    @Override
    protected void doXContent(XContentBuilder builder, Params params) throws IOException {
        builder.startObject(NAME);
        builder.field("query", query);
        builder.field("field", field);
        builder.field("weight", weight);
        scoring.toXContent(builder);
        printBoostAndQueryName(builder);
        builder.endObject();
    }

    public static MachScoreQueryBuilder fromXContent(XContentParser parser) throws IOException {
        XContentLocation start = parser.getTokenLocation();
        String what = "[" + NAME + "]";
        BucketScoring.Parsed s = new BucketScoring.Parsed();
        Object[] v = { null, null, null, DEFAULT_BOOST, null }; // query, field, weight, boost, _name
        StrictJson.readObject(parser, what, PARAMETERS, (field, p) -> {
            switch (field) {
                case "query" -> {
                    if (p.currentToken() != XContentParser.Token.START_OBJECT) throw StrictJson.wrongType(p, what, field, "a query object");
                    v[0] = parseInnerQueryBuilder(p);
                }
                case "field" -> v[1] = StrictJson.text(p, what, field);
                case "weight" -> v[2] = StrictJson.number(p, what, field);
                case "boost" -> v[3] = StrictJson.number(p, what, field);
                case "_name" -> v[4] = StrictJson.text(p, what, field);
                default -> s.read(field, p, what);
            }
        });
        try {
            if (v[2] == null) throw new IllegalArgumentException(what + " requires [weight]");
            return new MachScoreQueryBuilder((QueryBuilder) v[0], (String) v[1], s.build(what), (Float) v[2]).boost((Float) v[3])
                .queryName((String) v[4]);
        } catch (IllegalArgumentException e) {
            throw new ParsingException(start, e.getMessage(), e);
        }
    }

    @Override
    protected QueryBuilder doRewrite(QueryRewriteContext context) throws IOException {
        QueryBuilder rewritten = query.rewrite(context);
        if (rewritten instanceof MatchNoneQueryBuilder) return rewritten;
        if (rewritten == query) return this;
        return new MachScoreQueryBuilder(rewritten, field, scoring, weight).boost(boost).queryName(queryName);
    }

    @Override
    protected Query doToQuery(QueryShardContext context) throws IOException {
        scoring.checkField(context, field, "[" + NAME + "]");
        return new MachScoreQuery(query.toQuery(context), field, scoring, weight);
    }

    @Override
    protected boolean doEquals(MachScoreQueryBuilder o) {
        return query.equals(o.query) && field.equals(o.field) && scoring.equals(o.scoring) && Float.compare(weight, o.weight) == 0;
    }

    @Override
    protected int doHashCode() {
        return Objects.hash(query, field, scoring, weight);
    }
}
