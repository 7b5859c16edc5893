package org.opensearch.mach.query;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.opensearch.common.xcontent.json.JsonXContent;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.common.io.stream.Writeable;
import org.opensearch.core.xcontent.DeprecationHandler;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.rest.StrictJson;

import java.io.IOException;
import java.util.List;
import java.util.Objects;
import java.util.function.Function;

/**
 * The tunable parameters of a {@code mach} query, each null where not given. A request gives some;
 * the model card's optional {@code query_defaults} (spec/bundle-format.md) may give others; the
 * request's win, the card's fill the gaps ({@link #withDefaults}), and the accessors fill the rest
 * with the plugin's defaults. Both are read by {@link #read}, so a card takes exactly the values a
 * request takes.
 */
public final class MachOptions implements Writeable {
    public static final List<String> NAMES = List.of(
        "top_n", "decoding", "buckets_per_repetition", "min_repetitions", "score", "normalize", "combine", "normalization", "mach_weight",
        "lexical_window", "scored_buckets", "rest_buckets"
    );
    /** What a card's {@code query_defaults.index_side} may set: top_n and decoding do not apply to index-side scoring. */
    public static final List<String> INDEX_SIDE_NAMES = NAMES.stream().filter(n -> !n.equals("top_n") && !n.equals("decoding")).toList();
    /** The keys of a card's {@code query_defaults}: the parameters and the index_side block (read apart). */
    private static final List<String> CARD_NAMES = java.util.stream.Stream.concat(NAMES.stream(), java.util.stream.Stream.of("index_side")).toList();
    public static final int DEFAULT_TOP_N = 100;
    public static final int MAX_TOP_N = 10_000;
    public static final int DEFAULT_BUCKETS_PER_REPETITION = 10;
    public static final int MAX_BUCKETS_PER_REPETITION = 100_000;
    /** Raw scores: a product the model is sure of (score ~1) weighs about one strong BM25 title match. Not tuned. */
    public static final float DEFAULT_MACH_WEIGHT = 10f;
    /** min_max: both sides weigh the same, as in neural-search's default. */
    public static final float DEFAULT_MIN_MAX_WEIGHT = 0.5f;
    /**
     * Index-side MACH ({@code bucket_field}): buckets per repetition sent to the shards with their own
     * float probability; the rest are quantized to a byte each ({@code rest_buckets: quantized}) or share
     * one residual ({@code residual}). Measured (BucketTableSizeTests, hd-enc R 16 / B 4,096, 300 Home
     * Depot dev queries): s 256 quantized is 82 KB per shard request with 0.998 top-10 overlap with the
     * exact scores (exact: 262 KB); s 256 residual 21 KB, overlap 0.72. R 32 / B 20,000: 675 KB / 43 KB.
     */
    public static final int DEFAULT_SCORED_BUCKETS = 256;
    /**
     * A table of at most this many probabilities (R x B; 256 KB as floats) is sent whole, exact, when the query
     * names neither scored_buckets nor rest_buckets: building it is one copy (~0.06 ms at R 16 / B 4,096 against
     * ~0.7 ms for the top 256 and the quantized rest, docs/performance.md), for 3.2 x the bytes per remote shard.
     */
    public static final int EXACT_TABLE_PROBABILITIES = 1 << 16;
    public static final int MAX_SCORED_BUCKETS = 1 << 24;

    private Integer topN;
    private Decoder.Strategy decoding;
    private Integer bucketsPerRepetition;
    private Integer minRepetitions;
    private Decoder.ScoreMode scoreMode;
    private Boolean normalize;
    private Combine combine;
    private Normalization normalization;
    private Float machWeight;
    private Integer lexicalWindow;
    private Integer scoredBuckets;
    /** true: the unsent buckets quantized (default); false: one residual per repetition */
    private Boolean quantizeRest;

    public MachOptions() {}

    public MachOptions(StreamInput in) throws IOException {
        topN = in.readOptionalVInt();
        decoding = readEnum(in, Decoder.Strategy::parse);
        bucketsPerRepetition = in.readOptionalVInt();
        minRepetitions = in.readOptionalVInt();
        scoreMode = readEnum(in, Decoder.ScoreMode::parse);
        normalize = in.readOptionalBoolean();
        combine = readEnum(in, Combine::parse);
        normalization = readEnum(in, Normalization::parse);
        machWeight = in.readOptionalFloat();
        lexicalWindow = in.readOptionalVInt();
        scoredBuckets = in.readOptionalVInt();
        quantizeRest = in.readOptionalBoolean();
    }

    @Override
    public void writeTo(StreamOutput out) throws IOException {
        out.writeOptionalVInt(topN);
        out.writeOptionalString(decoding == null ? null : decoding.value());
        out.writeOptionalVInt(bucketsPerRepetition);
        out.writeOptionalVInt(minRepetitions);
        out.writeOptionalString(scoreMode == null ? null : scoreMode.value());
        out.writeOptionalBoolean(normalize);
        out.writeOptionalString(combine == null ? null : combine.value());
        out.writeOptionalString(normalization == null ? null : normalization.value());
        out.writeOptionalFloat(machWeight);
        out.writeOptionalVInt(lexicalWindow);
        out.writeOptionalVInt(scoredBuckets);
        out.writeOptionalBoolean(quantizeRest);
    }

    private static <E> E readEnum(StreamInput in, Function<String, E> parse) throws IOException {
        String s = in.readOptionalString();
        return s == null ? null : parse.apply(s);
    }

    /** Reads parameter {@code field} (one of {@link #NAMES}) strictly: a 400 naming it for a wrong type or value. */
    public void read(String field, XContentParser p, String what) throws IOException {
        switch (field) {
            case "top_n" -> topN(StrictJson.integer(p, what, field, 1, MAX_TOP_N));
            case "decoding" -> decoding(Decoder.Strategy.parse(StrictJson.text(p, what, field)));
            case "buckets_per_repetition" -> bucketsPerRepetition(StrictJson.integer(p, what, field, 1, MAX_BUCKETS_PER_REPETITION));
            case "min_repetitions" -> minRepetitions(StrictJson.integer(p, what, field, 1, Integer.MAX_VALUE));
            case "score" -> scoreMode(Decoder.ScoreMode.parse(StrictJson.text(p, what, field)));
            case "normalize" -> normalize(StrictJson.bool(p, what, field));
            case "combine" -> combine(Combine.parse(StrictJson.text(p, what, field)));
            case "normalization" -> normalization(Normalization.parse(StrictJson.text(p, what, field)));
            case "mach_weight" -> machWeight(StrictJson.number(p, what, field));
            case "lexical_window" -> lexicalWindow(StrictJson.integer(p, what, field, 1, MAX_TOP_N));
            case "scored_buckets" -> scoredBuckets(StrictJson.integer(p, what, field, 1, MAX_SCORED_BUCKETS));
            case "rest_buckets" -> {
                String v = StrictJson.text(p, what, field);
                if (!v.equals("quantized") && !v.equals("residual")) {
                    throw new IllegalArgumentException(what + " [rest_buckets] must be [quantized] or [residual], got [" + v + "]");
                }
                quantizeRest = v.equals("quantized");
            }
            default -> throw new IllegalStateException("parameter [" + field + "] is not a mach option");
        }
    }

    /**
     * A model's {@code query_defaults} (absent: none) for one path, read like a request's parameters
     * and checked as they would be with a lexical query; a bad value is a 400 naming the model and the
     * field. Both blocks are always read, so a bad {@code index_side} fails catalog-side queries too.
     * For {@code indexSide} (bucket_field) queries a card's {@code index_side} block, where present,
     * gives the fusion (combine, normalization, mach_weight, lexical_window: the top level's are not
     * used, top_n and decoding neither) and the top level fills the other keys.
     */
    public static MachOptions fromCard(JsonNode defaults, String modelId, boolean indexSide) throws IOException {
        if (defaults == null || defaults.isMissingNode()) return new MachOptions();
        String what = "model [" + modelId + "] mach.json [query_defaults]";
        JsonNode indexSideNode = defaults.isObject() ? defaults.get("index_side") : null;
        JsonNode topLevel = defaults;
        if (indexSideNode != null) {
            topLevel = defaults.deepCopy();
            ((ObjectNode) topLevel).remove("index_side");
        }
        MachOptions top = readCard(topLevel, what, CARD_NAMES);
        if (indexSideNode == null) return top;
        MachOptions side = readCard(indexSideNode, what + " [index_side]", INDEX_SIDE_NAMES);
        return indexSide ? side.withSharedFrom(top) : top;
    }

    private static MachOptions readCard(JsonNode node, String what, List<String> names) throws IOException {
        MachOptions o = new MachOptions();
        try (
            XContentParser p = JsonXContent.jsonXContent.createParser(
                NamedXContentRegistry.EMPTY,
                DeprecationHandler.THROW_UNSUPPORTED_OPERATION,
                node.toString()
            )
        ) {
            StrictJson.readObject(p, what, names, (field, x) -> o.read(field, x, what));
        }
        o.validate(true, what);
        return o;
    }

    /**
     * These options (a card's index_side block) with the keys that mean the same on both paths
     * (candidates, scoring, bucket table) filled from the card's top level; the fusion keys are tuned
     * together and the top level's weigh raw MACH scores on another scale (index-side scores every
     * lexical hit, ~1,000x smaller weights measured), so they are not mixed in.
     */
    private MachOptions withSharedFrom(MachOptions top) {
        MachOptions o = copy();
        o.bucketsPerRepetition = first(bucketsPerRepetition, top.bucketsPerRepetition);
        o.minRepetitions = first(minRepetitions, top.minRepetitions);
        o.scoreMode = first(scoreMode, top.scoreMode);
        o.normalize = first(normalize, top.normalize);
        o.scoredBuckets = first(scoredBuckets, top.scoredBuckets);
        o.quantizeRest = first(quantizeRest, top.quantizeRest);
        return o;
    }

    /** The given parameters only, as the request's JSON fields. */
    public void toXContent(XContentBuilder b) throws IOException {
        if (topN != null) b.field("top_n", topN);
        if (decoding != null) b.field("decoding", decoding.value());
        if (bucketsPerRepetition != null) b.field("buckets_per_repetition", bucketsPerRepetition);
        if (minRepetitions != null) b.field("min_repetitions", minRepetitions);
        if (scoreMode != null) b.field("score", scoreMode.value());
        if (normalize != null) b.field("normalize", normalize);
        if (combine != null) b.field("combine", combine.value());
        if (normalization != null) b.field("normalization", normalization.value());
        if (machWeight != null) b.field("mach_weight", machWeight);
        if (lexicalWindow != null) b.field("lexical_window", lexicalWindow);
        if (scoredBuckets != null) b.field("scored_buckets", scoredBuckets);
        if (quantizeRest != null) b.field("rest_buckets", quantizeRest ? "quantized" : "residual");
    }

    // ------------------------------------------------------------------ setters (each value on its own)

    public MachOptions topN(int n) {
        if (n < 1 || n > MAX_TOP_N) throw new IllegalArgumentException("[mach] [top_n] must be between 1 and " + MAX_TOP_N + ", got [" + n + "]");
        topN = n;
        return this;
    }

    public MachOptions decoding(Decoder.Strategy s) {
        decoding = Objects.requireNonNull(s);
        return this;
    }

    public MachOptions bucketsPerRepetition(int m) {
        if (m < 1 || m > MAX_BUCKETS_PER_REPETITION) {
            throw new IllegalArgumentException(
                "[mach] [buckets_per_repetition] must be between 1 and " + MAX_BUCKETS_PER_REPETITION + ", got [" + m + "]"
            );
        }
        bucketsPerRepetition = m;
        return this;
    }

    public MachOptions minRepetitions(int f) {
        if (f < 1) throw new IllegalArgumentException("[mach] [min_repetitions] must be >= 1, got [" + f + "]");
        minRepetitions = f;
        return this;
    }

    public MachOptions scoreMode(Decoder.ScoreMode s) {
        scoreMode = Objects.requireNonNull(s);
        return this;
    }

    public MachOptions normalize(boolean n) {
        normalize = n;
        return this;
    }

    public MachOptions combine(Combine c) {
        combine = c;
        return this;
    }

    public MachOptions normalization(Normalization n) {
        normalization = n;
        return this;
    }

    /** Its range depends on the normalization: checked by {@link #validate}. */
    public MachOptions machWeight(float w) {
        if (!Float.isFinite(w)) throw new IllegalArgumentException("[mach] [mach_weight] must be a finite number, got [" + w + "]");
        machWeight = w;
        return this;
    }

    public MachOptions lexicalWindow(int n) {
        if (n < 1 || n > MAX_TOP_N) {
            throw new IllegalArgumentException("[mach] [lexical_window] must be between 1 and " + MAX_TOP_N + ", got [" + n + "]");
        }
        lexicalWindow = n;
        return this;
    }

    public MachOptions scoredBuckets(int s) {
        if (s < 1 || s > MAX_SCORED_BUCKETS) {
            throw new IllegalArgumentException("[mach] [scored_buckets] must be between 1 and " + MAX_SCORED_BUCKETS + ", got [" + s + "]");
        }
        scoredBuckets = s;
        return this;
    }

    /** Whether the query itself gives scored_buckets or rest_buckets (they apply to bucket_field only). */
    public boolean hasScoredBuckets() {
        return scoredBuckets != null || quantizeRest != null;
    }

    /** Whether the buckets not among the scored ones travel quantized (default) rather than as one residual. */
    public boolean quantizeRest() {
        return quantizeRest == null || quantizeRest;
    }

    // ------------------------------------------------------------------ effective values

    /**
     * Buckets per repetition sent to the shards for a model of R repetitions of B buckets: at least
     * buckets_per_repetition (the candidates come from the top ones), at most B (exact); unless the query
     * says, B for a table of at most {@link #EXACT_TABLE_PROBABILITIES}, else {@link #DEFAULT_SCORED_BUCKETS}.
     */
    public int scoredBucketsFor(int repetitions, int buckets) {
        if (!hasScoredBuckets() && (long) repetitions * buckets <= EXACT_TABLE_PROBABILITIES) return buckets;
        int s = scoredBuckets != null ? scoredBuckets : DEFAULT_SCORED_BUCKETS;
        return Math.min(buckets, Math.max(s, decoderOptions().bucketsPerRepetition()));
    }

    public int topN() {
        return topN != null ? topN : DEFAULT_TOP_N;
    }

    public Decoder.Options decoderOptions() {
        return new Decoder.Options(
            topN(),
            decoding != null ? decoding : Decoder.Strategy.AUTO,
            bucketsPerRepetition != null ? bucketsPerRepetition : DEFAULT_BUCKETS_PER_REPETITION,
            minRepetitions != null ? minRepetitions : 1,
            scoreMode != null ? scoreMode : Decoder.ScoreMode.MEAN
        );
    }

    public boolean normalize() {
        return normalize != null && normalize;
    }

    /** boost when a lexical query is given without a mode; null without a lexical query. */
    public Combine combine(boolean hasLexical) {
        return !hasLexical ? null : combine != null ? combine : Combine.BOOST;
    }

    public Normalization normalization() {
        return normalization != null ? normalization : Normalization.NONE;
    }

    public float machWeight() {
        if (machWeight != null) return machWeight;
        return normalization() == Normalization.MIN_MAX ? DEFAULT_MIN_MAX_WEIGHT : DEFAULT_MACH_WEIGHT;
    }

    /** How many top lexical hits min_max reads the lexical score range from: top_n unless given. */
    public int lexicalWindow() {
        return lexicalWindow != null ? lexicalWindow : topN();
    }

    // ------------------------------------------------------------------ combining

    /**
     * These options with the gaps filled from a model's defaults. The fusion defaults (combine,
     * normalization, mach_weight, lexical_window) apply only where they mean something: with a
     * lexical query; the last three not when the combine mode is filter (scored by the lexical query
     * alone); mach_weight and lexical_window only with the normalization the model gives them for
     * (a weight on min-max scores means nothing on raw scores).
     */
    public MachOptions withDefaults(MachOptions d, boolean hasLexical) {
        MachOptions o = withSharedFrom(d);
        o.topN = first(topN, d.topN);
        o.decoding = first(decoding, d.decoding);
        if (hasLexical) {
            o.combine = first(combine, d.combine);
            if (o.combine(true) != Combine.FILTER) {
                o.normalization = first(normalization, d.normalization);
                if (o.normalization() == d.normalization()) { // the model's weight and window are meant for its normalization
                    o.machWeight = first(machWeight, d.machWeight);
                    o.lexicalWindow = first(lexicalWindow, d.lexicalWindow);
                }
            }
        }
        return o;
    }

    private static <T> T first(T a, T b) {
        return a != null ? a : b;
    }

    /** The checks across parameters; {@code what} prefixes the messages ("[mach]", or the card's field). */
    public void validate(boolean hasLexical, String what) {
        if (decoding == Decoder.Strategy.EXACT && minRepetitions != null && minRepetitions > 1) {
            throw new IllegalArgumentException(
                what + " [min_repetitions] applies to candidate decoding only; use [decoding] [candidates] or [auto] with it"
            );
        }
        if (!hasLexical) {
            if (combine != null) {
                throw new IllegalArgumentException(
                    what + " [combine] [" + combine.value() + "] needs a [lexical] query to combine with; add [lexical] or remove [combine]"
                );
            }
            if (machWeight != null) {
                throw new IllegalArgumentException(what + " [mach_weight] applies only with a [lexical] query; use [boost] to scale a bare mach query");
            }
            if (normalization != null) throw new IllegalArgumentException(what + " [normalization] applies only with a [lexical] query");
        }
        boolean minMax = normalization() == Normalization.MIN_MAX;
        if (minMax && combine(true) == Combine.FILTER) {
            throw new IllegalArgumentException(
                what + " [normalization] [min_max] applies to [combine] [boost] and [hybrid]; [filter] ranks by the lexical score alone"
            );
        }
        if (lexicalWindow != null && !minMax) {
            throw new IllegalArgumentException(what + " [lexical_window] applies only with [normalization] [min_max]");
        }
        if (machWeight != null && minMax && (machWeight < 0 || machWeight > 1)) {
            throw new IllegalArgumentException(
                what + " [mach_weight] must be between 0 and 1 with [normalization] [min_max] (the MACH share of the score), got [" + machWeight + "]"
            );
        }
        if (machWeight != null && !minMax && machWeight <= 0) {
            throw new IllegalArgumentException(what + " [mach_weight] must be a number > 0, got [" + machWeight + "]");
        }
    }

    MachOptions copy() {
        MachOptions o = new MachOptions();
        o.topN = topN;
        o.decoding = decoding;
        o.bucketsPerRepetition = bucketsPerRepetition;
        o.minRepetitions = minRepetitions;
        o.scoreMode = scoreMode;
        o.normalize = normalize;
        o.combine = combine;
        o.normalization = normalization;
        o.machWeight = machWeight;
        o.lexicalWindow = lexicalWindow;
        o.scoredBuckets = scoredBuckets;
        o.quantizeRest = quantizeRest;
        return o;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof MachOptions x)) return false;
        return Objects.equals(topN, x.topN)
            && decoding == x.decoding
            && Objects.equals(bucketsPerRepetition, x.bucketsPerRepetition)
            && Objects.equals(minRepetitions, x.minRepetitions)
            && scoreMode == x.scoreMode
            && Objects.equals(normalize, x.normalize)
            && combine == x.combine
            && normalization == x.normalization
            && Objects.equals(machWeight, x.machWeight)
            && Objects.equals(lexicalWindow, x.lexicalWindow)
            && Objects.equals(scoredBuckets, x.scoredBuckets)
            && Objects.equals(quantizeRest, x.quantizeRest);
    }

    @Override
    public int hashCode() {
        return Objects.hash(topN, decoding, bucketsPerRepetition, minRepetitions, scoreMode, normalize, combine, normalization, machWeight,
            lexicalWindow, scoredBuckets, quantizeRest);
    }
}
