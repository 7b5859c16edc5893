package org.opensearch.mach.rest;

import org.opensearch.core.common.ParsingException;
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

    static Params parse(XContentParser parser) throws IOException {
        Params p = new Params();
        if (parser.nextToken() != XContentParser.Token.START_OBJECT) {
            throw new ParsingException(parser.getTokenLocation(), "[_predict] the body must be a JSON object");
        }
        String current = null;
        XContentParser.Token token;
        while ((token = parser.nextToken()) != XContentParser.Token.END_OBJECT) {
            if (token == null) throw new ParsingException(parser.getTokenLocation(), "[_predict] unexpected end of the body");
            if (token == XContentParser.Token.FIELD_NAME) {
                current = parser.currentName();
                continue;
            }
            if (!token.isValue()) {
                throw new ParsingException(parser.getTokenLocation(), "[_predict] [" + current + "] must be a single value");
            }
            try {
                switch (current) {
                    case "query_text", "text" -> p.text = parser.text();
                    case "top_n" -> p.topN = parser.intValue(true);
                    case "decoding" -> p.decoding = Decoder.Strategy.parse(parser.text());
                    case "buckets_per_repetition" -> p.buckets = parser.intValue(true);
                    case "min_repetitions" -> p.minRepetitions = parser.intValue(true);
                    case "score" -> p.score = Decoder.ScoreMode.parse(parser.text());
                    case "normalize" -> p.normalize = parser.booleanValue();
                    case "top_buckets" -> p.topBuckets = parser.intValue(true);
                    default -> throw new IllegalArgumentException(
                        "[_predict] unknown parameter [" + current + "]; known: [query_text, top_n, decoding, buckets_per_repetition, "
                            + "min_repetitions, score, normalize, top_buckets]"
                    );
                }
            } catch (IllegalArgumentException e) {
                String msg = e.getMessage() != null && e.getMessage().startsWith("[") ? e.getMessage()
                    : "[_predict] bad value for [" + current + "]: " + e.getMessage();
                throw new ParsingException(parser.getTokenLocation(), msg, e);
            }
        }
        if (p.text == null || p.text.isBlank()) {
            throw new IllegalArgumentException("[_predict] requires a non-empty [query_text]");
        }
        if (p.text.length() > MachQueryBuilder.MAX_TEXT_LENGTH) {
            throw new IllegalArgumentException("[_predict] [query_text] is longer than " + MachQueryBuilder.MAX_TEXT_LENGTH + " characters");
        }
        if (p.topN < 1 || p.topN > MachQueryBuilder.MAX_TOP_N) {
            throw new IllegalArgumentException("[_predict] [top_n] must be between 1 and " + MachQueryBuilder.MAX_TOP_N + ", got [" + p.topN + "]");
        }
        if (p.topBuckets < 0 || p.topBuckets > 1000) {
            throw new IllegalArgumentException("[_predict] [top_buckets] must be between 0 and 1000, got [" + p.topBuckets + "]");
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
