package org.opensearch.mach.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/** Minimal JSON-over-HTTP client for the node under test (java.net.http + Jackson). */
final class Rest {
    static final ObjectMapper JSON = new ObjectMapper();

    /** A response: status, raw body, and the body parsed as JSON (null when it is not JSON). */
    record Response(int status, String body, JsonNode json) {
        @Override
        public String toString() {
            return status + " " + body;
        }
    }

    private final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    private final String base;

    Rest(String base) {
        this.base = base;
    }

    Response get(String path) throws IOException {
        return send("GET", path, null, "application/json");
    }

    Response delete(String path) throws IOException {
        return send("DELETE", path, null, "application/json");
    }

    Response put(String path, Object body) throws IOException {
        return send("PUT", path, toJson(body), "application/json");
    }

    Response post(String path, Object body) throws IOException {
        return send("POST", path, toJson(body), "application/json");
    }

    /** Sends the body exactly as given (for malformed JSON and NDJSON). */
    Response send(String method, String path, String body, String contentType) throws IOException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path))
            .timeout(Duration.ofSeconds(120))
            .header("Content-Type", contentType)
            .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                : HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8));
        try {
            HttpResponse<String> r = client.send(b.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
            JsonNode json = null;
            try {
                json = r.body().isEmpty() ? null : JSON.readTree(r.body());
            } catch (IOException notJson) {
                // keep the raw body
            }
            return new Response(r.statusCode(), r.body(), json);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted: " + method + " " + path, e);
        }
    }

    static String toJson(Object body) throws IOException {
        return body instanceof String s ? s : JSON.writeValueAsString(body);
    }
}
