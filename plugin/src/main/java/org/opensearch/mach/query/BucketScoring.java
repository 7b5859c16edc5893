package org.opensearch.mach.query;

import org.apache.lucene.search.Explanation;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.common.io.stream.Writeable;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.mach.featurize.HashFamily;
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
        for (int r = 0; r < R; r++) {
            int b = codes[r] - r * B;
            float p = dense[codes[r]];
            String how = table.isSent(r, b)
                ? (isTop(r, b, bucketsPerRepetition) ? "one of the top " + bucketsPerRepetition + " buckets" : "a scored bucket")
                : "not scored: the mean probability of the " + (B - table.sentBuckets(r)) + " buckets not sent";
            reps.add(Explanation.match((float) (p / R), "repetition " + r + ", bucket " + b + " (" + how + "): probability " + p + " / R " + R));
        }
        Explanation meanExp = Explanation.match((float) mean, "mean bucket probability over " + R + " repetitions, sum of:", reps);
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

    public void toXContent(XContentBuilder b) throws IOException {
        b.field("hash_family", family);
        b.field("score", mode.value());
        b.field("scale", scale);
        b.field("offset", offset);
        b.field("table");
        table.toXContent(b);
    }
}
