package org.opensearch.mach.query;

import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.common.io.stream.Writeable;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.mach.rest.StrictJson;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Where an index-side shard query reads MACH scores: a {@code mach_buckets} field and the scoring of the
 * bucket codes its documents hold. {@link MachBucketsQueryBuilder} and {@link MachScoreQueryBuilder} each
 * carry one; its JSON fields, wire form and shard check are written here once.
 */
record ScoredBucketField(String field, BucketScoring scoring) implements Writeable {
    /** Its JSON fields, as a query builder writes them. */
    static final List<String> FIELDS;
    static {
        List<String> names = new ArrayList<>(List.of("field"));
        names.addAll(BucketScoring.FIELDS);
        FIELDS = List.copyOf(names);
    }

    /** {@code what} names the query in the message ("[mach_score]"). */
    static ScoredBucketField of(String what, String field, BucketScoring scoring) {
        if (field == null || field.isEmpty()) throw new IllegalArgumentException(what + " requires [field], a mach_buckets field");
        return new ScoredBucketField(field, Objects.requireNonNull(scoring));
    }

    ScoredBucketField(StreamInput in) throws IOException {
        this(in.readString(), new BucketScoring(in));
    }

    @Override
    public void writeTo(StreamOutput out) throws IOException {
        out.writeString(field);
        scoring.writeTo(out);
    }

    void toXContent(XContentBuilder builder) throws IOException {
        builder.field("field", field);
        scoring.toXContent(builder);
    }

    /** On a shard: the field must be a mach_buckets field of the scoring's hash family (a 400 otherwise). */
    void check(QueryShardContext context, String what) {
        scoring.checkField(context, field, what);
    }

    /** The {@link #FIELDS} of a query builder's JSON, read one by one, then checked together ({@link #build}). */
    static final class Parsed {
        private String field;
        private final BucketScoring.Parsed scoring = new BucketScoring.Parsed();

        void read(String name, XContentParser parser, String what) throws IOException {
            if (name.equals("field")) field = StrictJson.text(parser, what, name);
            else scoring.read(name, parser, what);
        }

        ScoredBucketField build(String what) {
            return of(what, field, scoring.build(what));
        }
    }
}
