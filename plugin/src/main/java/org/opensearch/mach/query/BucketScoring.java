package org.opensearch.mach.query;

import org.apache.lucene.search.Explanation;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.common.io.stream.Writeable;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.mapper.MappedFieldType;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.index.query.QueryShardException;
import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.mach.index.BucketFields;
import org.opensearch.mach.index.MachBucketsFieldMapper;
import org.opensearch.mach.rest.StrictJson;
import org.opensearch.mach.inference.Aggregation;
import org.opensearch.mach.inference.Decoder;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * How a shard scores a document from its R bucket codes: {@code max(0, scale * s + offset)} where s
 * is the mean probability {@code mean_r table[code_r]} ({@code score: mean}) or the calibrated
 * {@code max(0, B/(B-1) (mean - 1/B))}, exactly as the catalog decoder's scores reach Lucene
 * ({@link MachQueryBuilder#luceneScores}); scale and offset carry {@code normalize} (1 / upper bound)
 * or min-max. {@code family}: the hash family the model was trained with, which the field must use.
 */
public record BucketScoring(String family, BucketTable table, Decoder.ScoreMode mode, float scale, float offset) implements Writeable {
    public BucketScoring {
        Objects.requireNonNull(table);
        Objects.requireNonNull(mode);
        Decoder.checkScoreMode(mode, table.aggregation());
        HashFamily f = HashFamily.parse(family);
        if (f.repetitions() != table.repetitions() || f.buckets() != table.buckets()) {
            throw new IllegalArgumentException(
                "a bucket table of R " + table.repetitions() + " x B " + table.buckets() + " does not fit hash family [" + family + "]"
            );
        }
        if (!Float.isFinite(scale) || scale < 0 || !Float.isFinite(offset)) {
            throw new IllegalArgumentException("bucket scores need a finite scale >= 0 and a finite offset, got [" + scale + ", " + offset + "]");
        }
    }

    public BucketScoring(StreamInput in) throws IOException {
        this(in.readString(), new BucketTable(in), Decoder.ScoreMode.parse(in.readString()), in.readFloat(), in.readFloat());
    }

    @Override
    public void writeTo(StreamOutput out) throws IOException {
        out.writeString(family);
        table.writeTo(out);
        out.writeString(mode.value());
        out.writeFloat(scale);
        out.writeFloat(offset);
    }

    public BucketScoring withMap(float newScale, float newOffset) {
        return new BucketScoring(family, table, mode, newScale, newOffset);
    }

    /** The mean probability of the codes (one per repetition, ascending), read from {@code dense}; NaN for codes of another table. */
    public double mean(float[] dense, int[] codes) {
        int R = table.repetitions(), B = table.buckets();
        double sum = 0;
        for (int r = 0; r < R; r++) {
            int code = codes[r];
            if (code < r * B || code >= (r + 1) * B) return Double.NaN;
            sum += dense[code];
        }
        return sum / R;
    }

    /** The score of a mean probability (NaN: 0). */
    public float score(double mean) {
        if (Double.isNaN(mean)) return 0f;
        double s = mode == Decoder.ScoreMode.CALIBRATED ? Math.max(0, Decoder.calibrated(mean, table.buckets())) : mean;
        return (float) Math.max(0.0, scale * (float) s + offset);
    }

    /** No document scores more: the score of the largest mean any product can have. */
    public float maxScore() {
        return Math.nextUp(score(table.maxMean()));
    }

    /** Why a document with these codes scores what it does: one line per repetition (p / R: they sum to the mean), then the map. */
    public Explanation explain(float[] dense, int[] codes, int bucketsPerRepetition) {
        int R = table.repetitions(), B = table.buckets();
        double mean = mean(dense, codes);
        if (Double.isNaN(mean)) return Explanation.match(0f, "the document's bucket codes are not of hash family [" + family + "]: MACH score 0");
        List<Explanation> reps = new ArrayList<>(R);
        boolean log = table.aggregation() == Aggregation.LOG_MEAN;
        for (int r = 0; r < R; r++) {
            int b = codes[r] - r * B;
            float p = dense[codes[r]];
            String how = table.isSent(r, b)
                ? (isTop(r, b, bucketsPerRepetition) ? "one of the top " + bucketsPerRepetition + " buckets" : "a scored bucket")
                : table.quantizedTail(r)
                    ? "not sent exactly: its 8-bit quantized probability"
                    : "not sent: the mean probability of the " + (B - table.sentBuckets(r)) + " buckets not sent";
            String value = log ? "log score ln(max(p, f) / f) " + p + " (floor f " + (float) table.floor(r) + ")" : "probability " + p;
            reps.add(Explanation.match((float) (p / R), "repetition " + r + ", bucket " + b + " (" + how + "): " + value + " / R " + R));
        }
        Explanation meanExp = Explanation.match((float) mean, "mean bucket " + (log ? "log score" : "probability") + " over " + R + " repetitions, sum of:", reps);
        float score = score(mean);
        return Explanation.match(
            score,
            "MACH score, computed as max(0, scale * " + (mode == Decoder.ScoreMode.CALIBRATED ? "max(0, B/(B-1) (mean - 1/B))" : "mean")
                + " + offset) from:",
            meanExp,
            Explanation.match(table.buckets(), "B"),
            Explanation.match(scale, "scale"),
            Explanation.match(offset, "offset")
        );
    }

    private boolean isTop(int r, int b, int m) {
        if (m <= 0) return false;
        for (int t : table.topBuckets(r, m)) if (t == b) return true;
        return false;
    }

    /** The JSON fields of a scoring, as a query builder writes them. */
    static final List<String> FIELDS = List.of("hash_family", "score", "scale", "offset", "table");

    /** The scoring fields of a query builder's JSON, read one by one ({@link #read}), then checked together ({@link #build}). */
    static final class Parsed {
        String family;
        Decoder.ScoreMode mode = Decoder.ScoreMode.MEAN;
        float scale = 1f, offset = 0f;
        BucketTable table;

        void read(String field, XContentParser p, String what) throws IOException {
            switch (field) {
                case "hash_family" -> family = StrictJson.text(p, what, field);
                case "score" -> mode = Decoder.ScoreMode.parse(StrictJson.text(p, what, field));
                case "scale" -> scale = StrictJson.number(p, what, field);
                case "offset" -> offset = StrictJson.number(p, what, field);
                case "table" -> table = BucketTable.fromXContent(p, what + " [table]");
                default -> throw new IllegalStateException("[" + field + "] is not a scoring field");
            }
        }

        BucketScoring build(String what) {
            if (family == null || table == null) throw new IllegalArgumentException(what + " requires [hash_family] and [table]");
            try {
                return new BucketScoring(family, table, mode, scale, offset);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(what + " " + e.getMessage(), e);
            }
        }
    }

    /**
     * Checks on a shard that {@code field} is a {@code mach_buckets} field of this scoring's hash family
     * (the model's): a 400 naming the field, its family and the model's otherwise.
     */
    public void checkField(QueryShardContext context, String field, String what) {
        MappedFieldType type = context.fieldMapper(field);
        if (type == null) {
            throw new QueryShardException(context, what + " [field] [" + field + "] is not mapped; it must be a [" + BucketFields.TYPE + "] field of hash family [" + family + "]");
        }
        if (!(type instanceof MachBucketsFieldMapper.BucketsFieldType buckets)) {
            throw new QueryShardException(context, what + " [field] [" + field + "] is of type [" + type.typeName() + "]; it must be a [" + BucketFields.TYPE + "] field of hash family [" + family + "]");
        }
        if (!buckets.family().name().equals(family)) {
            throw new QueryShardException(
                context,
                what + " [field] [" + field + "] holds buckets of hash family [" + buckets.family().name() + "], but the model was trained with hash family ["
                    + family + "]; index the products with the model's family or use a model of the field's"
            );
        }
    }

    public void toXContent(XContentBuilder b) throws IOException {
        b.field("hash_family", family);
        b.field("score", mode.value());
        b.field("scale", scale);
        b.field("offset", offset);
        b.field("table");
        table.toXContent(b);
    }
}
