package org.opensearch.mach.query;

import java.util.Arrays;

/**
 * The quantized tail's 8-bit codes ({@link BucketTable.Tail}) without a logarithm per value: the
 * code {@link #code} is a non-decreasing step function of the value (every step of it is monotone:
 * float max, division, {@code Math.log} is semi-monotonic, scaling, rounding, clamping), so it is
 * fixed by the 255 values where it steps up. Those come from their closed form, where no rounding
 * error can move them to another float, else from a search with {@link #code} itself (a few
 * logarithms for about one step in 3,000, instead of one per unsent bucket); a value's code is then
 * the number of steps at or below it, looked up in a table over the value's float bits and corrected
 * by a comparison. The codes are {@link #code}'s for every value (LogScaleCodesTests compares the
 * two on random and edge-case inputs).
 */
final class LogScaleCodes {
    /**
     * Cells of the lookup over [low, high]'s float bits. Consecutive steps are at least 2^23 span / 255
     * bits apart (a float's bits grow by 2^23 to 2^24 per unit of ln v) and the bits span at most
     * 2^24 span, so with the cell width the smallest power of two that leaves fewer than 2,048 cells
     * (at most 2^25 span / 2,048: half the steps' distance) no cell holds two steps; when the width is
     * one float (a range under 2,048 floats) every cell is one value. So a value's code is its cell's
     * code, plus one if it is at or above the cell's next step. Subnormal values are denser in bits
     * (one float can be several codes apart): there the steps are walked on.
     */
    private static final int CELLS = 2048;

    /** steps[c] (c = 1..255): the float bits of the smallest value whose code is c or more; steps[256]: above every value */
    private final int[] steps = new int[257];
    /** per cell, its code (the steps at or below its start) in the low 8 bits, the bits of the first step above its start in the upper 32 (one load per value) */
    private final long[] cell = new long[CELLS];

    /**
     * A relative distance no rounding error here reaches: code() steps at its real step v* within a
     * relative ~1e-14 (a 1-ulp log of at most 7 decades, three rounded operations), and the guess
     * within ~1e-13 (255 rounded products, e^(span / 255) to the 254th power). A float farther than
     * this from the guess on both sides is on the same side of both: the one above is the step.
     * A float's own spacing is ~6e-8 relative, so the search is needed about once in 3,000 steps.
     */
    static final double SAFE = 1e-11;

    /** The bits of the smallest float >= v (v > 0, at most Float.MAX_VALUE). */
    private static int floatAtOrAbove(double v) {
        float f = (float) v;
        int bits = Float.floatToRawIntBits(f);
        return (double) f < v ? bits + 1 : bits; // (the next float up, for a positive one)
    }

    /** The code of one value: {@code round(log(v / low) / span * 255)}, values under low as low, clamped to [0, 255]. */
    static int code(float v, float low, double span) {
        double q = Math.log(Math.max(v, low) / (double) low) / span * 255;
        return (int) Math.max(0, Math.min(255, Math.round(q)));
    }

    /**
     * Writes the codes of {@code values[0..n)} into {@code codes}: the same as {@link #code} for each.
     * Needs {@code 0 < low <= high}, {@code span = Math.log((double) high / low) > 0}, and no value
     * above high or NaN (high is their maximum).
     */
    void encode(float[] values, int n, float low, float high, double span, byte[] codes) {
        int lowBits = Float.floatToRawIntBits(low), highBits = Float.floatToRawIntBits(high);
        // the steps, from their closed form low * e^((c - 1/2) span / 255): where no float lies within
        // SAFE of the real step, the float above it is the step; else the step is searched with code()
        double ratio = Math.exp(span / 255), guess = low * Math.exp(span / 510);
        for (int c = 1; c <= 255; c++, guess *= ratio) {
            int above = floatAtOrAbove(guess);
            boolean clear = above > lowBits && above <= highBits
                && Float.intBitsToFloat(above) - guess > SAFE * guess && guess - Float.intBitsToFloat(above - 1) > SAFE * guess;
            steps[c] = clear ? above : firstAtLeast(c, (float) guess, low, span, lowBits, highBits);
        }
        steps[256] = Integer.MAX_VALUE;
        int shift = 0;
        while (((highBits - lowBits) >>> shift) >= CELLS) shift++;
        int cells = ((highBits - lowBits) >>> shift) + 1;
        // cell i (start lowBits + i * 2^shift) has code c from c's first cell (the first start at or above
        // steps[c]) up to c + 1's: filled run by run instead of a search per cell
        for (int c = 0, from = 0; c <= 255; c++) {
            int to = c == 255 ? cells : Math.max(from, firstCellAtOrAbove(steps[c + 1], lowBits, shift, cells));
            Arrays.fill(cell, from, to, (long) steps[c + 1] << 32 | c);
            from = to;
        }
        boolean twoInACell = false; // (subnormal values, or one float several codes apart)
        for (int c = 1; c < 255; c++) twoInACell |= (steps[c] - lowBits) >>> shift == (steps[c + 1] - lowBits) >>> shift;
        if (twoInACell) {
            encodeWalking(values, n, lowBits, shift, cells, codes);
            return;
        }
        for (int i = 0; i < n; i++) {
            // no cell holds two steps: the cell's code, plus one at or above its step; anything at or under low
            // is read as low (cell 0: code 0, its step above low). No branch (a mispredicted one per value cost
            // more than the logarithm it replaces) and no load that depends on another.
            int bits = Math.max(Float.floatToRawIntBits(values[i]), lowBits);
            long x = cell[Math.min(cells - 1, (bits - lowBits) >>> shift)];
            codes[i] = (byte) ((int) x + 1 - ((bits - (int) (x >>> 32)) >>> 31));
        }
    }

    /** The first cell whose start is at or above {@code bits} (bits > lowBits), at most {@code cells}. */
    private static int firstCellAtOrAbove(int bits, int lowBits, int shift, int cells) {
        return (int) Math.min(cells, ((long) bits - lowBits + (1L << shift) - 1) >>> shift);
    }

    /** The codes where a cell may hold several steps: the steps above the cell's are walked on. */
    private void encodeWalking(float[] values, int n, int lowBits, int shift, int cells, byte[] codes) {
        for (int i = 0; i < n; i++) {
            int bits = Float.floatToRawIntBits(values[i]);
            int c = 0;
            if (bits > lowBits) { // (0, -0 and anything at or under low: code 0)
                long x = cell[Math.min(cells - 1, (bits - lowBits) >>> shift)];
                c = (int) x + 1 - ((bits - (int) (x >>> 32)) >>> 31);
                while (steps[c + 1] <= bits) c++;
            }
            codes[i] = (byte) c;
        }
    }

    /**
     * The float bits of the smallest value in (low, high] with code c or more: from the guess, a
     * bracket (code under c below it, c or more at its top) widened by doubling, then bisected. code(low)
     * is 0 and code(high) is 255, so the bracket exists.
     */
    private static int firstAtLeast(int c, float guess, float low, double span, int lowBits, int highBits) {
        int g = Math.max(lowBits + 1, Math.min(highBits, Float.floatToRawIntBits(guess)));
        int below, atLeast; // code(below) < c <= code(atLeast)
        if (code(Float.intBitsToFloat(g), low, span) >= c) {
            atLeast = g;
            int step = 1;
            while (true) {
                below = Math.max(lowBits, atLeast - step);
                if (below == lowBits || code(Float.intBitsToFloat(below), low, span) < c) break;
                atLeast = below;
                step <<= 1;
            }
        } else {
            below = g;
            int step = 1;
            while (true) {
                atLeast = (int) Math.min(highBits, (long) below + step);
                if (atLeast == highBits || code(Float.intBitsToFloat(atLeast), low, span) >= c) break;
                below = atLeast;
                step <<= 1;
            }
        }
        while (atLeast - below > 1) {
            int mid = below + (atLeast - below) / 2;
            if (code(Float.intBitsToFloat(mid), low, span) >= c) atLeast = mid;
            else below = mid;
        }
        return atLeast;
    }
}
