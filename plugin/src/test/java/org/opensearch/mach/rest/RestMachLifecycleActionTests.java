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
}
