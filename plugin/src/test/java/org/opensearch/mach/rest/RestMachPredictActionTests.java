package org.opensearch.mach.rest;

import org.opensearch.common.xcontent.json.JsonXContent;
import org.opensearch.core.common.ParsingException;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.test.OpenSearchTestCase;

import java.io.IOException;

/** The _predict body, read by the strict parser. */
public class RestMachPredictActionTests extends OpenSearchTestCase {

    private String error(String body) {
        ParsingException e = expectThrows(ParsingException.class, () -> {
            try (XContentParser parser = createParser(JsonXContent.jsonXContent, body)) {
                RestMachPredictAction.parse(parser);
            }
        });
        return e.getMessage();
    }

    public void testDefaults() throws IOException {
        try (XContentParser parser = createParser(JsonXContent.jsonXContent, "{\"text\": \"cordless drill\"}")) {
            RestMachPredictAction.Params p = RestMachPredictAction.parse(parser);
            assertEquals("cordless drill", p.text);
            assertEquals(10, p.topN);
            assertEquals(10, p.buckets);
            assertEquals(1, p.minRepetitions);
            assertEquals(5, p.topBuckets);
            assertFalse(p.normalize);
        }
    }

    public void testRefusalsNameTheField() {
        String digits = "1".repeat(1500);
        assertEquals("[_predict] [top_n] must be an integer, got null", error("{\"query_text\": \"x\", \"top_n\": null}"));
        assertEquals("[_predict] [top_buckets] must be between 0 and 1000, got [1001]", error("{\"query_text\": \"x\", \"top_buckets\": 1001}"));
        assertEquals("[_predict] [normalize] must be true or false, got a string [yes]", error("{\"query_text\": \"x\", \"normalize\": \"yes\"}"));
        assertTrue(error("{\"query_text\": \"x\", \"top_n\": " + digits + "}").startsWith("[_predict] [top_n] cannot be read: "));
        assertTrue(error("{\"query_text\": \"x\", \"limit\": 3}").startsWith("[_predict] unknown parameter [limit]"));
    }

    /** A body whose bytes are not text in the encoding the JSON parser detects (UTF-32 cut short) is a 400 too, not Jackson's IOException. */
    public void testUndecodableBodyIsA400() throws IOException {
        byte[] cutUtf32 = { 0, 0, 0, '{', 0, 0, 0 };
        ParsingException e = expectThrows(ParsingException.class, () -> {
            try (XContentParser parser = createParser(JsonXContent.jsonXContent, cutUtf32)) {
                RestMachPredictAction.parse(parser);
            }
        });
        assertEquals(org.opensearch.core.rest.RestStatus.BAD_REQUEST, e.status());
        assertTrue(e.getMessage(), e.getMessage().startsWith("[_predict] is not valid JSON"));
    }

    /** Any refusal (a ParsingException or, after the fields are read, an IllegalArgumentException): a 400; its message. */
    private String refused(String body) {
        Exception e = expectThrows(Exception.class, () -> {
            try (XContentParser parser = createParser(JsonXContent.jsonXContent, body)) {
                RestMachPredictAction.parse(parser);
            }
        });
        assertEquals(e.toString(), org.opensearch.core.rest.RestStatus.BAD_REQUEST, org.opensearch.ExceptionsHelper.status(e));
        return e.getMessage();
    }

    /** The text: required, not blank, at most 1024 characters; the enumerated parameters name their values. */
    public void testTextAndEnumRefusals() {
        assertEquals("[_predict] requires a non-empty [query_text]", refused("{\"top_n\": 3}"));
        assertEquals("[_predict] requires a non-empty [query_text]", refused("{\"query_text\": \" \\t \"}"));
        assertEquals("[_predict] [query_text] is longer than 1024 characters", refused("{\"query_text\": \"" + "a".repeat(1025) + "\"}"));
        assertEquals("[_predict] [text] must be a string, got null", refused("{\"text\": null}"));
        assertEquals("unknown decoding [fast]; use one of [auto, exact, candidates]", refused("{\"query_text\": \"x\", \"decoding\": \"fast\"}"));
        assertEquals("unknown score [best]; use one of [mean, calibrated]", refused("{\"query_text\": \"x\", \"score\": \"best\"}"));
        assertEquals("[_predict] [buckets_per_repetition] must be between 1 and 100000, got [0]",
            refused("{\"query_text\": \"x\", \"buckets_per_repetition\": 0}"));
        assertEquals("[_predict] [min_repetitions] must be between 1 and 2147483647, got [0]", refused("{\"query_text\": \"x\", \"min_repetitions\": 0}"));
        assertEquals("[_predict] must be a JSON object, got an array", refused("[\"x\"]"));
    }

    public void testNothingAfterTheBody() {
        assertEquals("[_predict] must be one JSON object, with nothing after it", refused("{\"query_text\": \"x\"} {\"query_text\": \"y\"}"));
        assertEquals("[_predict] must be one JSON object, with nothing after it", refused("{\"query_text\": \"x\"} trailing"));
    }
}
