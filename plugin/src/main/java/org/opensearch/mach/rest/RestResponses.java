package org.opensearch.mach.rest;

import org.opensearch.core.rest.RestStatus;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.rest.BytesRestResponse;
import org.opensearch.rest.RestChannel;

import java.io.IOException;
import java.util.Map;

/** Answers the mach REST handlers send from their own threads: a JSON body, or an error with its proper status. */
final class RestResponses {
    private RestResponses() {}

    static void send(RestChannel channel, RestStatus status, Map<String, Object> body) throws IOException {
        XContentBuilder b = channel.newBuilder();
        b.map(body);
        channel.sendResponse(new BytesRestResponse(status, b));
    }

    /** The exception as OpenSearch renders errors (4xx for bad input); a 500 only when even that cannot be sent. */
    static void fail(RestChannel channel, Exception e) {
        try {
            channel.sendResponse(new BytesRestResponse(channel, e));
        } catch (IOException inner) {
            inner.addSuppressed(e);
            channel.sendResponse(new BytesRestResponse(RestStatus.INTERNAL_SERVER_ERROR, "failed to send the error: " + inner));
        }
    }
}
