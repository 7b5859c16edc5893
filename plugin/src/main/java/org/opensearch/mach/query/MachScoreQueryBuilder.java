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
 * What an index-side {@code mach} query with {@code combine: boost} or {@code hybrid} sends the
 * shards: the query to fuse with, and the bucket table; each shard runs a {@link MachScoreQuery},
 * scoring every hit of {@code query} as {@code its score + weight * MACH score}.
 *
 * <pre>{"mach_score": {"query": {"match": {"title": "drill"}}, "field": "buckets", "weight": 10.0, "hash_family": "...",
 *   "score": "mean", "scale": 1.0, "offset": 0.0, "table": {...}}}</pre>
 */
public class MachScoreQueryBuilder extends NamedQueryBuilder<MachScoreQueryBuilder> {
    public static final String NAME = "mach_score";
    static final List<String> PARAMETERS = parameters(List.of("query", "weight"), ScoredBucketField.FIELDS);

    private final QueryBuilder query;
    private final ScoredBucketField buckets;
    private final float weight;

    public MachScoreQueryBuilder(QueryBuilder query, String field, BucketScoring scoring, float weight) {
        this(query, ScoredBucketField.of("[" + NAME + "]", field, scoring), weight);
    }

    MachScoreQueryBuilder(QueryBuilder query, ScoredBucketField buckets, float weight) {
        super(NAME);
        if (query == null) throw new IllegalArgumentException("[" + NAME + "] requires [query], the query whose hits get MACH scores");
        if (!Float.isFinite(weight) || weight < 0) throw new IllegalArgumentException("[" + NAME + "] [weight] must be a finite number >= 0, got [" + weight + "]");
        this.query = query;
        this.buckets = buckets;
        this.weight = weight;
    }

    public MachScoreQueryBuilder(StreamInput in) throws IOException {
        super(NAME, in);
        this.query = in.readNamedWriteable(QueryBuilder.class);
        this.buckets = new ScoredBucketField(in);
        this.weight = in.readFloat();
    }

    @Override
    protected void doWriteTo(StreamOutput out) throws IOException {
        out.writeNamedWriteable(query);
        buckets.writeTo(out);
        out.writeFloat(weight);
    }

    public QueryBuilder query() {
        return query;
    }

    public String field() {
        return buckets.field();
    }

    public BucketScoring scoring() {
        return buckets.scoring();
    }

    public float weight() {
        return weight;
    }

    @Override
    protected void fieldsToXContent(XContentBuilder builder) throws IOException {
        builder.field("query", query);
        builder.field("weight", weight);
        buckets.toXContent(builder);
    }

    public static MachScoreQueryBuilder fromXContent(XContentParser parser) throws IOException {
        String what = "[" + NAME + "]";
        Parsed q = new Parsed();
        return parseStrictly(parser, what, PARAMETERS, (field, p) -> {
            switch (field) {
                case "query" -> q.query = innerQuery(p, what, field);
                case "weight" -> q.weight = StrictJson.number(p, what, field);
                default -> q.buckets.read(field, p, what);
            }
        }, () -> {
            if (q.weight == null) throw new IllegalArgumentException(what + " requires [weight]");
            return new MachScoreQueryBuilder(q.query, q.buckets.build(what), q.weight);
        });
    }

    private static final class Parsed {
        QueryBuilder query;
        Float weight;
        final ScoredBucketField.Parsed buckets = new ScoredBucketField.Parsed();
    }

    @Override
    protected QueryBuilder doRewrite(QueryRewriteContext context) throws IOException {
        return rewriteWrapped(this, query, context, rewritten -> new MachScoreQueryBuilder(rewritten, buckets, weight));
    }

    @Override
    protected Query doToQuery(QueryShardContext context) throws IOException {
        buckets.check(context, "[" + NAME + "]");
        return new MachScoreQuery(query.toQuery(context), buckets.field(), buckets.scoring(), weight);
    }

    @Override
    protected boolean doEquals(MachScoreQueryBuilder o) {
        return query.equals(o.query) && buckets.equals(o.buckets) && Float.compare(weight, o.weight) == 0;
    }

    @Override
    protected int doHashCode() {
        return Objects.hash(query, buckets, weight);
    }
}
