package org.opensearch.mach.query;

import org.apache.lucene.search.Query;
import org.opensearch.core.common.ParsingException;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentLocation;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.query.AbstractQueryBuilder;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.mach.rest.StrictJson;

import java.io.IOException;
import java.util.ArrayList;
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
public class MachBucketsQueryBuilder extends AbstractQueryBuilder<MachBucketsQueryBuilder> {
    public static final String NAME = "mach_buckets";
    static final List<String> PARAMETERS;
    static {
        List<String> p = new ArrayList<>(List.of("field", "buckets_per_repetition", "min_repetitions"));
        p.addAll(BucketScoring.FIELDS);
        p.addAll(List.of("boost", "_name"));
        PARAMETERS = List.copyOf(p);
    }

    private final String field;
    private final BucketScoring scoring;
    private final int bucketsPerRepetition;
    private final int minRepetitions;

    public MachBucketsQueryBuilder(String field, BucketScoring scoring, int bucketsPerRepetition, int minRepetitions) {
        if (field == null || field.isEmpty()) throw new IllegalArgumentException("[" + NAME + "] requires [field], a mach_buckets field");
        this.scoring = Objects.requireNonNull(scoring);
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
        this.field = field;
        this.bucketsPerRepetition = bucketsPerRepetition;
        this.minRepetitions = minRepetitions;
    }

    public MachBucketsQueryBuilder(StreamInput in) throws IOException {
        super(in);
        this.field = in.readString();
        this.scoring = new BucketScoring(in);
        this.bucketsPerRepetition = in.readVInt();
        this.minRepetitions = in.readVInt();
    }

    @Override
    protected void doWriteTo(StreamOutput out) throws IOException {
        out.writeString(field);
        scoring.writeTo(out);
        out.writeVInt(bucketsPerRepetition);
        out.writeVInt(minRepetitions);
    }

    public String field() {
        return field;
    }

    public BucketScoring scoring() {
        return scoring;
    }

    public int bucketsPerRepetition() {
        return bucketsPerRepetition;
    }

    public int minRepetitions() {
        return minRepetitions;
    }

    @Override
    public String getWriteableName() {
        return NAME;
    }

    @Override
    protected void doXContent(XContentBuilder builder, Params params) throws IOException {
        builder.startObject(NAME);
        builder.field("field", field);
        builder.field("buckets_per_repetition", bucketsPerRepetition);
        builder.field("min_repetitions", minRepetitions);
        scoring.toXContent(builder);
        printBoostAndQueryName(builder);
        builder.endObject();
    }

    public static MachBucketsQueryBuilder fromXContent(XContentParser parser) throws IOException {
        XContentLocation start = parser.getTokenLocation();
        String what = "[" + NAME + "]";
        BucketScoring.Parsed s = new BucketScoring.Parsed();
        Object[] v = { null, 10, 1, DEFAULT_BOOST, null }; // field, m, f, boost, _name
        StrictJson.readObject(parser, what, PARAMETERS, (field, p) -> {
            switch (field) {
                case "field" -> v[0] = StrictJson.text(p, what, field);
                case "buckets_per_repetition" -> v[1] = StrictJson.integer(p, what, field, 1, Integer.MAX_VALUE);
                case "min_repetitions" -> v[2] = StrictJson.integer(p, what, field, 1, Integer.MAX_VALUE);
                case "boost" -> v[3] = StrictJson.number(p, what, field);
                case "_name" -> v[4] = StrictJson.text(p, what, field);
                default -> s.read(field, p, what);
            }
        });
        try {
            return new MachBucketsQueryBuilder((String) v[0], s.build(what), (Integer) v[1], (Integer) v[2]).boost((Float) v[3])
                .queryName((String) v[4]);
        } catch (IllegalArgumentException e) {
            throw new ParsingException(start, e.getMessage(), e);
        }
    }

    @Override
    protected Query doToQuery(QueryShardContext context) {
        scoring.checkField(context, field, "[" + NAME + "]");
        return new MachBucketsQuery(field, scoring, bucketsPerRepetition, minRepetitions);
    }

    @Override
    protected boolean doEquals(MachBucketsQueryBuilder o) {
        return field.equals(o.field) && scoring.equals(o.scoring) && bucketsPerRepetition == o.bucketsPerRepetition && minRepetitions == o.minRepetitions;
    }

    @Override
    protected int doHashCode() {
        return Objects.hash(field, scoring, bucketsPerRepetition, minRepetitions);
    }
}
