package org.opensearch.mach.rest;

import org.opensearch.core.rest.RestStatus;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.mach.model.ProductIndex;
import org.opensearch.mach.query.MachQueryBuilder;
import org.opensearch.rest.BaseRestHandler;
import org.opensearch.rest.BytesRestResponse;
import org.opensearch.rest.RestChannel;
import org.opensearch.rest.RestRequest;
import org.opensearch.transport.client.node.NodeClient;

import java.io.IOException;
import java.util.List;
import java.util.function.Supplier;

/**
 * {@code POST _plugins/_mach/models/{id}/_predict} (debugging and explain):
 * <pre>{"query_text": "cordless drill", "top_n": 10, "decoding": "auto", "buckets_per_repetition": 10,
 *  "min_repetitions": 1, "score": "mean", "normalize": false, "top_buckets": 5}</pre>
 * ({@code text} is accepted for {@code query_text}). Answers the top products with {@code score}
 * (exactly what a {@code mach} query with the same parameters gives the product's document),
 * {@code mean} and {@code calibrated}, and each repetition's top buckets.
 */
public class RestMachPredictAction extends BaseRestHandler {
    private final Supplier<MachInferenceService> services;

    public RestMachPredictAction(Supplier<MachInferenceService> services) {
        this.services = services;
    }

    @Override
    public String getName() {
        return "mach_predict";
    }

    @Override
    public List<Route> routes() {
        return List.of(
            new Route(RestRequest.Method.POST, "/_plugins/_mach/models/{id}/_predict"),
            new Route(RestRequest.Method.GET, "/_plugins/_mach/models/{id}/_predict")
        );
    }

    static MachInferenceService service(Supplier<MachInferenceService> services) {
        MachInferenceService s = services.get();
        if (s == null) throw new IllegalStateException("the mach plugin is not initialized on this node");
        return s;
    }

    interface ResponseSupplier {
        BytesRestResponse get() throws Exception;
    }

    /** Runs work on the inference pool and answers on the channel; failures become proper error responses. */
    static void fork(MachInferenceService service, RestChannel channel, ResponseSupplier work) {
        service.execute(() -> {
            try {
                channel.sendResponse(work.get());
            } catch (Exception e) {
                RestResponses.fail(channel, e);
            }
        }, e -> RestResponses.fail(channel, e));
    }

    /** Parsed request body. */
    static final class Params {
        String text;
        int topN = 10;
        Decoder.Strategy decoding = Decoder.Strategy.AUTO;
        int buckets = MachQueryBuilder.DEFAULT_BUCKETS_PER_REPETITION;
        int minRepetitions = 1;
        Decoder.ScoreMode score = Decoder.ScoreMode.MEAN;
        boolean normalize = false;
        int topBuckets = 5;
    }

    static final List<String> PARAMETERS = List.of(
        "query_text", "text", "top_n", "decoding", "buckets_per_repetition", "min_repetitions", "score", "normalize", "top_buckets"
    );

    /** The body, read by the same strict rules (and limits) as the {@code mach} query's parameters. */
    static Params parse(XContentParser parser) throws IOException {
        Params p = new Params();
        String what = "[_predict]";
        StrictJson.readBody(parser, what, PARAMETERS, (field, x) -> {
            switch (field) {
                case "query_text", "text" -> p.text = StrictJson.text(x, what, field);
                case "top_n" -> p.topN = StrictJson.integer(x, what, field, 1, MachQueryBuilder.MAX_TOP_N);
                case "decoding" -> p.decoding = Decoder.Strategy.parse(StrictJson.text(x, what, field));
                case "buckets_per_repetition" -> p.buckets = StrictJson.integer(x, what, field, 1, MachQueryBuilder.MAX_BUCKETS_PER_REPETITION);
                case "min_repetitions" -> p.minRepetitions = StrictJson.integer(x, what, field, 1, Integer.MAX_VALUE);
                case "score" -> p.score = Decoder.ScoreMode.parse(StrictJson.text(x, what, field));
                case "normalize" -> p.normalize = StrictJson.bool(x, what, field);
                case "top_buckets" -> p.topBuckets = StrictJson.integer(x, what, field, 0, 1000);
                default -> throw new IllegalStateException("parameter [" + field + "] is listed but not read");
            }
        });
        if (p.text == null || p.text.isBlank()) {
            throw new IllegalArgumentException(what + " requires a non-empty [query_text]");
        }
        if (p.text.length() > MachQueryBuilder.MAX_TEXT_LENGTH) {
            throw new IllegalArgumentException(what + " [query_text] is longer than " + MachQueryBuilder.MAX_TEXT_LENGTH + " characters");
        }
        return p;
    }

    @Override
    protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) throws IOException {
        String id = request.param("id");
        MachInferenceService service = service(services);
        if (!request.hasContentOrSourceParam()) {
            throw new IllegalArgumentException("[_predict] needs a JSON body such as {\"query_text\": \"cordless drill\", \"top_n\": 10}");
        }
        Params p;
        try (XContentParser parser = request.contentOrSourceParamParser()) {
            p = parse(parser);
        }
        Decoder.Options options = new Decoder.Options(p.topN, p.decoding, p.buckets, p.minRepetitions, p.score);
        return channel -> fork(service, channel, () -> {
            Prediction prediction = service.predictNow(id, p.text, options);
            return new BytesRestResponse(RestStatus.OK, render(channel.newBuilder(), id, p, prediction));
        });
    }

    static XContentBuilder render(XContentBuilder b, String id, Params p, Prediction prediction) throws IOException {
        Decoder.Result r = prediction.result();
        int B = prediction.model().card().buckets;
        float[] luceneScores = MachQueryBuilder.luceneScores(r.scores(), p.normalize);
        b.startObject();
        b.field("model_id", id);
        b.field("query_text", p.text);
        b.field("decoding", r.used().value());
        b.field("score", p.score.value());
        b.field("aggregation", prediction.model().card().aggregation.value());
        b.field("normalize", p.normalize);
        b.field("products_scored", r.scored());
        if (prediction.probabilities() == null) {
            b.field("note", "the text has no letters or digits, hence no features: no products");
        }
        b.field("inference_ms", prediction.inferenceNanos() / 1e6);
        b.field("decode_ms", prediction.decodeNanos() / 1e6);
        b.startArray("products");
        for (int i = 0; i < r.products().length; i++) {
            b.startObject();
            b.field("product_id", prediction.productId(i));
            b.field("score", luceneScores[i]);
            b.field("mean", r.meanScores()[i]);
            b.field("calibrated", (float) Decoder.calibrated(r.meanScores()[i], B));
            b.endObject();
        }
        b.endArray();
        if (p.topBuckets > 0 && prediction.probabilities() != null) {
            ProductIndex index = prediction.model().index();
            float[][] probs = prediction.probabilities();
            b.startArray("repetitions");
            for (int rep = 0; rep < probs.length; rep++) {
                b.startObject();
                b.field("repetition", rep);
                b.startArray("top_buckets");
                for (int bucket : Decoder.topBuckets(probs[rep], p.topBuckets)) {
                    b.startObject();
                    b.field("bucket", bucket);
                    b.field("probability", probs[rep][bucket]);
                    b.field("products", index.bucketSize(rep, bucket));
                    b.endObject();
                }
                b.endArray();
                b.endObject();
            }
            b.endArray();
        }
        b.endObject();
        return b;
    }
}
