package org.opensearch.mach.query;

import org.apache.lucene.search.Query;
import org.apache.lucene.util.SetOnce;
import org.opensearch.core.ParseField;
import org.opensearch.core.action.ActionListener;
import org.opensearch.core.common.ParsingException;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentLocation;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.query.AbstractQueryBuilder;
import org.opensearch.index.query.BoolQueryBuilder;
import org.opensearch.index.query.QueryBuilder;
import org.opensearch.index.query.QueryCoordinatorContext;
import org.opensearch.index.query.QueryRewriteContext;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.mach.rest.StrictJson;

import java.io.IOException;
import java.util.List;
import java.util.Objects;
import java.util.function.Supplier;

/**
 * The {@code mach} query: MACH product retrieval, alone or fused with a lexical query.
 *
 * <pre>{"mach": {"model_id": "hd-v1", "query_text": "cordless drill", "product_id_field": "product_id",
 *          "top_n": 100, "lexical": {"match": {"title": "cordless drill"}}, "combine": "boost", "mach_weight": 10}}</pre>
 *
 * On the coordinating node, {@link #doRewrite} runs the model once (on the {@code mach_inference}
 * pool, via the rewrite phase's async actions) and the query becomes a {@link MachProductsQueryBuilder}
 * carrying the top-N (product id, score) pairs, combined with the lexical query by a plain
 * {@code bool}. Shards never run the model. The score of product k fed to Lucene is
 * {@code s(k)}: the mean probability {@code mean_r P_r(h_r(k))} ({@code score: mean}, default) or
 * {@code max(0, B/(B-1) (mean - 1/B))} ({@code score: calibrated}); with {@code normalize: true}
 * divided by the top product's score. See plugin/README.md for the formulas of each combine mode.
 */
public class MachQueryBuilder extends AbstractQueryBuilder<MachQueryBuilder> {
    public static final String NAME = "mach";
    public static final int MAX_TOP_N = 10_000;
    public static final int MAX_TEXT_LENGTH = 1024;
    public static final int DEFAULT_TOP_N = 100;
    public static final int DEFAULT_BUCKETS_PER_REPETITION = 10;
    public static final int MAX_BUCKETS_PER_REPETITION = 100_000;
    /** A product the model is sure of (score ~1) weighs about one strong BM25 title match. Not tuned. */
    public static final float DEFAULT_MACH_WEIGHT = 10f;

    static final ParseField MODEL_ID = new ParseField("model_id");
    static final ParseField QUERY_TEXT = new ParseField("query_text");
    static final ParseField PRODUCT_ID_FIELD = new ParseField("product_id_field");
    static final ParseField TOP_N = new ParseField("top_n");
    static final ParseField DECODING = new ParseField("decoding");
    static final ParseField BUCKETS_PER_REPETITION = new ParseField("buckets_per_repetition");
    static final ParseField MIN_REPETITIONS = new ParseField("min_repetitions");
    static final ParseField SCORE = new ParseField("score");
    static final ParseField NORMALIZE = new ParseField("normalize");
    static final ParseField LEXICAL = new ParseField("lexical");
    static final ParseField COMBINE = new ParseField("combine");
    static final ParseField MACH_WEIGHT = new ParseField("mach_weight");
    static final List<String> PARAMETERS = List.of(
        "model_id", "query_text", "product_id_field", "top_n", "decoding", "buckets_per_repetition", "min_repetitions", "score",
        "normalize", "lexical", "combine", "mach_weight", "boost", "_name"
    );

    private final String modelId;
    private final String queryText;
    private final String productIdField;
    private int topN = DEFAULT_TOP_N;
    private Decoder.Strategy decoding = Decoder.Strategy.AUTO;
    private int bucketsPerRepetition = DEFAULT_BUCKETS_PER_REPETITION;
    private int minRepetitions = 1;
    private Decoder.ScoreMode scoreMode = Decoder.ScoreMode.MEAN;
    private boolean normalize = false;
    private QueryBuilder lexical;
    private Combine combine;
    private Float machWeight;

    /** The node's inference service; null where the plugin is not initialized (parsing-only contexts). */
    private final Supplier<MachInferenceService> services;
    /** Set once inference has run: the rewritten query. */
    private SetOnce<QueryBuilder> rewritten;

    public MachQueryBuilder(String modelId, String queryText, String productIdField, Supplier<MachInferenceService> services) {
        if (modelId != null && modelId.isBlank()) {
            throw new IllegalArgumentException("[mach] [model_id] must not be empty (leave it out to use the index's " + IndexBinding.MODEL.getKey() + ")");
        }
        if (queryText == null || queryText.isBlank()) {
            throw new IllegalArgumentException("[mach] requires a non-empty [query_text]");
        }
        if (queryText.length() > MAX_TEXT_LENGTH) {
            throw new IllegalArgumentException(
                "[mach] [query_text] is " + queryText.length() + " characters long; at most " + MAX_TEXT_LENGTH + " are allowed"
            );
        }
        if (productIdField != null && productIdField.isBlank()) {
            throw new IllegalArgumentException(
                "[mach] [product_id_field] must not be empty (leave it out to use the index's " + IndexBinding.PRODUCT_ID_FIELD.getKey() + ")"
            );
        }
        this.modelId = modelId;
        this.queryText = queryText;
        this.productIdField = productIdField;
        this.services = services == null ? () -> null : services;
    }

    public MachQueryBuilder(StreamInput in, Supplier<MachInferenceService> services) throws IOException {
        super(in);
        this.modelId = in.readOptionalString();
        this.queryText = in.readString();
        this.productIdField = in.readOptionalString();
        this.topN = in.readVInt();
        this.decoding = in.readEnum(Decoder.Strategy.class);
        this.bucketsPerRepetition = in.readVInt();
        this.minRepetitions = in.readVInt();
        this.scoreMode = in.readEnum(Decoder.ScoreMode.class);
        this.normalize = in.readBoolean();
        this.lexical = in.readOptionalNamedWriteable(QueryBuilder.class);
        this.combine = in.readBoolean() ? in.readEnum(Combine.class) : null;
        this.machWeight = in.readBoolean() ? in.readFloat() : null;
        this.services = services == null ? () -> null : services;
    }

    @Override
    protected void doWriteTo(StreamOutput out) throws IOException {
        out.writeOptionalString(modelId);
        out.writeString(queryText);
        out.writeOptionalString(productIdField);
        out.writeVInt(topN);
        out.writeEnum(decoding);
        out.writeVInt(bucketsPerRepetition);
        out.writeVInt(minRepetitions);
        out.writeEnum(scoreMode);
        out.writeBoolean(normalize);
        out.writeOptionalNamedWriteable(lexical);
        out.writeBoolean(combine != null);
        if (combine != null) out.writeEnum(combine);
        out.writeBoolean(machWeight != null);
        if (machWeight != null) out.writeFloat(machWeight);
    }

    // ------------------------------------------------------------------ setters (validate)

    public MachQueryBuilder topN(int topN) {
        if (topN < 1 || topN > MAX_TOP_N) {
            throw new IllegalArgumentException("[mach] [top_n] must be between 1 and " + MAX_TOP_N + ", got [" + topN + "]");
        }
        this.topN = topN;
        return this;
    }

    public MachQueryBuilder decoding(Decoder.Strategy decoding) {
        this.decoding = Objects.requireNonNull(decoding);
        checkMinRepetitions();
        return this;
    }

    public MachQueryBuilder bucketsPerRepetition(int m) {
        if (m < 1 || m > MAX_BUCKETS_PER_REPETITION) {
            throw new IllegalArgumentException(
                "[mach] [buckets_per_repetition] must be between 1 and " + MAX_BUCKETS_PER_REPETITION + ", got [" + m + "]"
            );
        }
        this.bucketsPerRepetition = m;
        return this;
    }

    public MachQueryBuilder minRepetitions(int f) {
        if (f < 1) throw new IllegalArgumentException("[mach] [min_repetitions] must be >= 1, got [" + f + "]");
        this.minRepetitions = f;
        checkMinRepetitions();
        return this;
    }

    private void checkMinRepetitions() {
        if (decoding == Decoder.Strategy.EXACT && minRepetitions > 1) {
            throw new IllegalArgumentException(
                "[mach] [min_repetitions] applies to candidate decoding only; use [decoding] [candidates] or [auto] with it"
            );
        }
    }

    public MachQueryBuilder scoreMode(Decoder.ScoreMode scoreMode) {
        this.scoreMode = Objects.requireNonNull(scoreMode);
        return this;
    }

    public MachQueryBuilder normalize(boolean normalize) {
        this.normalize = normalize;
        return this;
    }

    public MachQueryBuilder lexical(QueryBuilder lexical) {
        this.lexical = lexical;
        return this;
    }

    public MachQueryBuilder combine(Combine combine) {
        this.combine = combine;
        return this;
    }

    public MachQueryBuilder machWeight(float w) {
        if (!Float.isFinite(w) || w <= 0) {
            throw new IllegalArgumentException("[mach] [mach_weight] must be a number > 0, got [" + w + "]");
        }
        this.machWeight = w;
        return this;
    }

    /** Cross-parameter checks, once all are set. */
    public MachQueryBuilder validateCombination() {
        if (lexical == null && combine != null) {
            throw new IllegalArgumentException(
                "[mach] [combine] [" + combine.value() + "] needs a [lexical] query to combine with; add [lexical] or remove [combine]"
            );
        }
        if (lexical == null && machWeight != null) {
            throw new IllegalArgumentException("[mach] [mach_weight] applies only with a [lexical] query; use [boost] to scale a bare mach query");
        }
        return this;
    }

    public String modelId() {
        return modelId;
    }

    public String queryText() {
        return queryText;
    }

    public String productIdField() {
        return productIdField;
    }

    public int topN() {
        return topN;
    }

    public QueryBuilder lexical() {
        return lexical;
    }

    /** The effective combine mode: boost when a lexical query is given without one, null without lexical. */
    public Combine effectiveCombine() {
        return lexical == null ? null : combine == null ? Combine.BOOST : combine;
    }

    public float effectiveMachWeight() {
        return machWeight == null ? DEFAULT_MACH_WEIGHT : machWeight;
    }

    public Decoder.Options decoderOptions() {
        return new Decoder.Options(topN, decoding, bucketsPerRepetition, minRepetitions, scoreMode);
    }

    // ------------------------------------------------------------------ xcontent

    @Override
    public String getWriteableName() {
        return NAME;
    }

    @Override
    protected void doXContent(XContentBuilder builder, Params params) throws IOException {
        builder.startObject(NAME);
        if (modelId != null) builder.field(MODEL_ID.getPreferredName(), modelId);
        builder.field(QUERY_TEXT.getPreferredName(), queryText);
        if (productIdField != null) builder.field(PRODUCT_ID_FIELD.getPreferredName(), productIdField);
        builder.field(TOP_N.getPreferredName(), topN);
        builder.field(DECODING.getPreferredName(), decoding.value());
        builder.field(BUCKETS_PER_REPETITION.getPreferredName(), bucketsPerRepetition);
        builder.field(MIN_REPETITIONS.getPreferredName(), minRepetitions);
        builder.field(SCORE.getPreferredName(), scoreMode.value());
        builder.field(NORMALIZE.getPreferredName(), normalize);
        if (lexical != null) builder.field(LEXICAL.getPreferredName(), lexical);
        if (combine != null) builder.field(COMBINE.getPreferredName(), combine.value());
        if (machWeight != null) builder.field(MACH_WEIGHT.getPreferredName(), machWeight);
        printBoostAndQueryName(builder);
        builder.endObject();
    }

    public static MachQueryBuilder fromXContent(XContentParser parser, Supplier<MachInferenceService> services) throws IOException {
        XContentLocation start = parser.getTokenLocation();
        Parsed q = new Parsed();
        StrictJson.readObject(parser, "[mach]", PARAMETERS, (field, p) -> {
            switch (field) {
                case "model_id" -> q.modelId = StrictJson.text(p, "[mach]", field);
                case "query_text" -> q.queryText = StrictJson.text(p, "[mach]", field);
                case "product_id_field" -> q.productIdField = StrictJson.text(p, "[mach]", field);
                case "top_n" -> q.topN = StrictJson.integer(p, "[mach]", field, 1, MAX_TOP_N);
                case "decoding" -> q.decoding = Decoder.Strategy.parse(StrictJson.text(p, "[mach]", field));
                case "buckets_per_repetition" -> q.buckets = StrictJson.integer(p, "[mach]", field, 1, MAX_BUCKETS_PER_REPETITION);
                case "min_repetitions" -> q.minReps = StrictJson.integer(p, "[mach]", field, 1, Integer.MAX_VALUE);
                case "score" -> q.score = Decoder.ScoreMode.parse(StrictJson.text(p, "[mach]", field));
                case "normalize" -> q.normalize = StrictJson.bool(p, "[mach]", field);
                case "lexical" -> {
                    if (p.currentToken() != XContentParser.Token.START_OBJECT) throw StrictJson.wrongType(p, "[mach]", field, "a query object");
                    q.lexical = parseInnerQueryBuilder(p);
                }
                case "combine" -> q.combine = Combine.parse(StrictJson.text(p, "[mach]", field));
                case "mach_weight" -> q.weight = StrictJson.number(p, "[mach]", field);
                case "boost" -> q.boost = StrictJson.number(p, "[mach]", field);
                case "_name" -> q.queryName = StrictJson.text(p, "[mach]", field);
                default -> throw new IllegalStateException("parameter [" + field + "] is listed but not read");
            }
        });
        try {
            if (q.queryText == null) throw new IllegalArgumentException("[mach] requires [query_text], the text to search for");
            MachQueryBuilder b = new MachQueryBuilder(q.modelId, q.queryText, q.productIdField, services);
            if (q.topN != null) b.topN(q.topN);
            if (q.decoding != null) b.decoding(q.decoding);
            if (q.buckets != null) b.bucketsPerRepetition(q.buckets);
            if (q.minReps != null) b.minRepetitions(q.minReps);
            if (q.score != null) b.scoreMode(q.score);
            if (q.normalize != null) b.normalize(q.normalize);
            if (q.weight != null) b.machWeight(q.weight);
            b.lexical(q.lexical).combine(q.combine).validateCombination();
            b.boost(q.boost).queryName(q.queryName);
            return b;
        } catch (IllegalArgumentException e) {
            throw new ParsingException(start, e.getMessage(), e);
        }
    }

    /** The parameters as parsed, before the cross-parameter checks. */
    private static final class Parsed {
        String modelId, queryText, productIdField, queryName;
        Integer topN, buckets, minReps;
        Float weight;
        float boost = DEFAULT_BOOST;
        Boolean normalize;
        Decoder.Strategy decoding;
        Decoder.ScoreMode score;
        Combine combine;
        QueryBuilder lexical;
    }

    // ------------------------------------------------------------------ rewrite

    @Override
    protected QueryBuilder doRewrite(QueryRewriteContext context) {
        if (rewritten != null) {
            QueryBuilder r = rewritten.get();
            return r == null ? this : r; // inference still running
        }
        MachInferenceService service = services.get();
        if (service == null) {
            throw new IllegalStateException("the mach plugin is not initialized on this node");
        }
        MachQueryBuilder pending = modelId != null && productIdField != null ? copy(modelId, productIdField) : bound(context, service);
        SetOnce<QueryBuilder> holder = new SetOnce<>();
        Decoder.Options options = decoderOptions();
        context.registerAsyncAction(
            (client, listener) -> service.predict(pending.modelId, queryText, options, ActionListener.wrap(prediction -> {
                holder.set(pending.rewrittenQuery(prediction));
                listener.onResponse(null);
            }, listener::onFailure))
        );
        pending.rewritten = holder;
        return pending;
    }

    /** A copy with the model and product-id field the searched indices bind (index.mach.*) filled in where this query left them out. */
    private MachQueryBuilder bound(QueryRewriteContext context, MachInferenceService service) {
        QueryCoordinatorContext coordinator = context.convertToCoordinatorContext();
        if (coordinator == null || coordinator.getSearchRequest() == null) {
            throw new IllegalArgumentException(
                "[mach] without [model_id] and [product_id_field] takes them from the searched index's settings, which only a search "
                    + "request names; give them in the query here"
            );
        }
        IndexBinding binding = service.binding(coordinator.getSearchRequest());
        String model = modelId != null ? modelId : binding.require(binding.model(), IndexBinding.MODEL, "model_id");
        String field = productIdField != null ? productIdField : binding.require(binding.productIdField(), IndexBinding.PRODUCT_ID_FIELD, "product_id_field");
        return copy(model, field);
    }

    private MachQueryBuilder copy(String modelId, String productIdField) {
        MachQueryBuilder c = new MachQueryBuilder(modelId, queryText, productIdField, services);
        c.topN = topN;
        c.decoding = decoding;
        c.bucketsPerRepetition = bucketsPerRepetition;
        c.minRepetitions = minRepetitions;
        c.scoreMode = scoreMode;
        c.normalize = normalize;
        c.lexical = lexical;
        c.combine = combine;
        c.machWeight = machWeight;
        c.boost(boost).queryName(queryName);
        return c;
    }

    /** The scores this query feeds to Lucene for a prediction, in rank order (see the class doc). */
    public float[] luceneScores(Prediction prediction) {
        return luceneScores(prediction.result().scores(), normalize);
    }

    public static float[] luceneScores(float[] decoded, boolean normalize) {
        float[] s = new float[decoded.length];
        float top = decoded.length == 0 ? 0 : Math.max(0f, decoded[0]);
        for (int i = 0; i < s.length; i++) {
            float v = Math.max(0f, decoded[i]); // calibrated scores below chance are clamped: Lucene scores are >= 0
            s[i] = normalize ? (top > 0 ? v / top : 0f) : v;
        }
        return s;
    }

    /** The query that replaces this one once the model has run. */
    public QueryBuilder rewrittenQuery(Prediction prediction) {
        String[] ids = new String[prediction.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = prediction.productId(i);
        }
        MachProductsQueryBuilder products = new MachProductsQueryBuilder(productIdField, ids, luceneScores(prediction));
        Combine mode = effectiveCombine();
        if (mode == null) {
            return products.boost(boost).queryName(queryName);
        }
        products.boost(effectiveMachWeight());
        BoolQueryBuilder bool = new BoolQueryBuilder();
        switch (mode) {
            case FILTER -> bool.must(lexical).filter(products);
            case BOOST -> bool.must(lexical).should(products);
            case HYBRID -> bool.should(lexical).should(products).minimumShouldMatch(1);
        }
        return bool.boost(boost).queryName(queryName);
    }

    @Override
    protected Query doToQuery(QueryShardContext context) {
        throw new IllegalStateException(
            "[mach] query must be rewritten on the coordinating node before it is executed (inference runs in the rewrite phase)"
        );
    }

    @Override
    protected boolean doEquals(MachQueryBuilder o) {
        return Objects.equals(modelId, o.modelId)
            && queryText.equals(o.queryText)
            && Objects.equals(productIdField, o.productIdField)
            && topN == o.topN
            && decoding == o.decoding
            && bucketsPerRepetition == o.bucketsPerRepetition
            && minRepetitions == o.minRepetitions
            && scoreMode == o.scoreMode
            && normalize == o.normalize
            && Objects.equals(lexical, o.lexical)
            && combine == o.combine
            && Objects.equals(machWeight, o.machWeight);
    }

    @Override
    protected int doHashCode() {
        return Objects.hash(modelId, queryText, productIdField, topN, decoding, bucketsPerRepetition, minRepetitions, scoreMode, normalize,
            lexical, combine, machWeight);
    }
}
