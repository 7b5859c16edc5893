package org.opensearch.mach.featurize;

import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Query featurizer, the Java half of spec/bundle-format.md (normalization {@code nfkc_lower},
 * tokenization {@code unicode_letter_number_runs}, features word / word_bigram / char_trigram,
 * hash {@code murmur3_x86_32}). Must agree bit for bit with model-tools/mach_tools/featurize.py;
 * both are checked against spec/test-vectors.json. Immutable and thread-safe.
 */
public final class Featurizer {
    public static final String NORMALIZATION = "nfkc_lower";
    public static final String TOKENIZATION = "unicode_letter_number_runs";
    public static final List<String> FEATURES = List.of("word", "word_bigram", "char_trigram");
    public static final String HASH = "murmur3_x86_32";

    private final long seed;
    private final int dimension;
    private final int maxFeatures;
    private final int paddingId;

    public Featurizer(long seed, int dimension, int maxFeatures, int paddingId) {
        if (dimension < 2) {
            throw new IllegalArgumentException("featurizer dimension must be >= 2, got " + dimension);
        }
        if (maxFeatures < 1) {
            throw new IllegalArgumentException("featurizer max_features must be >= 1, got " + maxFeatures);
        }
        this.seed = seed;
        this.dimension = dimension;
        this.maxFeatures = maxFeatures;
        this.paddingId = paddingId;
    }

    public int dimension() {
        return dimension;
    }

    public int maxFeatures() {
        return maxFeatures;
    }

    public int paddingId() {
        return paddingId;
    }

    public long seed() {
        return seed;
    }

    /** NFKC, then locale-independent full lower-casing (as Python's str.lower()). */
    static String normalize(String text) {
        return Normalizer.normalize(text, Normalizer.Form.NFKC).toLowerCase(Locale.ROOT);
    }

    private static boolean isTokenCodePoint(int cp) {
        switch (Character.getType(cp)) {
            case Character.UPPERCASE_LETTER:
            case Character.LOWERCASE_LETTER:
            case Character.TITLECASE_LETTER:
            case Character.MODIFIER_LETTER:
            case Character.OTHER_LETTER:
            case Character.DECIMAL_DIGIT_NUMBER:
            case Character.LETTER_NUMBER:
            case Character.OTHER_NUMBER:
                return true;
            default:
                return false;
        }
    }

    /** Maximal runs of letter (L*) / number (N*) code points of the normalized text. */
    static List<String> tokenize(String normalized) {
        List<String> tokens = new ArrayList<>();
        int start = -1;
        for (int i = 0; i < normalized.length();) {
            int cp = normalized.codePointAt(i);
            if (isTokenCodePoint(cp)) {
                if (start < 0) start = i;
            } else if (start >= 0) {
                tokens.add(normalized.substring(start, i));
                start = -1;
            }
            i += Character.charCount(cp);
        }
        if (start >= 0) tokens.add(normalized.substring(start));
        return tokens;
    }

    /**
     * The text as the featurizer sees it: normalized tokens joined by one space. Texts with the same
     * normalized text have the same features (a cache key).
     */
    public String normalizedText(String text) {
        return String.join(" ", tokenize(normalize(text)));
    }

    /** Feature strings in contract order, de-duplicated (first kept), truncated to max_features. */
    public List<String> featureStrings(String text) {
        List<String> tokens = tokenize(normalize(text));
        Set<String> out = new LinkedHashSet<>();
        for (String t : tokens) {
            if (!add(out, "w:" + t)) return new ArrayList<>(out);
        }
        for (int i = 0; i + 1 < tokens.size(); i++) {
            if (!add(out, "b:" + tokens.get(i) + " " + tokens.get(i + 1))) return new ArrayList<>(out);
        }
        for (String t : tokens) {
            int[] cps = ("^" + t + "$").codePoints().toArray();
            for (int i = 0; i + 3 <= cps.length; i++) {
                if (!add(out, "c:" + new String(cps, i, 3))) return new ArrayList<>(out);
            }
        }
        return new ArrayList<>(out);
    }

    /** Adds a feature; false once max_features is reached. */
    private boolean add(Set<String> out, String feature) {
        out.add(feature);
        return out.size() < maxFeatures;
    }

    /** Id of one feature string: 1 + (unsigned murmur3 mod (D - 1)); 0 is padding. */
    public long featureId(String feature) {
        return 1 + Murmur3.hashUnsigned(feature, seed) % (dimension - 1);
    }

    /** Feature ids of a text, unpadded (length <= max_features); ids may repeat on hash collisions. */
    public long[] featureIds(String text) {
        List<String> features = featureStrings(text);
        long[] ids = new long[features.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = featureId(features.get(i));
        }
        return ids;
    }

    /** The ONNX input row: ids right-padded with padding_id to max_features. */
    public long[] paddedFeatureIds(String text) {
        return pad(featureIds(text));
    }

    /** Feature ids (as {@link #featureIds} gives them) right-padded with padding_id to max_features. */
    public long[] pad(long[] ids) {
        long[] row = Arrays.copyOf(ids, maxFeatures);
        Arrays.fill(row, ids.length, maxFeatures, paddingId);
        return row;
    }
}
