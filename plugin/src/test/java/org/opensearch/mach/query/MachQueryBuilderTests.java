package org.opensearch.mach.query;

import org.opensearch.index.query.BoolQueryBuilder;
import org.opensearch.index.query.MatchQueryBuilder;
import org.opensearch.index.query.QueryBuilder;
import org.opensearch.mach.inference.Decoder;

import java.io.IOException;
import java.util.List;

/** Parsing, validation, serialization and the rewritten form of the mach query (no model needed). */
public class MachQueryBuilderTests extends MachQueryParsingTestCase {
    private static String mach(String params) {
        return "{\"mach\": {\"model_id\": \"m\", \"query_text\": \"red sofa\", \"product_id_field\": \"pid\"" + params + "}}";
    }

    private QueryBuilder rewritten(String json, org.opensearch.mach.inference.Prediction p) throws IOException {
        MachQueryBuilder q = (MachQueryBuilder) parse(json);
        return q.rewrittenQuery(p, q.options(), null);
    }

    private static com.fasterxml.jackson.databind.JsonNode json(String s) throws IOException {
        return new com.fasterxml.jackson.databind.ObjectMapper().readTree(s);
    }

    public void testParseAllParametersAndRoundTrip() throws IOException {
        MachQueryBuilder q = (MachQueryBuilder) parse(mach("""
            , "top_n": 50, "decoding": "candidates", "buckets_per_repetition": 7, "min_repetitions": 2, "score": "calibrated",
            "normalize": true, "lexical": {"match": {"title": "red sofa"}}, "combine": "hybrid", "mach_weight": 2.5,
            "boost": 1.5, "_name": "q1\""""));
        assertRoundTrips(q);
        assertEquals("m", q.modelId());
        assertEquals("red sofa", q.queryText());
        assertEquals("pid", q.productIdField());
        assertEquals(50, q.topN());
        assertEquals(new Decoder.Options(50, Decoder.Strategy.CANDIDATES, 7, 2, Decoder.ScoreMode.CALIBRATED), q.decoderOptions());
        assertEquals(Combine.HYBRID, q.effectiveCombine());
        assertEquals(2.5f, q.effectiveMachWeight(), 0f);
        assertEquals(new MatchQueryBuilder("title", "red sofa"), q.lexical());
        assertEquals(1.5f, q.boost(), 0f);
        assertEquals("q1", q.queryName());
        assertRoundTrips((MachQueryBuilder) parse(mach(", \"lexical\": {\"match\": {\"title\": \"x\"}}, \"normalization\": \"min_max\", "
            + "\"mach_weight\": 0, \"lexical_window\": 7, \"combine\": \"boost\"")));
    }

    /** XContent and wire round trips give an equal query (only the given parameters travel: model defaults still apply after). */
    public void testDefaults() throws IOException {
        MachQueryBuilder q = (MachQueryBuilder) parse(mach(""));
        assertEquals(MachQueryBuilder.DEFAULT_TOP_N, q.topN());
        assertEquals(
            new Decoder.Options(100, Decoder.Strategy.AUTO, MachQueryBuilder.DEFAULT_BUCKETS_PER_REPETITION, 1, Decoder.ScoreMode.MEAN),
            q.decoderOptions()
        );
        assertNull(q.effectiveCombine());
        MachQueryBuilder withLexical = (MachQueryBuilder) parse(mach(", \"lexical\": {\"match\": {\"title\": \"x\"}}"));
        assertEquals("boost is the default with a lexical query", Combine.BOOST, withLexical.effectiveCombine());
        assertEquals(MachQueryBuilder.DEFAULT_MACH_WEIGHT, withLexical.effectiveMachWeight(), 0f);
        assertEquals(Normalization.NONE, withLexical.options().normalization());
        assertFalse("defaults are not written out", withLexical.toString().contains("top_n"));
        MachQueryBuilder minMax = (MachQueryBuilder) parse(mach(", \"lexical\": {\"match\": {\"title\": \"x\"}}, \"normalization\": \"min_max\", \"top_n\": 30"));
        assertEquals(0.5f, minMax.effectiveMachWeight(), 0f);
        assertEquals("the lexical window is top_n unless given", 30, minMax.options().lexicalWindow());
    }

    public void testMinMaxErrors() throws IOException {
        String lex = ", \"lexical\": {\"match\": {\"t\": \"x\"}}";
        assertTrue(parseError(mach(lex + ", \"normalization\": \"min_max\", \"mach_weight\": 3")).contains("[mach_weight] must be between 0 and 1"));
        assertTrue(parseError(mach(lex + ", \"normalization\": \"min_max\", \"mach_weight\": -0.1")).contains("[mach_weight] must be between 0 and 1"));
        assertTrue(parseError(mach(lex + ", \"normalization\": \"min_max\", \"combine\": \"filter\"")).contains("[min_max] applies to [combine] [boost] and [hybrid]"));
        assertTrue(parseError(mach(", \"normalization\": \"min_max\"")).contains("[normalization] applies only with a [lexical] query"));
        assertTrue(parseError(mach(lex + ", \"lexical_window\": 10")).contains("[lexical_window] applies only with [normalization] [min_max]"));
        assertTrue(parseError(mach(lex + ", \"normalization\": \"min_max\", \"lexical_window\": 0")).contains("[lexical_window] must be between 1 and 10000"));
        assertTrue(parseError(mach(lex + ", \"normalization\": \"min_max\", \"lexical_window\": 10001")).contains("[lexical_window] must be between 1 and 10000"));
        assertEquals(10_000, ((MachQueryBuilder) parse(mach(lex + ", \"normalization\": \"min_max\", \"lexical_window\": 10000"))).options().lexicalWindow());
        assertTrue(parseError(mach(lex + ", \"normalization\": \"zscore\"")).contains("unknown normalization [zscore]; use one of [none, min_max]"));
        assertTrue(parseError(mach(lex + ", \"normalization\": 1")).contains("[normalization] must be a string"));
    }

    public void testModelQueryDefaults() throws IOException {
        var card = json("{\"combine\": \"hybrid\", \"normalization\": \"min_max\", \"mach_weight\": 0.3, \"top_n\": 200}");
        String lex = ", \"lexical\": {\"match\": {\"t\": \"x\"}}";
        MachOptions all = ((MachQueryBuilder) parse(mach(lex))).effectiveOptions(card, "m");
        assertEquals(Combine.HYBRID, all.combine(true));
        assertEquals(Normalization.MIN_MAX, all.normalization());
        assertEquals(0.3f, all.machWeight(), 0f);
        assertEquals(200, all.topN());
        assertEquals(200, all.lexicalWindow());
        // the request overrides what it gives
        MachOptions some = ((MachQueryBuilder) parse(mach(lex + ", \"top_n\": 50, \"combine\": \"boost\""))).effectiveOptions(card, "m");
        assertEquals(Combine.BOOST, some.combine(true));
        assertEquals(50, some.topN());
        assertEquals(0.3f, some.machWeight(), 0f);
        // fusion defaults do not apply where they mean nothing: a bare query, combine filter
        MachOptions bare = ((MachQueryBuilder) parse(mach(""))).effectiveOptions(card, "m");
        assertNull(bare.combine(false));
        assertEquals(200, bare.topN());
        MachOptions filter = ((MachQueryBuilder) parse(mach(lex + ", \"combine\": \"filter\""))).effectiveOptions(card, "m");
        assertEquals(Combine.FILTER, filter.combine(true));
        assertEquals(Normalization.NONE, filter.normalization());
        // the model's weight is meant for its normalization: a request that changes the normalization gets the plugin's weight
        MachOptions raw = ((MachQueryBuilder) parse(mach(lex + ", \"normalization\": \"none\""))).effectiveOptions(card, "m");
        assertEquals(MachQueryBuilder.DEFAULT_MACH_WEIGHT, raw.machWeight(), 0f);
        assertEquals(Combine.HYBRID, raw.combine(true));
        // no defaults: the plugin's
        MachOptions none = ((MachQueryBuilder) parse(mach(lex))).effectiveOptions(json("{}").path("query_defaults"), "m");
        assertEquals(Combine.BOOST, none.combine(true));
        assertEquals(MachQueryBuilder.DEFAULT_MACH_WEIGHT, none.machWeight(), 0f);
        // a request value that does not fit the model's defaults: a 400 that says where the other value came from
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
            () -> ((MachQueryBuilder) parse(mach(lex + ", \"mach_weight\": 5"))).effectiveOptions(card, "m"));
        assertTrue(e.getMessage(), e.getMessage().contains("[mach_weight] must be between 0 and 1") && e.getMessage().contains("model [m]'s query_defaults"));

        // bad defaults in the card: read as strictly as a request, named as the card's
        MachQueryBuilder q = (MachQueryBuilder) parse(mach(lex));
        for (String[] bad : new String[][] {
            { "{\"mach_weight\": \"high\"}", "model [m] mach.json [query_defaults] [mach_weight] must be a number, got a string [high]" },
            { "{\"top_n\": 0}", "model [m] mach.json [query_defaults] [top_n] must be between 1 and 10000" },
            { "{\"model_id\": \"x\"}", "model [m] mach.json [query_defaults] unknown parameter [model_id]" },
            { "{\"combine\": \"filter\", \"normalization\": \"min_max\"}", "model [m] mach.json [query_defaults] [normalization] [min_max] applies to" },
            { "{\"normalization\": \"min_max\", \"mach_weight\": 10}", "model [m] mach.json [query_defaults] [mach_weight] must be between 0 and 1" },
            { "[1]", "model [m] mach.json [query_defaults] must be a JSON object, got an array" },
            { "null", "model [m] mach.json [query_defaults] must be a JSON object, got null" } }) {
            Exception x = expectThrows(Exception.class, () -> q.effectiveOptions(json(bad[0]), "m"));
            assertTrue(bad[0] + ": " + x.getMessage(), x.getMessage().contains(bad[1]));
            assertEquals(org.opensearch.core.rest.RestStatus.BAD_REQUEST, org.opensearch.ExceptionsHelper.status(x));
        }
    }

    public void testModelQueryDefaultsIndexSide() throws IOException {
        // the tuned top level (catalog side, top_n) and an index_side block tuned apart
        var card = json("{\"combine\": \"hybrid\", \"normalization\": \"none\", \"mach_weight\": 10, \"top_n\": 200,"
            + " \"buckets_per_repetition\": 20, \"score\": \"calibrated\","
            + " \"index_side\": {\"combine\": \"hybrid\", \"normalization\": \"none\", \"mach_weight\": 10000, \"scored_buckets\": 512}}");
        String lex = ", \"lexical\": {\"match\": {\"t\": \"x\"}}";
        // product_id_field: the top level, index_side not used
        MachOptions catalog = ((MachQueryBuilder) parse(mach(lex))).effectiveOptions(card, "m");
        assertEquals(10f, catalog.machWeight(), 0f);
        assertEquals(200, catalog.topN());
        assertEquals(MachOptions.DEFAULT_SCORED_BUCKETS, catalog.scoredBucketsFor(32, 4096));
        // bucket_field: index_side's fusion; the top level's shared keys fill the rest, its top_n does not
        String index = mach(lex).replace("\"product_id_field\": \"pid\"", "\"bucket_field\": \"mb\"");
        MachOptions side = ((MachQueryBuilder) parse(index)).effectiveOptions(card, "m");
        assertEquals(Combine.HYBRID, side.combine(true));
        assertEquals(10000f, side.machWeight(), 0f);
        assertEquals("the card's scored_buckets, though R x B is small", 512, side.scoredBucketsFor(16, 4096));
        assertEquals(20, side.decoderOptions().bucketsPerRepetition());
        assertEquals(org.opensearch.mach.inference.Decoder.ScoreMode.CALIBRATED, side.decoderOptions().scoreMode());
        assertEquals(MachOptions.DEFAULT_TOP_N, side.topN());
        // the request still wins
        MachOptions asked = ((MachQueryBuilder) parse(index.replace(lex, lex + ", \"mach_weight\": 3"))).effectiveOptions(card, "m");
        assertEquals(3f, asked.machWeight(), 0f);
        // an index_side block without fusion keys: the top level's fusion is still not mixed in
        var candidatesOnly = json("{\"combine\": \"hybrid\", \"mach_weight\": 10, \"index_side\": {\"scored_buckets\": 64}}");
        MachOptions plain = ((MachQueryBuilder) parse(index)).effectiveOptions(candidatesOnly, "m");
        assertEquals(Combine.BOOST, plain.combine(true));
        assertEquals(MachOptions.DEFAULT_MACH_WEIGHT, plain.machWeight(), 0f);
        // no index_side: the top level serves both paths, as before
        var topOnly = json("{\"combine\": \"hybrid\", \"mach_weight\": 7}");
        assertEquals(7f, ((MachQueryBuilder) parse(index)).effectiveOptions(topOnly, "m").machWeight(), 0f);

        // a bad index_side is a 400 on either path, named as the card's block
        MachQueryBuilder catalogQuery = (MachQueryBuilder) parse(mach(lex));
        MachQueryBuilder indexQuery = (MachQueryBuilder) parse(index);
        for (String[] bad : new String[][] {
            { "{\"index_side\": {\"top_n\": 100}}", "model [m] mach.json [query_defaults] [index_side] unknown parameter [top_n]" },
            { "{\"index_side\": {\"decoding\": \"exact\"}}", "model [m] mach.json [query_defaults] [index_side] unknown parameter [decoding]" },
            { "{\"index_side\": {\"mach_weight\": \"high\"}}", "model [m] mach.json [query_defaults] [index_side] [mach_weight] must be a number, got a string [high]" },
            { "{\"index_side\": {\"normalization\": \"min_max\", \"mach_weight\": 10000}}", "model [m] mach.json [query_defaults] [index_side] [mach_weight] must be between 0 and 1" },
            { "{\"index_side\": {\"index_side\": {}}}", "model [m] mach.json [query_defaults] [index_side] unknown parameter [index_side]" },
            { "{\"index_side\": [1]}", "model [m] mach.json [query_defaults] [index_side] must be a JSON object, got an array" },
            { "{\"index_side\": null}", "model [m] mach.json [query_defaults] [index_side] must be a JSON object, got null" },
            { "{\"index_sides\": {}}", "model [m] mach.json [query_defaults] unknown parameter [index_sides]; known parameters: [top_n" } }) {
            for (MachQueryBuilder q : List.of(catalogQuery, indexQuery)) {
                Exception x = expectThrows(Exception.class, () -> q.effectiveOptions(json(bad[0]), "m"));
                assertTrue(bad[0] + ": " + x.getMessage(), x.getMessage().contains(bad[1]));
                assertEquals(org.opensearch.core.rest.RestStatus.BAD_REQUEST, org.opensearch.ExceptionsHelper.status(x));
            }
        }
    }

    public void testModelAndFieldMayComeFromTheIndexBinding() throws IOException {
        MachQueryBuilder q = (MachQueryBuilder) parse("{\"mach\": {\"query_text\": \"red sofa\"}}");
        assertNull(q.modelId());
        assertNull(q.productIdField());
        assertRoundTrips(q);
        // outside a search request (no index to read the binding from) the rewrite says what to give
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class, () -> org.opensearch.index.query.Rewriteable.rewrite(
            new MachQueryBuilder(null, "red sofa", null, () -> new org.opensearch.mach.inference.MachInferenceService(null, null, null)),
            new org.opensearch.index.query.BaseQueryRewriteContext(xContentRegistry(), writableRegistry(), null, () -> 0L)
        ));
        assertTrue(e.getMessage(), e.getMessage().contains("give them in the query"));
    }

    public void testErrors() {
        assertTrue(parseError("{\"mach\": {\"model_id\": \" \", \"query_text\": \"x\"}}").contains("[model_id] must not be empty"));
        assertTrue(parseError("{\"mach\": {\"model_id\": \"m\", \"product_id_field\": \"pid\"}}").contains("[query_text]"));
        assertTrue(parseError("{\"mach\": {\"query_text\": \"x\", \"product_id_field\": \"\"}}").contains("[product_id_field] must not be empty"));
        assertTrue(parseError("{\"mach\": {\"model_id\": \"m\", \"query_text\": \"  \", \"product_id_field\": \"p\"}}").contains("query_text"));
        String longText = "a".repeat(MachQueryBuilder.MAX_TEXT_LENGTH + 1);
        assertTrue(
            parseError("{\"mach\": {\"model_id\": \"m\", \"query_text\": \"" + longText + "\", \"product_id_field\": \"p\"}}")
                .contains("at most 1024")
        );
        assertTrue(parseError(mach(", \"top_n\": 0")).contains("[top_n] must be between 1 and 10000"));
        assertTrue(parseError(mach(", \"top_n\": 10001")).contains("[top_n] must be between 1 and 10000"));
        assertTrue(parseError(mach(", \"top_n\": 100000000000")).contains("[top_n]"));
        assertTrue(parseError(mach(", \"top_n\": \"ten\"")).contains("[top_n] must be an integer"));
        assertTrue(parseError(mach(", \"decoding\": \"fast\"")).contains("unknown decoding [fast]"));
        assertTrue(parseError(mach(", \"score\": \"max\"")).contains("unknown score [max]"));
        assertTrue(parseError(mach(", \"lexical\": {\"match\": {\"t\": \"x\"}}, \"combine\": \"blend\"")).contains("unknown combine [blend]"));
        assertTrue(parseError(mach(", \"combine\": \"filter\"")).contains("needs a [lexical] query"));
        assertTrue(parseError(mach(", \"mach_weight\": 2")).contains("[mach_weight] applies only with a [lexical] query"));
        assertTrue(parseError(mach(", \"lexical\": {\"match\": {\"t\": \"x\"}}, \"mach_weight\": 0")).contains("> 0"));
        assertTrue(parseError(mach(", \"decoding\": \"exact\", \"min_repetitions\": 2")).contains("candidate decoding only"));
        assertTrue(parseError(mach(", \"min_repetitions\": 0")).contains("[min_repetitions] must be between 1 and"));
        assertTrue(parseError(mach(", \"buckets_per_repetition\": 0")).contains("[buckets_per_repetition]"));
        assertTrue(parseError(mach(", \"no_such_param\": 1")).contains("unknown parameter [no_such_param]"));
        assertTrue(parseError(mach(", \"extra\": {\"a\": 1}")).contains("unknown parameter [extra]"));
        assertTrue(parseError(mach(", \"normalize\": \"yes\"")).contains("[normalize]"));
        // truncated JSON: a 400 (any exception would do for expectThrows(Exception.class): a 500 too)
        Exception truncated = expectThrows(Exception.class, () -> parse("{\"mach\": {\"model_id\": \"m\", \"query_text\": "));
        assertEquals(truncated.toString(), org.opensearch.core.rest.RestStatus.BAD_REQUEST, org.opensearch.ExceptionsHelper.status(truncated));
        // null and wrong JSON types: a 400 naming the known field, never "unknown parameter" nor a 500
        for (String field : List.of("top_n", "buckets_per_repetition", "min_repetitions", "mach_weight", "boost", "normalize", "decoding",
            "score", "combine", "_name", "lexical")) {
            for (String value : field.equals("lexical") ? List.of("null", "[1]", "\"match_all\"") : List.of("null", "{\"a\": 1}", "[1]")) {
                String msg = parseError(mach(", \"" + field + "\": " + value));
                assertTrue(field + " " + value + ": " + msg, msg.contains("[" + field + "] must be") && !msg.contains("unknown parameter"));
            }
        }
        assertTrue(parseError(mach(", \"top_n\": 10.5")).contains("[top_n] must be an integer, got a number [10.5]"));
        assertTrue(parseError(mach(", \"top_n\": \"10\"")).contains("[top_n] must be an integer, got a string [10]"));
        assertTrue(parseError(mach(", \"boost\": 1e300")).contains("[boost] must be a finite number"));
        assertTrue(parseError("{\"mach\": {\"model_id\": \"m\", \"query_text\": 42, \"product_id_field\": \"p\"}}")
            .contains("[query_text] must be a string, got a number [42]"));
    }

    /** A value beyond the JSON parser's limits (a number of over 1000 digits) is a 400 naming the parameter, not Jackson's 500. */
    public void testValuesBeyondTheJsonParsersLimits() {
        String digits = "1".repeat(1500);
        assertTrue(parseError(mach(", \"top_n\": " + digits)), parseError(mach(", \"top_n\": " + digits)).startsWith("[mach] [top_n] cannot be read: "));
        assertTrue(parseError(mach(", \"mach_weight\": 0." + digits)).startsWith("[mach] [mach_weight] cannot be read: "));
        assertTrue(parseError(mach(", \"lexical\": {\"term\": {\"f\": {\"value\": \"x\", \"boost\": " + digits + "}}}"))
            .startsWith("[mach] [lexical] cannot be read: "));
    }

    public void testUnrewrittenQueryCannotRunOnAShard() {
        MachQueryBuilder q = new MachQueryBuilder("m", "x", "pid", null);
        IllegalStateException e = expectThrows(IllegalStateException.class, () -> q.doToQuery(null));
        assertTrue(e.getMessage(), e.getMessage().contains("must be rewritten"));
    }

    public void testLuceneScores() {
        float[] decoded = { 0.5f, 0.25f, -0.01f };
        assertArrayEquals(new float[] { 0.5f, 0.25f, 0f }, MachQueryBuilder.luceneScores(decoded, false), 0f);
        assertArrayEquals(new float[] { 1f, 0.5f, 0f }, MachQueryBuilder.luceneScores(decoded, true), 0f);
        assertEquals(0, MachQueryBuilder.luceneScores(new float[0], true).length);
    }

    public void testRewrittenShapes() throws Exception {
        // real model output from the tiny fixture, then the bool shape of each combine mode
        java.nio.file.Path bundle = org.opensearch.mach.TestPaths.tinyFixture().resolve("bundle");
        try (org.opensearch.mach.model.MachModel model = org.opensearch.mach.model.BundleLoader.load("tiny", bundle, false)) {
            MachQueryBuilder bare = (MachQueryBuilder) parse(mach(", \"top_n\": 5, \"boost\": 2"));
            org.opensearch.mach.inference.Prediction p = org.opensearch.mach.inference.MachInferenceService.predict(
                model, bare.queryText(), bare.decoderOptions());
            assertEquals(5, p.size());
            MachProductsQueryBuilder products = (MachProductsQueryBuilder) bare.rewrittenQuery(p, bare.options(), null);
            assertEquals("pid", products.field());
            assertEquals(2f, products.boost(), 0f);
            for (int i = 0; i < 5; i++) {
                assertEquals(p.productId(i), products.ids()[i]);
                assertEquals(p.result().meanScores()[i], products.scores()[i], 0f);
            }
            // a text without letters or digits has no features: no products, so the bare query matches nothing
            org.opensearch.mach.inference.Prediction empty = org.opensearch.mach.inference.MachInferenceService.predict(
                model, "?! -- ...", bare.decoderOptions());
            assertEquals(0, empty.size());
            assertEquals(0, ((MachProductsQueryBuilder) bare.rewrittenQuery(empty, bare.options(), null)).ids().length);

            MatchQueryBuilder lexical = new MatchQueryBuilder("title", "x");
            String lex = ", \"lexical\": {\"match\": {\"title\": \"x\"}}, \"mach_weight\": 3";
            BoolQueryBuilder filter = (BoolQueryBuilder) rewritten(mach(lex + ", \"combine\": \"filter\""), p);
            assertEquals(List.of(lexical), filter.must());
            assertEquals(1, filter.filter().size());
            assertTrue(filter.should().isEmpty());
            BoolQueryBuilder boost = (BoolQueryBuilder) rewritten(mach(lex), p);
            assertEquals(List.of(lexical), boost.must());
            assertEquals(3f, boost.should().get(0).boost(), 0f);
            assertNull(boost.minimumShouldMatch());
            BoolQueryBuilder hybrid = (BoolQueryBuilder) rewritten(mach(lex + ", \"combine\": \"hybrid\""), p);
            assertTrue(hybrid.must().isEmpty());
            assertEquals(lexical, hybrid.should().get(0));
            assertEquals(3f, hybrid.should().get(1).boost(), 0f);
            assertEquals("1", hybrid.minimumShouldMatch());

            // min_max: the lexical clause maps its scores by its range, the MACH scores are min-max normalized; weights 1 - w and w
            for (String mode : List.of("boost", "hybrid")) {
                MachQueryBuilder q = (MachQueryBuilder) parse(mach(", \"lexical\": {\"match\": {\"title\": \"x\"}}, \"normalization\": \"min_max\", "
                    + "\"mach_weight\": 0.25, \"combine\": \"" + mode + "\""));
                BoolQueryBuilder b = (BoolQueryBuilder) q.rewrittenQuery(p, q.options(), new ScoreRange(2f, 10f));
                AffineScoreQueryBuilder lexPart = (AffineScoreQueryBuilder) (mode.equals("boost") ? b.must() : b.should()).get(0);
                assertEquals(lexical, lexPart.query());
                assertEquals(0.125f, lexPart.scale(), 0f);
                assertEquals(-0.25f, lexPart.offset(), 0f);
                assertEquals(0.75f, lexPart.boost(), 0f);
                MachProductsQueryBuilder machPart = (MachProductsQueryBuilder) b.should().get(mode.equals("boost") ? 0 : 1);
                assertEquals(0.25f, machPart.boost(), 0f);
                float[] raw = p.result().scores(), mm = machPart.scores();
                float min = raw[raw.length - 1], max = raw[0];
                for (int i = 0; i < mm.length; i++) assertEquals((raw[i] - min) / (max - min), mm[i], 1e-6f);
                assertEquals(1f, mm[0], 1e-6f);
                assertEquals(0f, mm[mm.length - 1], 0f);
            }
        }
    }

    public void testScoreRange() {
        ScoreRange r = ScoreRange.of(new float[] { 4f, 10f, 2f });
        assertEquals(new ScoreRange(2f, 10f), r);
        assertEquals(1f, r.normalize(10f), 1e-6f);
        assertEquals(0.5f, r.normalize(6f), 1e-6f);
        assertEquals(0f, r.normalize(2f), 0f);
        assertEquals("below the window's lowest score: 0", 0f, r.normalize(1f), 0f);
        // no spread: the top scores 1, lower scores in proportion; nothing positive: 0
        assertEquals(1f, ScoreRange.of(new float[] { 3f, 3f }).normalize(3f), 0f);
        assertEquals(0.5f, ScoreRange.of(new float[] { 3f }).normalize(1.5f), 1e-6f);
        assertEquals(0f, ScoreRange.EMPTY.normalize(5f), 0f);
        assertEquals(0f, ScoreRange.of(new float[0]).scale(), 0f);
    }
}
