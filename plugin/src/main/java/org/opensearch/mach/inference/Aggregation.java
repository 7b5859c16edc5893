package org.opensearch.mach.inference;

import java.util.Locale;

/**
 * How a model combines its R repetitions into a product's score (the card's {@code aggregation},
 * spec/bundle-format.md): the heads are trained for one estimator, and the other ranks badly.
 *
 * <ul>
 *   <li>{@link #MEAN}: {@code score(k) = (1/R) sum_r P[r][h_r(k)]} (MACH's paper estimator);</li>
 *   <li>{@link #LOG_MEAN}: {@code score(k) = (1/R) sum_r ln(max(P[r][h_r(k)], f_r) / f_r)} with the floor
 *       {@code f_r = max(min_b P[r][b], max_b P[r][b] * 1e-7)}: linear in the heads' logits, and >= 0 so it is
 *       a valid Lucene score.</li>
 * </ul>
 * Either way a product's score is the mean over repetitions of a per-bucket score, so every decoder
 * (catalog, shard table) transforms each repetition once ({@link #bucketScores}) and then averages.
 */
public enum Aggregation {
    MEAN,
    LOG_MEAN;

    /** The floor spans at most 7 decades below a repetition's largest probability (as the bucket table's quantized tail). */
    public static final double FLOOR_DECADES = 1e-7;

    /** The card's value. */
    public String value() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The card's value, or IllegalArgumentException naming the values there are. */
    public static Aggregation parse(String value) {
        for (Aggregation a : values()) {
            if (a.value().equals(value)) return a;
        }
        throw new IllegalArgumentException("unknown aggregation [" + value + "]; use one of [mean, log_mean]");
    }

    /** One repetition's per-bucket scores from its probabilities: the same array for MEAN, a new one for LOG_MEAN. */
    public float[] bucketScores(float[] probabilities) {
        if (this == MEAN) return probabilities;
        float min = Float.POSITIVE_INFINITY, max = 0f;
        for (float p : probabilities) {
            min = Math.min(min, p);
            max = Math.max(max, p);
        }
        double floor = floor(min, max);
        float[] scores = new float[probabilities.length];
        for (int b = 0; b < scores.length; b++) scores[b] = logScore(probabilities[b], floor);
        return scores;
    }

    /** Every repetition's per-bucket scores ({@link #bucketScores(float[])}). */
    public float[][] bucketScores(float[][] probabilities) {
        if (this == MEAN) return probabilities;
        float[][] scores = new float[probabilities.length][];
        for (int r = 0; r < scores.length; r++) scores[r] = bucketScores(probabilities[r]);
        return scores;
    }

    /** LOG_MEAN's floor f_r of a repetition whose smallest and largest probabilities are these (0 only when all are 0). */
    public static double floor(double smallest, double largest) {
        return Math.max(Math.max(smallest, 0.0), largest * FLOOR_DECADES);
    }

    /** LOG_MEAN's score of one bucket: {@code ln(max(p, floor) / floor)}, 0 when the floor is 0 (a repetition of zeros). */
    public static float logScore(double probability, double floor) {
        if (!(floor > 0)) return 0f;
        return (float) Math.log(Math.max(probability, floor) / floor);
    }
}
