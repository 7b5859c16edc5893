package org.opensearch.mach.query;

/**
 * The lowest and highest score of one side's top results, and the min-max normalization they define:
 * mm(s) = max(0, scale * s + offset) = (s - min) / (max - min), clamped at 0 for scores below the range.
 * When every top score is the same (max == min) there is no spread to normalize, so mm(s) = s / max
 * (the top results score 1); with no positive score at all, mm(s) = 0.
 */
public record ScoreRange(float min, float max) {
    public static final ScoreRange EMPTY = new ScoreRange(0f, 0f);

    public ScoreRange {
        if (!Float.isFinite(min) || !Float.isFinite(max) || min < 0 || max < min) {
            throw new IllegalArgumentException("a score range needs finite 0 <= min <= max, got [" + min + ", " + max + "]");
        }
    }

    public static ScoreRange of(float[] scores) {
        if (scores.length == 0) return EMPTY;
        float min = Float.POSITIVE_INFINITY, max = 0f;
        for (float s : scores) {
            min = Math.min(min, s);
            max = Math.max(max, s);
        }
        return new ScoreRange(min, max);
    }

    public float scale() {
        if (max > min) return 1f / (max - min);
        return max > 0 ? 1f / max : 0f;
    }

    public float offset() {
        return max > min ? -scale() * min : 0f;
    }

    public float normalize(float score) {
        return Math.max(0f, scale() * score + offset());
    }
}
