package org.opensearch.mach.rest;

import org.opensearch.core.common.bytes.BytesArray;
import org.opensearch.core.xcontent.MediaTypeRegistry;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.mach.lifecycle.ModelLifecycleService;
import org.opensearch.rest.RestRequest;
import org.opensearch.test.OpenSearchTestCase;
import org.opensearch.test.rest.FakeRestRequest;

import java.util.HashMap;
import java.util.Map;

/** The lifecycle endpoints' request checks that run before any cluster work. */
public class RestMachLifecycleActionTests extends OpenSearchTestCase {

    private RestMachLifecycleAction action() {
        ModelLifecycleService service = new ModelLifecycleService(null, null, null, null, createTempDir(), createTempDir());
        return new RestMachLifecycleAction(() -> service);
    }

    private static RestRequest deploy(Map<String, String> params) {
        Map<String, String> all = new HashMap<>(params);
        all.put("id", "m");
        return new FakeRestRequest.Builder(NamedXContentRegistry.EMPTY).withMethod(RestRequest.Method.POST)
            .withPath("/_plugins/_mach/models/m/_deploy")
            .withParams(all)
            .build();
    }

    /** A _deploy query-string parameter of the wrong kind is a 400 (IllegalArgumentException) naming it. */
    public void testDeployParametersAreNamedInTheirErrors() {
        for (String[] bad : new String[][] {
            { "wait_for_completion", "yes", "[_deploy] [wait_for_completion] must be true or false, got [yes]" },
            { "wait_for_completion", "1", "[_deploy] [wait_for_completion] must be true or false, got [1]" },
            { "timeout", "soon", "[_deploy] [timeout] must be a time value such as 2m, got [soon]" },
            { "timeout", "-5s", "[_deploy] [timeout] must be a time value such as 2m, got [-5s]" } }) {
            IllegalArgumentException e = expectThrows(IllegalArgumentException.class, () -> action().prepareRequest(deploy(Map.of(bad[0], bad[1])), null));
            assertEquals(bad[0] + "=" + bad[1], bad[2], e.getMessage());
        }
    }

    private static RestRequest chunk(String body) {
        return new FakeRestRequest.Builder(NamedXContentRegistry.EMPTY).withMethod(RestRequest.Method.PUT)
            .withPath("/_plugins/_mach/uploads/abcdefgh12/0")
            .withParams(new HashMap<>(Map.of("upload_id", "abcdefgh12", "chunk", "0")))
            .withContent(new BytesArray(body), MediaTypeRegistry.JSON)
            .build();
    }

    /** A chunk body is read by its own streaming parser, as strictly: every refusal is a 400 (IllegalArgumentException). */
    public void testChunkBodyRefusals() {
        for (String[] bad : new String[][] {
            { "{\"data\": 5, \"sha256\": \"ab\"}", "[chunk] [data] must be a string, got a number [5]" },
            { "{\"data\": \"AAAA\", \"sha256\": null}", "[chunk] [sha256] must be a string, got null" },
            { "{\"data\": \"AAAA\", \"size\": 3}", "[chunk] unknown parameter [size]; known parameters: [data, sha256]" },
            { "{\"data\": \"AAAA\"}", "[chunk] needs [sha256]" },
            { "[1]", "[chunk] must be a JSON object, got an array" },
            { "{\"data\": \"AAAA\", \"sha256\": " + "1".repeat(1500) + "}", "[chunk] is not valid JSON: Number value length" } }) {
            IllegalArgumentException e = expectThrows(IllegalArgumentException.class, () -> action().prepareRequest(chunk(bad[0]), null));
            assertTrue(bad[0].substring(0, Math.min(60, bad[0].length())) + ": " + e.getMessage(), e.getMessage().startsWith(bad[1]));
        }
    }

    public void testDeployParametersAccepted() throws Exception {
        assertNotNull(action().prepareRequest(deploy(Map.of("wait_for_completion", "false", "timeout", "30s")), null));
        assertNotNull(action().prepareRequest(deploy(Map.of()), null));
    }

    private static RestRequest post(String path, Map<String, String> params, String body) {
        return post(path, params, body == null ? null : body.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    private static RestRequest post(String path, Map<String, String> params, byte[] body) {
        FakeRestRequest.Builder b = new FakeRestRequest.Builder(NamedXContentRegistry.EMPTY).withMethod(RestRequest.Method.POST)
            .withPath(path).withParams(new HashMap<>(params));
        if (body != null) b.withContent(new BytesArray(body), MediaTypeRegistry.JSON);
        return b.build();
    }

    /** The request is refused before any cluster work, as a 400 (what OpenSearch renders it as) whose message starts with {@code message}. */
    private void assertRefused(RestRequest request, String message) {
        Exception e = expectThrows(Exception.class, () -> action().prepareRequest(request, null));
        assertEquals(e.toString(), org.opensearch.core.rest.RestStatus.BAD_REQUEST, org.opensearch.ExceptionsHelper.status(e));
        String body = request.hasContent() ? request.content().utf8ToString() : "no body";
        assertTrue(body.substring(0, Math.min(80, body.length())) + ": " + e.getMessage(), e.getMessage().startsWith(message));
    }

    private static final String SHA = "ab".repeat(32);

    /** A _register body: every wrong type, null, out-of-range value, unknown field and wrong combination is a 400 naming the field. */
    public void testRegisterBodyRefusals() {
        String path = "/_plugins/_mach/models/m/_register";
        Map<String, String> id = Map.of("id", "m");
        for (String[] bad : new String[][] {
            { "{\"path\": null}", "[_register] [path] must be a string, got null" },
            { "{\"path\": 5}", "[_register] [path] must be a string, got a number [5]" },
            { "{\"path\": [\"a\"]}", "[_register] [path] must be a string, got an array" },
            { "{\"upload_id\": {}, \"chunks\": 1, \"sha256\": \"" + SHA + "\"}", "[_register] [upload_id] must be a string, got an object" },
            { "{\"upload_id\": \"abcdefgh12\", \"chunks\": \"3\", \"sha256\": \"" + SHA + "\"}", "[_register] [chunks] must be an integer, got a string [3]" },
            { "{\"upload_id\": \"abcdefgh12\", \"chunks\": 1.5, \"sha256\": \"" + SHA + "\"}", "[_register] [chunks] must be an integer" },
            { "{\"upload_id\": \"abcdefgh12\", \"chunks\": 0, \"sha256\": \"" + SHA + "\"}", "[_register] [chunks] must be between 1 and 10000, got [0]" },
            { "{\"upload_id\": \"abcdefgh12\", \"chunks\": 10001, \"sha256\": \"" + SHA + "\"}", "[_register] [chunks] must be between 1 and 10000, got [10001]" },
            { "{\"upload_id\": \"abcdefgh12\", \"chunks\": null, \"sha256\": \"" + SHA + "\"}", "[_register] [chunks] must be an integer, got null" },
            { "{\"upload_id\": \"abcdefgh12\", \"chunks\": 1, \"sha256\": 12}", "[_register] [sha256] must be a string, got a number [12]" },
            { "{\"path\": \"tiny\", \"deploy\": \"true\"}", "[_register] [deploy] must be true or false, got a string [true]" },
            { "{\"path\": \"tiny\", \"deploy\": null}", "[_register] [deploy] must be true or false, got null" },
            { "{\"path\": \"tiny\", \"size\": 3}", "[_register] unknown parameter [size]; known parameters: [path, upload_id, chunks, sha256, deploy]" },
            { "{\"path\": \"tiny\", \"upload_id\": \"abcdefgh12\"}", "[_register] give [path] or [upload_id] with [chunks] and [sha256], not both" },
            { "{\"path\": \"tiny\", \"chunks\": 2}", "[_register] give [path] or [upload_id] with [chunks] and [sha256], not both" },
            { "{\"upload_id\": \"abcdefgh12\", \"sha256\": \"" + SHA + "\"}", "[_register] an upload needs [chunks] (their number) and [sha256]" },
            { "{\"upload_id\": \"abcdefgh12\", \"chunks\": 2}", "[_register] an upload needs [chunks] (their number) and [sha256]" },
            { "{\"chunks\": 2, \"sha256\": \"" + SHA + "\"}", "[_register] give [path] (a bundle under the node's registration directory) or [upload_id]" },
            { "{\"deploy\": true}", "[_register] give [path]" },
            { "{}", "[_register] give [path]" },
            { "[]", "[_register] must be a JSON object, got an array" },
            { "\"tiny\"", "[_register] must be a JSON object, got a string" } }) {
            assertRefused(post(path, id, bad[0]), bad[1]);
        }
        assertRefused(post(path, id, (byte[]) null), "[_register] needs a JSON body");
    }

    /** A chunk number that is not an integer is a 400 naming it, before the body is read. */
    public void testChunkNumberRefusals() {
        for (String n : new String[] { "x", "1.0", "99999999999", "", "0x1" }) {
            RestRequest r = new FakeRestRequest.Builder(NamedXContentRegistry.EMPTY).withMethod(RestRequest.Method.PUT)
                .withPath("/_plugins/_mach/uploads/abcdefgh12/" + n)
                .withParams(new HashMap<>(Map.of("upload_id", "abcdefgh12", "chunk", n)))
                .withContent(new BytesArray("{\"data\": \"AAAA\", \"sha256\": \"" + SHA + "\"}"), MediaTypeRegistry.JSON)
                .build();
            assertRefused(r, "chunk number must be an integer, got [" + n + "]");
        }
    }

    /** An alias body: exactly {"model_id": "<text>"}. */
    public void testAliasBodyRefusals() {
        for (String[] bad : new String[][] {
            { "{}", "[alias] needs [model_id]" },
            { "{\"model_id\": null}", "[alias] [model_id] must be a string, got null" },
            { "{\"model_id\": 7}", "[alias] [model_id] must be a string, got a number [7]" },
            { "{\"model_id\": \"m\", \"other\": 1}", "[alias] unknown parameter [other]; known parameters: [model_id]" },
            { "[\"m\"]", "[alias] must be a JSON object, got an array" } }) {
            RestRequest r = new FakeRestRequest.Builder(NamedXContentRegistry.EMPTY).withMethod(RestRequest.Method.PUT)
                .withPath("/_plugins/_mach/aliases/live").withParams(new HashMap<>(Map.of("alias", "live")))
                .withContent(new BytesArray(bad[0]), MediaTypeRegistry.JSON).build();
            assertRefused(r, bad[1]);
        }
        RestRequest empty = new FakeRestRequest.Builder(NamedXContentRegistry.EMPTY).withMethod(RestRequest.Method.PUT)
            .withPath("/_plugins/_mach/aliases/live").withParams(new HashMap<>(Map.of("alias", "live"))).build();
        assertRefused(empty, "[alias] needs a JSON body");
    }

    private static RestRequest chunk(byte[] body, org.opensearch.core.xcontent.MediaType type) {
        FakeRestRequest.Builder b = new FakeRestRequest.Builder(NamedXContentRegistry.EMPTY).withMethod(RestRequest.Method.PUT)
            .withPath("/_plugins/_mach/uploads/abcdefgh12/0")
            .withParams(new HashMap<>(Map.of("upload_id", "abcdefgh12", "chunk", "0")));
        if (body != null) b.withContent(new BytesArray(body), type);
        return b.build();
    }

    /** The rest of the chunk body's refusals: each a 400 naming [chunk] and the field, before anything is stored. */
    public void testMoreChunkBodyRefusals() {
        for (String[] bad : new String[][] {
            { "{\"data\": true, \"sha256\": \"" + SHA + "\"}", "[chunk] [data] must be a string, got a boolean [true]" },
            { "{\"data\": {}, \"sha256\": \"" + SHA + "\"}", "[chunk] [data] must be a string, got an object" },
            { "{\"data\": [1], \"sha256\": \"" + SHA + "\"}", "[chunk] [data] must be a string, got an array" },
            { "{\"data\": \"AAAA\", \"sha256\": [\"" + SHA + "\"]}", "[chunk] [sha256] must be a string, got an array" },
            { "{\"data\": \"!!!!\", \"sha256\": \"" + SHA + "\"}", "[chunk] [data] is not valid base64" },
            { "{\"sha256\": \"" + SHA + "\"}", "[chunk] needs [data]" },
            { "{}", "[chunk] needs [data]" },
            { "{\"data\": \"AAAA\", \"sha256\": \"" + SHA + "\"", "[chunk] is not valid JSON" },
            { "{\"data\": \"AAAA\" \"sha256\": \"" + SHA + "\"}", "[chunk] is not valid JSON" },
            // a field given twice is refused, as every other body's parser (OpenSearch's JSON) does: which one would count?
            { "{\"data\": \"AAAA\", \"data\": \"AAAB\", \"sha256\": \"" + SHA + "\"}", "[chunk] is not valid JSON: Duplicate field 'data'" },
            { "{\"data\": \"AAAA\", \"sha256\": \"" + SHA + "\", \"sha256\": \"" + SHA + "\"}", "[chunk] is not valid JSON: Duplicate field 'sha256'" },
            { "\"AAAA\"", "[chunk] must be a JSON object, got a string" },
            { " ", "[chunk] must be a JSON object, got nothing" } }) {
            assertRefused(chunk(bad[0].getBytes(java.nio.charset.StandardCharsets.UTF_8), MediaTypeRegistry.JSON), bad[1]);
        }
        assertRefused(chunk(null, MediaTypeRegistry.JSON), "[chunk] needs a JSON body");
        assertRefused(
            chunk("data: AAAA\nsha256: x\n".getBytes(java.nio.charset.StandardCharsets.UTF_8), org.opensearch.common.xcontent.XContentType.YAML),
            "[chunk] must be sent as JSON (Content-Type: application/json)"
        );
        // one byte over the limit (16 MB decoded): refused while decoding, never held whole
        byte[] over = new byte[org.opensearch.mach.lifecycle.BundleStore.MAX_CHUNK_BYTES + 1];
        String body = "{\"sha256\": \"" + SHA + "\", \"data\": \"" + java.util.Base64.getEncoder().encodeToString(over) + "\"}";
        assertRefused(chunk(body.getBytes(java.nio.charset.StandardCharsets.UTF_8), MediaTypeRegistry.JSON),
            "[chunk] [data] holds more than " + org.opensearch.mach.lifecycle.BundleStore.MAX_CHUNK_BYTES + " bytes");
    }

    /**
     * Bytes that are not text in the encoding the JSON parser detects (a UTF-32 body cut short) are a
     * 400 for every body, as any other malformed JSON (Jackson reports them as a CharConversionException,
     * an IOException that OpenSearch renders as a 500).
     */
    public void testUndecodableBodiesAreA400() {
        byte[] cutUtf32 = { 0, 0, 0, '{', 0, 0, 0 };
        assertRefused(chunk(cutUtf32, MediaTypeRegistry.JSON), "[chunk] is not valid JSON");
        assertRefused(post("/_plugins/_mach/models/m/_register", Map.of("id", "m"), cutUtf32), "[_register] is not valid JSON");
        RestRequest alias = new FakeRestRequest.Builder(NamedXContentRegistry.EMPTY).withMethod(RestRequest.Method.PUT)
            .withPath("/_plugins/_mach/aliases/live").withParams(new HashMap<>(Map.of("alias", "live")))
            .withContent(new BytesArray(cutUtf32), MediaTypeRegistry.JSON).build();
        assertRefused(alias, "[alias] is not valid JSON");
    }

    /** A body is one JSON object: anything after it (a second object, stray text) is a 400, not ignored. */
    public void testNothingAfterTheBody() {
        for (String after : new String[] { " {\"path\": \"other\"}", " x", "]", " 5" }) {
            assertRefused(post("/_plugins/_mach/models/m/_register", Map.of("id", "m"), "{\"path\": \"tiny\"}" + after),
                "[_register] must be one JSON object, with nothing after it");
            RestRequest alias = new FakeRestRequest.Builder(NamedXContentRegistry.EMPTY).withMethod(RestRequest.Method.PUT)
                .withPath("/_plugins/_mach/aliases/live").withParams(new HashMap<>(Map.of("alias", "live")))
                .withContent(new BytesArray("{\"model_id\": \"m\"}" + after), MediaTypeRegistry.JSON).build();
            assertRefused(alias, "[alias] must be one JSON object, with nothing after it");
            assertRefused(chunk(("{\"data\": \"AAAA\", \"sha256\": \"" + SHA + "\"}" + after).getBytes(java.nio.charset.StandardCharsets.UTF_8),
                MediaTypeRegistry.JSON), "[chunk] must be one JSON object, with nothing after it");
        }
    }
}
