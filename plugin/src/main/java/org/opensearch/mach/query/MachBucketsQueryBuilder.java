package org.opensearch.mach.query;

import org.apache.lucene.search.Query;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.mach.rest.StrictJson;

import java.io.IOException;
import java.util.List;
import java.util.Objects;

/**
 * What an index-side {@code mach} query sends the shards for MACH's own candidates: the
 * {@code mach_buckets} field, the bucket table with its scoring, m and f. Each shard runs a
 * {@link MachBucketsQuery}: documents in the top-m buckets of at least f repetitions, scored from
 * their doc values.
 *
 * <pre>{"mach_buckets": {"field": "buckets", "hash_family": "murmur3_x86_32-r16-b4096-s1296122696", "score": "mean",
 *   "scale": 1.0, "offset": 0.0, "buckets_per_repetition": 10, "min_repetitions": 1,
 *   "table": {"buckets": 4096, "repetitions": [{"buckets": [3, 17], "probabilities": [0.4, 0.2], "residual": 0.0001}, ...]}}}</pre>
 */
public class MachBucketsQueryBuilder extends NamedQueryBuilder<MachBucketsQueryBuilder> {
    public static final String NAME = "mach_buckets";
    static final List<String> PARAMETERS = parameters(List.of("buckets_per_repetition", "min_repetitions"), ScoredBucketField.FIELDS);

    private final ScoredBucketField buckets;
    private final int bucketsPerRepetition;
    private final int minRepetitions;

    public MachBucketsQueryBuilder(String field, BucketScoring scoring, int bucketsPerRepetition, int minRepetitions) {
        this(ScoredBucketField.of("[" + NAME + "]", field, scoring), bucketsPerRepetition, minRepetitions);
    }

    MachBucketsQueryBuilder(ScoredBucketField buckets, int bucketsPerRepetition, int minRepetitions) {
        super(NAME);
        this.buckets = buckets;
        BucketScoring scoring = buckets.scoring();
        int R = scoring.table().repetitions();
        if (bucketsPerRepetition < 1 || bucketsPerRepetition > scoring.table().buckets()) {
            throw new IllegalArgumentException(
                "[" + NAME + "] [buckets_per_repetition] must be between 1 and B = " + scoring.table().buckets() + ", got [" + bucketsPerRepetition + "]"
            );
        }
        if (minRepetitions < 1 || minRepetitions > R) {
            throw new IllegalArgumentException("[" + NAME + "] [min_repetitions] must be between 1 and R = " + R + ", got [" + minRepetitions + "]");
        }
        for (int r = 0; r < R; r++) {
            if (scoring.table().sentBuckets(r) < bucketsPerRepetition) {
                throw new IllegalArgumentException(
                    "[" + NAME + "] the table sends " + scoring.table().sentBuckets(r) + " buckets of repetition " + r + ", fewer than [buckets_per_repetition] "
                        + bucketsPerRepetition
                );
            }
        }
        this.bucketsPerRepetition = bucketsPerRepetition;
        this.minRepetitions = minRepetitions;
    }

    public MachBucketsQueryBuilder(StreamInput in) throws IOException {
        super(NAME, in);
        this.buckets = new ScoredBucketField(in);
        this.bucketsPerRepetition = in.readVInt();
        this.minRepetitions = in.readVInt();
    }

    @Override
    protected void doWriteTo(StreamOutput out) throws IOException {
        buckets.writeTo(out);
        out.writeVInt(bucketsPerRepetition);
        out.writeVInt(minRepetitions);
    }

    public String field() {
        return buckets.field();
    }

    public BucketScoring scoring() {
        return buckets.scoring();
    }

    public int bucketsPerRepetition() {
        return bucketsPerRepetition;
    }

    public int minRepetitions() {
        return minRepetitions;
    }

    @Override
    protected void fieldsToXContent(XContentBuilder builder) throws IOException {
        buckets.toXContent(builder);
        builder.field("buckets_per_repetition", bucketsPerRepetition);
        builder.field("min_repetitions", minRepetitions);
    }

    public static MachBucketsQueryBuilder fromXContent(XContentParser parser) throws IOException {
        String what = "[" + NAME + "]";
        Parsed q = new Parsed();
        return parseStrictly(parser, what, PARAMETERS, (field, p) -> {
            switch (field) {
                case "buckets_per_repetition" -> q.bucketsPerRepetition = StrictJson.integer(p, what, field, 1, Integer.MAX_VALUE);
                case "min_repetitions" -> q.minRepetitions = StrictJson.integer(p, what, field, 1, Integer.MAX_VALUE);
                default -> q.buckets.read(field, p, what);
            }
        }, () -> new MachBucketsQueryBuilder(q.buckets.build(what), q.bucketsPerRepetition, q.minRepetitions));
    }

    private static final class Parsed {
        int bucketsPerRepetition = 10, minRepetitions = 1;
        final ScoredBucketField.Parsed buckets = new ScoredBucketField.Parsed();
    }

    @Override
    protected Query doToQuery(QueryShardContext context) {
        buckets.check(context, "[" + NAME + "]");
        return new MachBucketsQuery(buckets.field(), buckets.scoring(), bucketsPerRepetition, minRepetitions);
    }

    @Override
    protected boolean doEquals(MachBucketsQueryBuilder o) {
        return buckets.equals(o.buckets) && bucketsPerRepetition == o.bucketsPerRepetition && minRepetitions == o.minRepetitions;
    }

    @Override
    protected int doHashCode() {
        return Objects.hash(buckets, bucketsPerRepetition, minRepetitions);
    }
}
