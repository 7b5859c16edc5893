package org.opensearch.mach.featurize;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A MACH hash family: the product hash ({@link ProductHash}) of R repetitions into B buckets, named so
 * that an index can be built with it once and serve every model trained with the same family
 * (spec/bundle-format.md, "Hash families"). The name spells every parameter:
 * {@code murmur3_x86_32-r16-b4096-s1296122696}: function, R, B and the first seed; repetition r hashes
 * with seed {@code (s + 7919 r) mod 2^32}, the seeds the trainer writes by default.
 *
 * <p>Index-time code of (repetition r, bucket b): {@code r * B + b}, in [0, R * B). It is the indexed
 * term of the {@code mach_buckets} field (4 bytes, big-endian) and its sorted-numeric doc value; codes
 * grow with r, so a document's R doc values, read in order, are its buckets of repetitions 0..R-1.
 */
public record HashFamily(int repetitions, int buckets, long firstSeed) {
    public static final String FUNCTION = ProductHash.FUNCTION;
    /** Step between the seeds of consecutive repetitions. */
    public static final long SEED_STEP = 7919;
    public static final int MAX_REPETITIONS = 256;
    /** R * B must fit the 32-bit code with room: 2^24 codes at most. */
    public static final int MAX_CODES = 1 << 24;

    private static final Pattern NAME = Pattern.compile("murmur3_x86_32-r(\\d{1,3})-b(\\d{1,8})-s(\\d{1,10})");
    private static final long MASK32 = 0xFFFFFFFFL;

    public HashFamily {
        if (repetitions < 1 || repetitions > MAX_REPETITIONS) {
            throw new IllegalArgumentException("hash family repetitions must be in [1, " + MAX_REPETITIONS + "], got " + repetitions);
        }
        if (buckets < 2) throw new IllegalArgumentException("hash family buckets must be >= 2, got " + buckets);
        if ((long) repetitions * buckets > MAX_CODES) {
            throw new IllegalArgumentException("hash family R x B must be at most " + MAX_CODES + ", got " + repetitions + " x " + buckets);
        }
        if (firstSeed < 0 || firstSeed > MASK32) throw new IllegalArgumentException("hash family seed must be an unsigned 32-bit integer, got " + firstSeed);
    }

    /** Parses a family name; a clear IllegalArgumentException for anything else. */
    public static HashFamily parse(String name) {
        Matcher m = name == null ? null : NAME.matcher(name);
        if (m == null || !m.matches()) {
            throw new IllegalArgumentException(
                "unknown hash family [" + name + "]; a family is named " + FUNCTION + "-r<R>-b<B>-s<first seed>, e.g. "
                    + FUNCTION + "-r16-b4096-s1296122696 (the model card's product_hash.family)"
            );
        }
        return new HashFamily(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)), Long.parseLong(m.group(3)));
    }

    /** The family of a card's product hash, or null when its seeds are not a family's (then the model cannot serve an index-side query). */
    public static HashFamily of(long[] seeds, int buckets) {
        if (seeds.length == 0) return null;
        for (int r = 0; r < seeds.length; r++) {
            if (seeds[r] != ((seeds[0] + SEED_STEP * r) & MASK32)) return null;
        }
        return new HashFamily(seeds.length, buckets, seeds[0]);
    }

    public String name() {
        return String.format(Locale.ROOT, "%s-r%d-b%d-s%d", FUNCTION, repetitions, buckets, firstSeed);
    }

    public long[] seeds() {
        long[] seeds = new long[repetitions];
        for (int r = 0; r < repetitions; r++) seeds[r] = (firstSeed + SEED_STEP * r) & MASK32;
        return seeds;
    }

    public ProductHash productHash() {
        return new ProductHash(seeds(), buckets);
    }

    /** The index-time code of bucket b of repetition r. */
    public int code(int repetition, int bucket) {
        return repetition * buckets + bucket;
    }

    /** The R codes of one product, ascending (repetition order). */
    public int[] codesOf(String productId) {
        int[] b = productHash().bucketsOf(productId);
        for (int r = 0; r < b.length; r++) b[r] = code(r, b[r]);
        return b;
    }

    @Override
    public String toString() {
        return name();
    }
}
