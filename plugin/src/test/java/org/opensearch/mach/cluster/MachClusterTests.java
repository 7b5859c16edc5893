package org.opensearch.mach.cluster;

import com.fasterxml.jackson.databind.JsonNode;

import org.opensearch.action.search.SearchResponse;
import org.opensearch.action.search.SearchType;
import org.opensearch.index.query.QueryBuilder;
import org.opensearch.index.query.QueryBuilders;
import org.opensearch.index.query.functionscore.ScoreFunctionBuilders;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.mach.query.Combine;
import org.opensearch.mach.query.MachQueryBuilder;
import org.opensearch.mach.query.Normalization;
import org.opensearch.search.SearchHit;
import org.opensearch.test.OpenSearchIntegTestCase;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Two nodes, an index of the tiny fixture's 300 products in 3 shards, the real fixture bundle
 * (trained by model-tools) in each node's mach.models.dir. Checks the mach query against the model's
 * own decoding (run here in the test JVM), every combine mode against the documented formulas,
 * composition with the standard DSL, and the 4xx answers to bad input through real HTTP.
 */
@OpenSearchIntegTestCase.ClusterScope(scope = OpenSearchIntegTestCase.Scope.SUITE, numDataNodes = 2, numClientNodes = 0, supportsDedicatedMasters = false)
public class MachClusterTests extends MachClusterTestCase {
    @Override
    protected boolean servesTinyModel() {
        return true;
    }

    /** The same bundle with query defaults in its card (mach.json is not among the checksummed files). */
    @Override
    protected void addModels(Path tiny) throws IOException {
        withQueryDefaults(tiny, "tiny-defaults",
            "{\"combine\": \"hybrid\", \"normalization\": \"min_max\", \"mach_weight\": 0.3, \"top_n\": 30, \"lexical_window\": 20}");
        withQueryDefaults(tiny, "tiny-bad-defaults", "{\"mach_weight\": \"high\"}");
    }

    private static void withQueryDefaults(Path bundle, String id, String defaults) throws IOException {
        Path copy = bundle.resolveSibling(id);
        Files.createDirectories(copy);
        try (DirectoryStream<Path> files = Files.newDirectoryStream(bundle)) {
            for (Path f : files) Files.copy(f, copy.resolve(f.getFileName().toString()));
        }
        com.fasterxml.jackson.databind.node.ObjectNode card = (com.fasterxml.jackson.databind.node.ObjectNode) JSON.readTree(
            Files.readString(copy.resolve("mach.json")));
        card.set("query_defaults", JSON.readTree(defaults));
        Files.writeString(copy.resolve("mach.json"), JSON.writeValueAsString(card));
    }

    private void indexProducts() throws IOException {
        indexProducts(INDEX, 3, 0);
    }

    /** The mach query built on a random node, searched through that node (it coordinates, so it runs the model). */
    private SearchResponse search(java.util.function.Function<MachQueryBuilder, QueryBuilder> wrap, String text, int size,
        java.util.function.Consumer<MachQueryBuilder> params) {
        String node = randomFrom(internalCluster().getNodeNames());
        MachInferenceService service = internalCluster().getInstance(MachInferenceService.class, node);
        MachQueryBuilder mach = new MachQueryBuilder(MODEL, text, "product_id", () -> service);
        params.accept(mach);
        // fixed search type: the test client otherwise picks dfs_query_then_fetch at random, which changes BM25 scores
        return client(node).prepareSearch(INDEX).setSearchType(SearchType.QUERY_THEN_FETCH).setQuery(wrap.apply(mach)).setSize(size).get();
    }

    private static Map<String, Float> hits(SearchResponse r) {
        Map<String, Float> out = new LinkedHashMap<>();
        for (SearchHit h : r.getHits().getHits()) {
            out.put(h.getId(), h.getScore());
        }
        return out;
    }

    private Map<String, Float> lexical(QueryBuilder q) {
        return hits(client().prepareSearch(INDEX).setSearchType(SearchType.QUERY_THEN_FETCH).setQuery(q).setSize(400).get());
    }

    private static Prediction predict(String text, Decoder.Options options) {
        return MachInferenceService.predict(tinyModel(), text, options);
    }

    private static Map<String, Float> predicted(Prediction p, float weight) {
        Map<String, Float> out = new LinkedHashMap<>();
        for (int i = 0; i < p.size(); i++) {
            out.put(p.productId(i), weight * Math.max(0, p.result().scores()[i]));
        }
        return out;
    }

    private static void assertScores(Map<String, Float> expected, Map<String, Float> actual) {
        assertEquals(expected.keySet(), actual.keySet());
        for (Map.Entry<String, Float> e : expected.entrySet()) {
            assertEquals("score of " + e.getKey(), e.getValue(), actual.get(e.getKey()), 1e-5f * Math.max(1, Math.abs(e.getValue())));
        }
    }

    private List<String> sampleQueries(int n) throws IOException {
        Set<String> texts = new java.util.LinkedHashSet<>();
        List<String[]> q = tsv("queries.tsv");
        while (texts.size() < n) {
            texts.add(q.get(randomIntBetween(0, q.size() - 1))[0]);
        }
        texts.add("crimson couch");
        return new ArrayList<>(texts);
    }

    public void testMachAloneEqualsTheModelsOwnDecoding() throws IOException {
        indexProducts();
        for (String text : sampleQueries(5)) {
            int topN = randomFrom(1, 10, 50);
            Prediction p = predict(text, new Decoder.Options(topN, Decoder.Strategy.AUTO, 10, 1, Decoder.ScoreMode.MEAN));
            SearchResponse r = search(m -> m, text, 400, m -> m.topN(topN));
            assertEquals("hits are exactly the top_n products", topN, r.getHits().getTotalHits().value());
            Map<String, Float> got = hits(r);
            assertScores(predicted(p, 1f), got);
            // same order (ties aside: compare the score sequence)
            List<Float> expectedOrder = new ArrayList<>(predicted(p, 1f).values());
            List<Float> gotOrder = new ArrayList<>(got.values());
            for (int i = 0; i < expectedOrder.size(); i++) {
                assertEquals("rank " + i + " of [" + text + "]", expectedOrder.get(i), gotOrder.get(i), 1e-6f);
            }
            if (topN >= 10) {
                assertEquals("top product of [" + text + "]", p.productId(0), got.keySet().iterator().next());
            }
        }
    }

    public void testDecodingOptionsAndScoreModes() throws IOException {
        indexProducts();
        String text = "crimson couch";
        // candidate decoding with a minimum number of repetitions, calibrated and normalized scores
        Decoder.Options opts = new Decoder.Options(40, Decoder.Strategy.CANDIDATES, 3, 2, Decoder.ScoreMode.CALIBRATED);
        Prediction p = predict(text, opts);
        assertTrue("some products pass f = 2", p.size() > 0);
        SearchResponse r = search(m -> m, text, 400, m -> m.topN(40).decoding(Decoder.Strategy.CANDIDATES).bucketsPerRepetition(3)
            .minRepetitions(2).scoreMode(Decoder.ScoreMode.CALIBRATED));
        assertScores(predicted(p, 1f), hits(r));

        Prediction mean = predict(text, new Decoder.Options(20, Decoder.Strategy.EXACT, 10, 1, Decoder.ScoreMode.MEAN));
        Map<String, Float> normalized = hits(search(m -> m, text, 400, m -> m.topN(20).decoding(Decoder.Strategy.EXACT).normalize(true)));
        float top = mean.result().scores()[0];
        Map<String, Float> expected = new LinkedHashMap<>();
        for (int i = 0; i < mean.size(); i++) {
            expected.put(mean.productId(i), mean.result().scores()[i] / top);
        }
        assertScores(expected, normalized);
        assertEquals(1f, normalized.values().iterator().next(), 1e-6f);
    }

    public void testCombineModes() throws IOException {
        indexProducts();
        String text = "crimson sofa"; // a synonym for MACH, a title word for BM25
        QueryBuilder lex = QueryBuilders.matchQuery("title", text);
        Map<String, Float> lexical = lexical(lex);
        assertFalse(lexical.isEmpty());
        Prediction p = predict(text, new Decoder.Options(30, Decoder.Strategy.AUTO, 10, 1, Decoder.ScoreMode.MEAN));
        float w = 4f;
        Map<String, Float> mach = predicted(p, w);

        // filter: lexical scores, only MACH candidates
        Map<String, Float> filter = hits(search(m -> m, text, 400, m -> m.topN(30).lexical(lex).combine(Combine.FILTER)));
        Map<String, Float> expected = new LinkedHashMap<>();
        lexical.forEach((id, s) -> { if (mach.containsKey(id)) expected.put(id, s); });
        assertScores(expected, filter);
        for (String id : filter.keySet()) assertTrue(id + " is not a candidate", mach.containsKey(id));

        // boost (the default): lexical matches only, + w * MACH score for candidates
        Map<String, Float> boost = hits(search(m -> m, text, 400, m -> m.topN(30).lexical(lex).machWeight(w)));
        expected.clear();
        lexical.forEach((id, s) -> expected.put(id, s + mach.getOrDefault(id, 0f)));
        assertScores(expected, boost);

        // hybrid: union, sum
        Map<String, Float> hybrid = hits(search(m -> m, text, 400, m -> m.topN(30).lexical(lex).combine(Combine.HYBRID).machWeight(w)));
        expected.clear();
        Set<String> union = new HashSet<>(lexical.keySet());
        union.addAll(mach.keySet());
        for (String id : union) expected.put(id, lexical.getOrDefault(id, 0f) + mach.getOrDefault(id, 0f));
        assertScores(expected, hybrid);
        assertTrue("hybrid adds MACH-only products", hybrid.size() > lexical.size());
    }

    public void testMinMaxNormalization() throws IOException {
        indexProducts();
        String text = "crimson sofa";
        QueryBuilder lex = QueryBuilders.matchQuery("title", text);
        List<Map.Entry<String, Float>> lexical = new ArrayList<>(lexical(lex).entrySet()); // best first
        int window = 20;
        assertTrue("more lexical matches than the window", lexical.size() > window);
        float lexMax = lexical.get(0).getValue(), lexMin = lexical.get(window - 1).getValue();
        assertTrue(lexMax > lexMin);
        Prediction p = predict(text, new Decoder.Options(30, Decoder.Strategy.AUTO, 10, 1, Decoder.ScoreMode.MEAN));
        float[] mach = p.result().scores();
        float machMax = mach[0], machMin = mach[mach.length - 1];
        float w = 0.3f;
        for (Combine mode : List.of(Combine.BOOST, Combine.HYBRID)) {
            Map<String, Float> got = hits(search(m -> m, text, 400,
                m -> m.topN(30).lexical(lex).combine(mode).normalization(Normalization.MIN_MAX).machWeight(w).lexicalWindow(window)));
            // (1 - w) * mm(lexical) + w * mm(mach), mm over each side's top results, clamped at 0 below them
            Map<String, Float> expected = new LinkedHashMap<>();
            for (Map.Entry<String, Float> e : lexical) {
                expected.put(e.getKey(), (1 - w) * Math.max(0, (e.getValue() - lexMin) / (lexMax - lexMin)));
            }
            for (int i = 0; i < p.size(); i++) {
                if (mode == Combine.BOOST && !expected.containsKey(p.productId(i))) continue;
                expected.merge(p.productId(i), w * (mach[i] - machMin) / (machMax - machMin), Float::sum);
            }
            assertScores(expected, got);
            assertEquals(mode + ": the best of both sides scores 1 at most", 1f, Math.max(1f, got.values().iterator().next()), 1e-5f);
        }
        // the model's query defaults (hybrid, min_max, w 0.3, top_n 30, window 20) give the same query; the request overrides them
        Map<String, Float> explicit = hits(search(m -> m, text, 400,
            m -> m.topN(30).lexical(lex).combine(Combine.HYBRID).normalization(Normalization.MIN_MAX).machWeight(w).lexicalWindow(window)));
        assertScores(explicit, hits(search("tiny-defaults", text, m -> m.lexical(lex))));
        Map<String, Float> boost = hits(search(m -> m, text, 400, m -> m.topN(30).lexical(lex).machWeight(4f)));
        assertScores(boost, hits(search("tiny-defaults", text, m -> m.lexical(lex).combine(Combine.BOOST).normalization(Normalization.NONE)
            .machWeight(4f))));

        // explain shows the map of the lexical side
        SearchResponse ex = client().prepareSearch(INDEX).setSearchType(SearchType.QUERY_THEN_FETCH).setExplain(true).setSize(1)
            .setQuery(new MachQueryBuilder(MODEL, text, "product_id", () -> internalCluster().getInstance(MachInferenceService.class,
                internalCluster().getNodeNames()[0])).topN(30).lexical(lex).combine(Combine.HYBRID).normalization(Normalization.MIN_MAX)
                .machWeight(w).lexicalWindow(window)).get();
        SearchHit top = ex.getHits().getHits()[0];
        String explanation = top.getExplanation().toString();
        assertTrue(explanation, explanation.contains("computed as boost * max(0, scale * score + offset)"));
        assertEquals(top.getScore(), top.getExplanation().getValue().floatValue(), 1e-6f);
    }

    public void testBadQueryDefaultsAreA400() throws IOException {
        indexProducts();
        assertError(searchBody("").replace("\"" + MODEL + "\"", "\"tiny-bad-defaults\""), 400,
            "model [tiny-bad-defaults] mach.json [query_defaults] [mach_weight] must be a number, got a string [high]");
        // a request value that does not fit the model's defaults
        assertError(searchBody(", \"lexical\": {\"match\": {\"title\": \"x\"}}, \"mach_weight\": 5").replace("\"" + MODEL + "\"",
            "\"tiny-defaults\""), 400, "[mach_weight] must be between 0 and 1");
    }

    private SearchResponse search(String model, String text, java.util.function.Consumer<MachQueryBuilder> params) {
        String node = randomFrom(internalCluster().getNodeNames());
        MachQueryBuilder mach = new MachQueryBuilder(model, text, "product_id", () -> internalCluster().getInstance(MachInferenceService.class, node));
        params.accept(mach);
        return client(node).prepareSearch(INDEX).setSearchType(SearchType.QUERY_THEN_FETCH).setQuery(mach).setSize(400).get();
    }

    public void testComposesWithTheDsl() throws IOException {
        indexProducts();
        String text = "crimson couch";
        Prediction p = predict(text, new Decoder.Options(20, Decoder.Strategy.AUTO, 10, 1, Decoder.ScoreMode.MEAN));
        Map<String, Float> mach = predicted(p, 1f);
        String first = p.productId(0);

        Map<String, Float> bool = hits(search(m -> QueryBuilders.boolQuery().must(m).filter(QueryBuilders.termQuery("product_id", first)), text, 10,
            m -> m.topN(20)));
        assertScores(Map.of(first, mach.get(first)), bool);

        Map<String, Float> notFirst = hits(search(m -> QueryBuilders.boolQuery().must(m).mustNot(QueryBuilders.termQuery("product_id", first)),
            text, 100, m -> m.topN(20)));
        Map<String, Float> expected = new LinkedHashMap<>(mach);
        expected.remove(first);
        assertScores(expected, notFirst);

        Map<String, Float> fs = hits(search(m -> QueryBuilders.functionScoreQuery(m, ScoreFunctionBuilders.weightFactorFunction(2.5f)), text, 100,
            m -> m.topN(20)));
        expected = new LinkedHashMap<>();
        for (Map.Entry<String, Float> e : mach.entrySet()) expected.put(e.getKey(), e.getValue() * 2.5f);
        assertScores(expected, fs);

        Map<String, Float> cs = hits(search(m -> QueryBuilders.constantScoreQuery(m).boost(3f), text, 100, m -> m.topN(20)));
        expected = new LinkedHashMap<>();
        for (String id : mach.keySet()) expected.put(id, 3f);
        assertScores(expected, cs);

        String other = "P00299".equals(first) ? "P00298" : "P00299";
        Map<String, Float> dm = hits(search(m -> QueryBuilders.disMaxQuery().add(m).add(QueryBuilders.termQuery("product_id", other).boost(0.001f)),
            text, 100, m -> m.topN(20)));
        expected = new LinkedHashMap<>(mach);
        expected.merge(other, hits(client().prepareSearch(INDEX).setSearchType(SearchType.QUERY_THEN_FETCH).setQuery(QueryBuilders.termQuery("product_id", other).boost(0.001f)).get())
            .get(other), Math::max);
        assertScores(expected, dm);

        // explain names the product
        SearchResponse ex = client().prepareSearch(INDEX).setExplain(true).setSize(1)
            .setQuery(new MachQueryBuilder(MODEL, text, "product_id", () -> internalCluster().getInstance(MachInferenceService.class,
                internalCluster().getNodeNames()[0])).topN(5)).get();
        String explanation = ex.getHits().getHits()[0].getExplanation().toString();
        assertTrue(explanation, explanation.contains("mach product [" + first + "]"));
    }

    // ------------------------------------------------------------------ REST

    private static String searchBody(String machParams) {
        return "{\"query\": {\"mach\": {\"model_id\": \"" + MODEL + "\", \"query_text\": \"red sofa\", \"product_id_field\": \"product_id\""
            + machParams + "}}}";
    }

    private static void assertError(String body, int status, String mustMention) throws IOException {
        JsonNode err = rest("POST", "/" + INDEX + "/_search", body, status);
        String all = err.toString();
        assertTrue("error should mention [" + mustMention + "]: " + all, all.contains(mustMention));
    }

    public void testRestPredictMatchesTheModel() throws IOException {
        indexProducts();
        JsonNode r = rest("POST", "/_plugins/_mach/models/" + MODEL + "/_predict", "{\"query_text\": \"crimson couch\", \"top_n\": 7}", 200);
        Prediction p = predict("crimson couch", new Decoder.Options(7, Decoder.Strategy.AUTO, 10, 1, Decoder.ScoreMode.MEAN));
        assertEquals(7, r.get("products").size());
        for (int i = 0; i < 7; i++) {
            assertEquals(p.productId(i), r.get("products").get(i).get("product_id").asText());
            assertEquals(p.result().scores()[i], r.get("products").get(i).get("score").floatValue(), 1e-6f);
        }
        assertEquals(tinyModel().card().repetitions, r.get("repetitions").size());
        assertEquals(5, r.get("repetitions").get(0).get("top_buckets").size());

        // the mach query over HTTP gives the same scores
        JsonNode s = rest("POST", "/" + INDEX + "/_search",
            "{\"size\": 7, \"query\": {\"mach\": {\"model_id\": \"tiny\", \"query_text\": \"crimson couch\", \"product_id_field\": \"product_id\", \"top_n\": 7}}}", 200);
        assertEquals(7, s.get("hits").get("hits").size());
        for (JsonNode h : s.get("hits").get("hits")) {
            int rank = -1;
            for (int i = 0; i < 7; i++) if (p.productId(i).equals(h.get("_id").asText())) rank = i;
            assertTrue(h.toString(), rank >= 0);
            assertEquals(p.result().scores()[rank], h.get("_score").floatValue(), 1e-6f);
        }

        JsonNode models = rest("GET", "/_plugins/_mach/models", null, 200);
        assertTrue(models.toString(), models.get("available").toString().contains("\"tiny\""));
        JsonNode card = rest("GET", "/_plugins/_mach/models/" + MODEL, null, 200);
        assertEquals(tinyModel().card().buckets, card.get("B").asInt());
        assertEquals("tiny-synth-r4-b64", card.get("card").get("name").asText());
    }

    /** Repeated texts are served by each coordinator's result cache: same hits, hit counts in the models API. */
    public void testResultCacheServesRepeatedQueries() throws IOException {
        indexProducts();
        String text = "walnut settee " + randomAlphaOfLength(8).toLowerCase(java.util.Locale.ROOT); // no other test sends it
        long hitsBefore = cacheHits();
        Map<String, Float> first = hits(search(m -> m, text, 400, m -> m.topN(20)));
        assertEquals(20, first.size());
        for (int i = 0; i < 3; i++) {
            // same tokens after normalization: same cache entry, same hits and scores
            assertEquals(first, hits(search(m -> m, "  " + text.toUpperCase(java.util.Locale.ROOT) + "!", 400, m -> m.topN(20))));
        }
        // 4 searches over 2 coordinators: each misses at most once
        assertTrue("cache hits " + (cacheHits() - hitsBefore), cacheHits() - hitsBefore >= 2);
        JsonNode models = rest("GET", "/_plugins/_mach/models", null, 200);
        assertEquals(models.toString(), 10_000, models.get("cache").get("max_entries").asInt());
        JsonNode one = rest("GET", "/_plugins/_mach/models/" + MODEL, null, 200);
        assertTrue(one.toString(), one.get("cache").get("hits").isNumber() && one.get("cache").get("misses").isNumber());
    }

    private long cacheHits() {
        long hits = 0;
        for (MachInferenceService s : internalCluster().getInstances(MachInferenceService.class)) {
            hits += s.cache().stats(MODEL).hits();
        }
        return hits;
    }

    public void testExplainAndValidateApis() throws IOException {
        indexProducts();
        Prediction p = predict("crimson couch", new Decoder.Options(5, Decoder.Strategy.AUTO, 10, 1, Decoder.ScoreMode.MEAN));
        String q = "{\"query\": {\"mach\": {\"model_id\": \"tiny\", \"query_text\": \"crimson couch\", \"product_id_field\": \"product_id\", \"top_n\": 5}}}";
        JsonNode ex = rest("POST", "/" + INDEX + "/_explain/" + p.productId(0), q, 200);
        assertTrue(ex.toString(), ex.get("matched").asBoolean());
        assertEquals(p.result().scores()[0], ex.get("explanation").get("value").floatValue(), 1e-6f);
        JsonNode v = rest("POST", "/" + INDEX + "/_validate/query?explain=true", q, 200);
        assertTrue(v.toString(), v.get("valid").asBoolean());
        JsonNode count = rest("POST", "/" + INDEX + "/_count", q, 200);
        assertEquals(5, count.get("count").asInt());

        // profile wraps the weight and scorer; aggregations and a sort run over the matches
        String body = q.substring(0, q.length() - 1)
            + ", \"profile\": true, \"sort\": [{\"price\": \"asc\"}], \"aggs\": {\"max_price\": {\"max\": {\"field\": \"price\"}}}}";
        JsonNode prof = rest("POST", "/" + INDEX + "/_search", body, 200);
        assertEquals(5, prof.get("hits").get("total").get("value").asInt());
        assertTrue(prof.toString(), prof.get("profile").get("shards").size() > 0);
        assertTrue(prof.toString(), prof.toString().contains("MachProductsQuery"));
        double prev = -1;
        for (JsonNode h : prof.get("hits").get("hits")) {
            double price = h.get("sort").get(0).asDouble();
            assertTrue(price >= prev);
            prev = price;
        }
        assertEquals(prev, prof.get("aggregations").get("max_price").get("value").asDouble(), 0);
    }

    public void testBadInputIsA4xx() throws IOException {
        indexProducts();
        // unknown model
        JsonNode nf = rest("POST", "/" + INDEX + "/_search",
            "{\"query\": {\"mach\": {\"model_id\": \"nope\", \"query_text\": \"red sofa\", \"product_id_field\": \"product_id\"}}}", 404);
        assertTrue(nf.toString(), nf.toString().contains("model [nope] not found") && nf.toString().contains("available: [tiny, "));
        rest("POST", "/_plugins/_mach/models/nope/_predict", "{\"query_text\": \"red sofa\"}", 404);
        // product id field missing / not keyword
        assertError(searchBody("").replace("\"product_id\"", "\"no_such_field\""), 400, "[no_such_field] does not exist");
        assertError(searchBody("").replace("\"product_id_field\": \"product_id\"", "\"product_id_field\": \"title\""), 400,
            "must be a keyword field, but it is [text]");
        // text
        assertError(searchBody("").replace("red sofa", "  "), 400, "query_text");
        assertError(searchBody("").replace("red sofa", "a".repeat(1025)), 400, "at most 1024");
        // top_n, modes
        assertError(searchBody(", \"top_n\": 0"), 400, "[top_n] must be between 1 and 10000");
        assertError(searchBody(", \"top_n\": \"ten\""), 400, "[top_n] must be an integer");
        assertError(searchBody(", \"lexical\": {\"match\": {\"title\": \"x\"}}, \"combine\": \"blend\""), 400, "unknown combine [blend]");
        assertError(searchBody(", \"combine\": \"filter\""), 400, "needs a [lexical] query");
        assertError(searchBody(", \"decoding\": \"fast\""), 400, "unknown decoding [fast]");
        assertError(searchBody(", \"min_repetitions\": 9"), 400, "min_repetitions [9] is larger than the number of repetitions R = 4");
        assertError(searchBody(", \"bogus\": 1"), 400, "unknown parameter [bogus]");
        // malformed JSON
        rest("POST", "/" + INDEX + "/_search", "{\"query\": {\"mach\": {\"model_id\": \"tiny\", \"query_text\": ", 400);
        rest("POST", "/_plugins/_mach/models/tiny/_predict", "{not json", 400);
        rest("POST", "/_plugins/_mach/models/tiny/_predict", "{\"query_text\": \"\"}", 400);
        rest("POST", "/_plugins/_mach/models/tiny/_predict", "{\"query_text\": \"x\", \"top_n\": 0}", 400);
        rest("POST", "/_plugins/_mach/models/tiny/_predict", "{\"query_text\": \"x\", \"top_n\": \"ten\"}", 400);
        rest("POST", "/_plugins/_mach/models/tiny/_predict", "{\"query_text\": \"x\", \"what\": 1}", 400);
        rest("POST", "/_plugins/_mach/models/..%2Fetc/_predict", "{\"query_text\": \"x\"}", 400);
        // null or a wrong JSON type: a 400 naming the field; _predict takes exactly what the query takes
        assertError(searchBody(", \"top_n\": null"), 400, "[top_n] must be an integer, got null");
        assertError(searchBody(", \"mach_weight\": null"), 400, "[mach_weight] must be a number, got null");
        assertError(searchBody(", \"decoding\": {\"x\": 1}"), 400, "[decoding] must be a string, got an object");
        assertTrue(rest("POST", "/_plugins/_mach/models/tiny/_predict", "{\"query_text\": 42}", 400).toString()
            .contains("[query_text] must be a string, got a number [42]"));
        assertTrue(rest("POST", "/_plugins/_mach/models/tiny/_predict", "{\"query_text\": \"x\", \"top_n\": \"5\"}", 400).toString()
            .contains("[top_n] must be an integer"));
        assertTrue(rest("POST", "/_plugins/_mach/models/tiny/_predict", "{\"query_text\": \"x\", \"min_repetitions\": null}", 400).toString()
            .contains("[min_repetitions] must be an integer, got null"));
        // the index binding is checked when it is set, not at query time
        assertTrue(rest("PUT", "/" + INDEX + "/_settings", "{\"index.mach.model\": \"../etc\"}", 400).toString().contains("index.mach.model"));
    }

    /**
     * Random JSON values of every type for every parameter of the mach query and of _predict (seeded by
     * the test seed): whatever the mix, the answer is a 2xx or a 4xx, never a 5xx.
     */
    public void testParserFuzzNeverA5xx() throws IOException {
        indexProducts();
        List<String> queryFields = List.of("model_id", "query_text", "product_id_field", "top_n", "decoding", "buckets_per_repetition",
            "min_repetitions", "score", "normalize", "lexical", "combine", "mach_weight", "normalization", "lexical_window", "boost", "_name");
        List<String> predictFields = List.of("query_text", "text", "top_n", "decoding", "buckets_per_repetition", "min_repetitions", "score",
            "normalize", "top_buckets");
        int twoXx = 0;
        for (int i = 0; i < 300; i++) {
            boolean predict = i % 3 == 2;
            Map<String, Object> params = new LinkedHashMap<>();
            if (!predict) {
                params.put("model_id", MODEL);
                params.put("product_id_field", "product_id");
            }
            params.put("query_text", "red sofa");
            List<String> fields = predict ? predictFields : queryFields;
            // every tenth request keeps its valid base: random values alone are all invalid for some seeds, and then the
            // success path would go unexercised
            for (int n = i % 10 == 0 ? 0 : between(1, 3); n > 0; n--) params.put(randomFrom(fields), randomJsonValue());
            String body = predict ? JSON.writeValueAsString(params)
                : JSON.writeValueAsString(Map.of("query", Map.of("mach", params), "size", 3));
            String path = predict ? "/_plugins/_mach/models/" + MODEL + "/_predict" : "/" + INDEX + "/_search";
            org.opensearch.client.Request req = new org.opensearch.client.Request("POST", path);
            req.setJsonEntity(body);
            org.opensearch.client.Response resp;
            try {
                resp = getRestClient().performRequest(req);
            } catch (org.opensearch.client.ResponseException e) {
                resp = e.getResponse();
            }
            int status = resp.getStatusLine().getStatusCode();
            assertTrue(path + " " + body + " -> " + status, status < 500);
            if (status < 300) twoXx++;
        }
        assertTrue("some random requests are valid: " + twoXx, twoXx > 0);
    }

    /** A JSON value of a random type: null, boolean, integer (in and out of every range), fraction, text, object, array. */
    private static Object randomJsonValue() {
        return switch (between(0, 7)) {
            case 0 -> null;
            case 1 -> randomBoolean();
            case 2 -> randomFrom(0, 1, -1, 2, 5, 100, 10_000, 10_001, 100_000, Integer.MAX_VALUE);
            case 3 -> randomFrom(Long.MAX_VALUE, Long.MIN_VALUE, new java.math.BigInteger("123456789012345678901234567890"));
            case 4 -> randomFrom(0.0, 0.5, -2.5, 1e300, -1e-300, 10.0);
            case 5 -> randomFrom("", " ", "tiny", "product_id", "title", "price", "red sofa", "auto", "exact", "candidates", "mean",
                "calibrated", "filter", "boost", "hybrid", "none", "min_max", "10", "true", "../etc", "x".repeat(1025), randomUnicodeOfLengthBetween(0, 20));
            case 6 -> randomFrom(Map.of(), Map.of("match_all", Map.of()), Map.of("match", Map.of("title", "sofa")), Map.of("a", 1),
                Map.of("term", Map.of("price", "not a number")));
            default -> randomFrom(List.of(), List.of(1), List.of("x"), List.of(Map.of()));
        };
    }
}
