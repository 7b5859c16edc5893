package org.opensearch.mach.query;

import com.fasterxml.jackson.databind.JsonNode;

import org.apache.lucene.search.Query;
import org.apache.lucene.util.SetOnce;
import org.opensearch.action.search.SearchRequest;
import org.opensearch.action.support.GroupedActionListener;
import org.opensearch.core.action.ActionListener;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.query.BoolQueryBuilder;
import org.opensearch.index.query.MatchNoneQueryBuilder;
import org.opensearch.index.query.QueryBuilder;
import org.opensearch.index.query.QueryCoordinatorContext;
import org.opensearch.index.query.QueryRewriteContext;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.mach.featurize.HashFamily;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.mach.rest.StrictJson;
import org.opensearch.search.SearchHit;
import org.opensearch.search.builder.SearchSourceBuilder;
import org.opensearch.transport.client.Client;

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
 *
 * Parameters the query leaves out come from the model card's {@code query_defaults} where it has them
 * ({@link MachOptions}). With {@code normalization: min_max} the rewrite also runs the lexical query
 * once over the searched indices to read its score range, and the lexical clause becomes an
 * {@link AffineScoreQueryBuilder} that maps its scores to [0, 1].
 */
public class MachQueryBuilder extends NamedQueryBuilder<MachQueryBuilder> {
    public static final String NAME = "mach";
    public static final int MAX_TOP_N = MachOptions.MAX_TOP_N;
    public static final int MAX_TEXT_LENGTH = 1024;
    public static final int DEFAULT_TOP_N = MachOptions.DEFAULT_TOP_N;
    public static final int DEFAULT_BUCKETS_PER_REPETITION = MachOptions.DEFAULT_BUCKETS_PER_REPETITION;
    public static final int MAX_BUCKETS_PER_REPETITION = MachOptions.MAX_BUCKETS_PER_REPETITION;
    public static final float DEFAULT_MACH_WEIGHT = MachOptions.DEFAULT_MACH_WEIGHT;

    static final List<String> PARAMETERS = parameters(
        List.of("model_id", "query_text", "product_id_field", "bucket_field", "lexical"),
        MachOptions.NAMES
    );

    private final String modelId;
    private final String queryText;
    private final String productIdField;
    /** Index-side MACH: the mach_buckets field the shards score from (instead of productIdField). */
    private String bucketField;
    private QueryBuilder lexical;
    /** The tunable parameters this query gives (the rest: the model's query_defaults, then the plugin's defaults). */
    private MachOptions options = new MachOptions();

    /** The node's inference service; null where the plugin is not initialized (parsing-only contexts). */
    private final Supplier<MachInferenceService> services;
    /** Set once inference has run: the rewritten query. */
    private SetOnce<QueryBuilder> rewritten;

    public MachQueryBuilder(String modelId, String queryText, String productIdField, Supplier<MachInferenceService> services) {
        super(NAME);
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
        super(NAME, in);
        this.modelId = in.readOptionalString();
        this.queryText = in.readString();
        this.productIdField = in.readOptionalString();
        this.bucketField = in.readOptionalString();
        this.lexical = in.readOptionalNamedWriteable(QueryBuilder.class);
        this.options = new MachOptions(in);
        this.services = services == null ? () -> null : services;
    }

    @Override
    protected void doWriteTo(StreamOutput out) throws IOException {
        out.writeOptionalString(modelId);
        out.writeString(queryText);
        out.writeOptionalString(productIdField);
        out.writeOptionalString(bucketField);
        out.writeOptionalNamedWriteable(lexical);
        options.writeTo(out);
    }

    // ------------------------------------------------------------------ setters (validate each value; validateCombination checks across them)

    /** Index-side MACH: score from this mach_buckets field instead of decoding products on the coordinator. */
    public MachQueryBuilder bucketField(String field) {
        if (field != null && field.isBlank()) {
            throw new IllegalArgumentException(
                "[mach] [bucket_field] must not be empty (leave it out to use the index's " + IndexBinding.BUCKET_FIELD.getKey() + ")"
            );
        }
        this.bucketField = field;
        return this;
    }

    public String bucketField() {
        return bucketField;
    }

    public MachQueryBuilder scoredBuckets(int s) {
        options.scoredBuckets(s);
        return this;
    }

    public MachQueryBuilder topN(int topN) {
        options.topN(topN);
        return this;
    }

    public MachQueryBuilder decoding(Decoder.Strategy decoding) {
        options.decoding(decoding);
        return this;
    }

    public MachQueryBuilder bucketsPerRepetition(int m) {
        options.bucketsPerRepetition(m);
        return this;
    }

    public MachQueryBuilder minRepetitions(int f) {
        options.minRepetitions(f);
        return this;
    }

    public MachQueryBuilder scoreMode(Decoder.ScoreMode scoreMode) {
        options.scoreMode(scoreMode);
        return this;
    }

    public MachQueryBuilder normalize(boolean normalize) {
        options.normalize(normalize);
        return this;
    }

    public MachQueryBuilder lexical(QueryBuilder lexical) {
        this.lexical = lexical;
        return this;
    }

    public MachQueryBuilder combine(Combine combine) {
        options.combine(combine);
        return this;
    }

    public MachQueryBuilder normalization(Normalization normalization) {
        options.normalization(normalization);
        return this;
    }

    public MachQueryBuilder machWeight(float w) {
        options.machWeight(w);
        return this;
    }

    public MachQueryBuilder lexicalWindow(int n) {
        options.lexicalWindow(n);
        return this;
    }

    /** Cross-parameter checks, once all are set. */
    public MachQueryBuilder validateCombination() {
        options.validate(lexical != null, "[mach]");
        if (productIdField != null && bucketField != null) {
            throw new IllegalArgumentException(
                "[mach] takes [product_id_field] (products decoded on the coordinator) or [bucket_field] (scored on the shards from a mach_buckets "
                    + "field), not both"
            );
        }
        if (productIdField != null && options.hasScoredBuckets()) {
            throw new IllegalArgumentException("[mach] [scored_buckets] and [rest_buckets] apply only with [bucket_field]");
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

    public QueryBuilder lexical() {
        return lexical;
    }

    /** The parameters this query gives, with the plugin's defaults behind them (a model's query_defaults come in at rewrite). */
    public MachOptions options() {
        return options;
    }

    public int topN() {
        return options.topN();
    }

    /** The effective combine mode: boost when a lexical query is given without one, null without lexical. */
    public Combine effectiveCombine() {
        return options.combine(lexical != null);
    }

    public float effectiveMachWeight() {
        return options.machWeight();
    }

    public Decoder.Options decoderOptions() {
        return options.decoderOptions();
    }

    // ------------------------------------------------------------------ xcontent

    @Override
    protected void fieldsToXContent(XContentBuilder builder) throws IOException {
        if (modelId != null) builder.field("model_id", modelId);
        builder.field("query_text", queryText);
        if (productIdField != null) builder.field("product_id_field", productIdField);
        if (bucketField != null) builder.field("bucket_field", bucketField);
        if (lexical != null) builder.field("lexical", lexical);
        options.toXContent(builder);
    }

    public static MachQueryBuilder fromXContent(XContentParser parser, Supplier<MachInferenceService> services) throws IOException {
        Parsed q = new Parsed();
        return parseStrictly(parser, "[mach]", PARAMETERS, (field, p) -> {
            switch (field) {
                case "model_id" -> q.modelId = StrictJson.text(p, "[mach]", field);
                case "query_text" -> q.queryText = StrictJson.text(p, "[mach]", field);
                case "product_id_field" -> q.productIdField = StrictJson.text(p, "[mach]", field);
                case "bucket_field" -> q.bucketField = StrictJson.text(p, "[mach]", field);
                case "lexical" -> q.lexical = innerQuery(p, "[mach]", field);
                default -> q.options.read(field, p, "[mach]");
            }
        }, () -> {
            if (q.queryText == null) throw new IllegalArgumentException("[mach] requires [query_text], the text to search for");
            MachQueryBuilder b = new MachQueryBuilder(q.modelId, q.queryText, q.productIdField, services);
            b.options = q.options;
            b.bucketField(q.bucketField);
            b.lexical(q.lexical).validateCombination();
            return b;
        });
    }

    /** The parameters as parsed, before the cross-parameter checks. */
    private static final class Parsed {
        String modelId, queryText, productIdField, bucketField;
        QueryBuilder lexical;
        final MachOptions options = new MachOptions();
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
        MachQueryBuilder pending = modelId != null && (productIdField != null || bucketField != null)
            ? copy(modelId, productIdField, bucketField)
            : bound(context, service);
        QueryCoordinatorContext coordinator = context.convertToCoordinatorContext();
        SearchRequest search = coordinator != null && coordinator.getSearchRequest() instanceof SearchRequest r ? r : null;
        SetOnce<QueryBuilder> holder = new SetOnce<>();
        context.registerAsyncAction((client, listener) -> pending.resolve(service, client, search, ActionListener.wrap(q -> {
            holder.set(q);
            listener.onResponse(null);
        }, listener::onFailure)));
        pending.rewritten = holder;
        return pending;
    }

    /**
     * Completes the options with the model's query_defaults, then runs the model and, for min_max, the
     * lexical query over the searched indices (both at once), and answers the query that replaces this one.
     */
    private void resolve(MachInferenceService service, Client client, SearchRequest search, ActionListener<QueryBuilder> listener) {
        if (bucketField != null) {
            resolveBuckets(service, client, search, listener);
            return;
        }
        if (options.hasScoredBuckets()) {
            listener.onFailure(new IllegalArgumentException("[mach] [scored_buckets] and [rest_buckets] apply only with [bucket_field]"));
            return;
        }
        service.acquire(modelId, ActionListener.wrap(model -> {
            MachOptions effective = effectiveOptions(model.card().raw.path("query_defaults"), model.id());
            boolean minMax = lexical != null && effective.normalization() == Normalization.MIN_MAX;
            if (minMax && search == null) {
                throw new IllegalArgumentException("[mach] [normalization] [min_max] runs the lexical query over the searched indices, which only a search request names");
            }
            SetOnce<Prediction> prediction = new SetOnce<>();
            SetOnce<ScoreRange> lexicalRange = new SetOnce<>();
            GroupedActionListener<Void> parts = new GroupedActionListener<>(
                ActionListener.wrap(done -> listener.onResponse(rewrittenQuery(prediction.get(), effective, lexicalRange.get())), listener::onFailure),
                minMax ? 2 : 1
            );
            service.predict(modelId, queryText, effective.decoderOptions(), ActionListener.wrap(p -> {
                prediction.set(p);
                parts.onResponse(null);
            }, parts::onFailure));
            if (minMax) {
                lexicalRange(client, search, effective.lexicalWindow(), ActionListener.wrap(r -> {
                    lexicalRange.set(r);
                    parts.onResponse(null);
                }, parts::onFailure));
            }
        }, listener::onFailure));
    }

    /**
     * Index-side MACH: runs only the network (no decoding, no catalog), turns its output into the
     * bucket table the shards score from, and for min_max reads both score ranges with searches over
     * the searched indices (the MACH one only once the table exists).
     */
    private void resolveBuckets(MachInferenceService service, Client client, SearchRequest search, ActionListener<QueryBuilder> listener) {
        service.acquire(modelId, ActionListener.wrap(model -> {
            MachOptions effective = effectiveOptions(model.card().raw.path("query_defaults"), model.id());
            HashFamily family = model.card().hashFamily;
            if (family == null) {
                throw new IllegalArgumentException(
                    "[mach] [bucket_field] needs a model trained with a hash family, and model [" + model.id() + "]'s product hash seeds are not a "
                        + "family's (spec/bundle-format.md, \"Hash families\"); use [product_id_field] with it"
                );
            }
            int f = effective.decoderOptions().minRepetitions();
            if (f > family.repetitions()) {
                throw new IllegalArgumentException(
                    "[mach] [min_repetitions] [" + f + "] is larger than the number of repetitions R = " + family.repetitions() + " of model [" + model.id() + "]"
                );
            }
            boolean minMax = lexical != null && effective.normalization() == Normalization.MIN_MAX && effective.combine(true) != Combine.FILTER;
            if (minMax && search == null) {
                throw new IllegalArgumentException("[mach] [normalization] [min_max] runs searches over the searched indices, which only a search request names");
            }
            service.probabilities(modelId, queryText, ActionListener.wrap(prediction -> {
                if (prediction.probabilities() == null) {
                    listener.onResponse(withoutMach(effective));
                    return;
                }
                BucketTable table = BucketTable.of(prediction.probabilities(), effective.scoredBucketsFor(family.repetitions(), family.buckets()), effective.quantizeRest())
                    .withAggregation(model.card().aggregation);
                BucketScoring raw = new BucketScoring(family.name(), table, effective.decoderOptions().scoreMode(), 1f, 0f);
                if (!minMax) {
                    float top = raw.score(table.maxMean());
                    BucketScoring scoring = effective.normalize() ? raw.withMap(top > 0 ? 1f / top : 0f, 0f) : raw;
                    listener.onResponse(bucketsQuery(scoring, effective, null));
                    return;
                }
                SetOnce<ScoreRange> lexicalRange = new SetOnce<>();
                SetOnce<ScoreRange> machRange = new SetOnce<>();
                GroupedActionListener<Void> parts = new GroupedActionListener<>(ActionListener.wrap(done -> {
                    ScoreRange mr = machRange.get();
                    listener.onResponse(bucketsQuery(raw.withMap(mr.scale(), mr.offset()), effective, lexicalRange.get()));
                }, listener::onFailure), 2);
                lexicalRange(client, search, effective.lexicalWindow(), ActionListener.wrap(r -> {
                    lexicalRange.set(r);
                    parts.onResponse(null);
                }, parts::onFailure));
                QueryBuilder machAlone = candidates(raw, effective);
                scoreRange(client, search, machAlone, effective.lexicalWindow(), ActionListener.wrap(r -> {
                    machRange.set(r);
                    parts.onResponse(null);
                }, parts::onFailure));
            }, listener::onFailure));
        }, listener::onFailure));
    }

    private MachBucketsQueryBuilder candidates(BucketScoring scoring, MachOptions effective) {
        Decoder.Options d = effective.decoderOptions();
        return new MachBucketsQueryBuilder(bucketField, scoring, Math.min(d.bucketsPerRepetition(), scoring.table().buckets()), d.minRepetitions());
    }

    /**
     * The query that replaces an index-side one once the network has run: MACH alone, its candidates;
     * filter, the lexical query over them; boost, every lexical hit plus mach_weight x its MACH score;
     * hybrid, the union of both, every document so scored ({@code lexicalRange}: for min_max only).
     */
    public QueryBuilder bucketsQuery(BucketScoring scoring, MachOptions effective, ScoreRange lexicalRange) {
        MachBucketsQueryBuilder candidates = candidates(scoring, effective);
        Combine mode = effective.combine(lexical != null);
        if (mode == null) return candidates.boost(boost).queryName(queryName);
        float w = effective.machWeight();
        QueryBuilder lexicalPart = lexical;
        if (mode != Combine.FILTER && effective.normalization() == Normalization.MIN_MAX) {
            lexicalPart = new AffineScoreQueryBuilder(lexical, lexicalRange.scale(), lexicalRange.offset()).boost(1 - w);
        }
        QueryBuilder q = switch (mode) {
            case FILTER -> new BoolQueryBuilder().must(lexicalPart).filter(candidates);
            case BOOST -> new MachScoreQueryBuilder(lexicalPart, bucketField, scoring, w);
            case HYBRID -> new MachScoreQueryBuilder(
                new BoolQueryBuilder().should(lexicalPart).should(candidates.boost(0f)).minimumShouldMatch(1),
                bucketField,
                scoring,
                w
            );
        };
        return q.boost(boost).queryName(queryName);
    }

    /** A text the network cannot read has no MACH side: nothing alone or as a filter, the lexical query in boost and hybrid. */
    private QueryBuilder withoutMach(MachOptions effective) {
        Combine mode = effective.combine(lexical != null);
        if (mode == null || mode == Combine.FILTER) return new MatchNoneQueryBuilder();
        return new BoolQueryBuilder().must(lexical).boost(boost).queryName(queryName);
    }

    /**
     * The options this query runs with on a model: its own, then the model's {@code query_defaults}
     * (the card's JSON node; missing: none; a bucket_field query reads its {@code index_side} block,
     * MachOptions#fromCard) for what it leaves out, checked together.
     */
    public MachOptions effectiveOptions(JsonNode cardDefaults, String model) throws IOException {
        MachOptions effective = options.withDefaults(MachOptions.fromCard(cardDefaults, model, bucketField != null), lexical != null);
        try {
            effective.validate(lexical != null, "[mach]");
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(e.getMessage() + " (this query's parameters with model [" + model + "]'s query_defaults)", e);
        }
        return effective;
    }

    /** The lowest and highest score among the lexical query's top {@code window} hits, from one search like the user's. */
    private void lexicalRange(Client client, SearchRequest search, int window, ActionListener<ScoreRange> listener) {
        scoreRange(client, search, lexical, window, listener);
    }

    /** The lowest and highest score among a query's top {@code window} hits over the searched indices. */
    private static void scoreRange(Client client, SearchRequest search, QueryBuilder query, int window, ActionListener<ScoreRange> listener) {
        SearchRequest request = new SearchRequest(search.indices()).indicesOptions(search.indicesOptions())
            .routing(search.routing())
            .preference(search.preference())
            .searchType(search.searchType()) // dfs changes the scores: read them as the user's search will compute them
            .source(new SearchSourceBuilder().query(query).size(window).trackTotalHits(false).fetchSource(false).storedField("_none_"));
        client.search(request, ActionListener.wrap(response -> {
            SearchHit[] hits = response.getHits().getHits();
            float[] scores = new float[hits.length];
            for (int i = 0; i < hits.length; i++) scores[i] = hits[i].getScore();
            listener.onResponse(ScoreRange.of(scores));
        }, listener::onFailure));
    }

    /** A copy with the model and product-id field the searched indices bind (index.mach.*) filled in where this query left them out. */
    private MachQueryBuilder bound(QueryRewriteContext context, MachInferenceService service) {
        QueryCoordinatorContext coordinator = context.convertToCoordinatorContext();
        if (coordinator == null || coordinator.getSearchRequest() == null) {
            throw new IllegalArgumentException(
                "[mach] without [model_id] and [product_id_field] or [bucket_field] takes them from the searched index's settings, which only a search "
                    + "request names; give them in the query here"
            );
        }
        IndexBinding binding = service.binding(coordinator.getSearchRequest());
        String model = modelId != null ? modelId : binding.require(binding.model(), IndexBinding.MODEL, "model_id");
        if (productIdField != null || bucketField != null) return copy(model, productIdField, bucketField);
        return copy(model, binding.productIdField(), binding.requireOneField());
    }

    private MachQueryBuilder copy(String modelId, String productIdField, String bucketField) {
        MachQueryBuilder c = new MachQueryBuilder(modelId, queryText, productIdField, services);
        c.bucketField = bucketField;
        c.options = options.copy();
        c.lexical = lexical;
        c.boost(boost).queryName(queryName);
        return c;
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

    /**
     * The query that replaces this one once the model has run, with the effective options
     * ({@link #effectiveOptions}); {@code lexicalRange}: the lexical score range, for min_max only.
     */
    public QueryBuilder rewrittenQuery(Prediction prediction, MachOptions effective, ScoreRange lexicalRange) {
        String[] ids = new String[prediction.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = prediction.productId(i);
        }
        float[] scores = luceneScores(prediction.result().scores(), effective.normalize());
        Combine mode = effective.combine(lexical != null);
        if (mode == null) {
            return new MachProductsQueryBuilder(productIdField, ids, scores).boost(boost).queryName(queryName);
        }
        float w = effective.machWeight();
        QueryBuilder lexicalPart = lexical;
        if (mode != Combine.FILTER && effective.normalization() == Normalization.MIN_MAX) {
            ScoreRange machRange = ScoreRange.of(scores);
            for (int i = 0; i < scores.length; i++) scores[i] = machRange.normalize(scores[i]);
            lexicalPart = new AffineScoreQueryBuilder(lexical, lexicalRange.scale(), lexicalRange.offset()).boost(1 - w);
        }
        MachProductsQueryBuilder products = new MachProductsQueryBuilder(productIdField, ids, scores);
        products.boost(w);
        BoolQueryBuilder bool = new BoolQueryBuilder();
        switch (mode) {
            case FILTER -> bool.must(lexicalPart).filter(products);
            case BOOST -> bool.must(lexicalPart).should(products);
            case HYBRID -> bool.should(lexicalPart).should(products).minimumShouldMatch(1);
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
            && Objects.equals(bucketField, o.bucketField)
            && Objects.equals(lexical, o.lexical)
            && options.equals(o.options);
    }

    @Override
    protected int doHashCode() {
        return Objects.hash(modelId, queryText, productIdField, bucketField, lexical, options);
    }
}
