package org.opensearch.mach.rest;

import org.opensearch.action.support.clustermanager.AcknowledgedResponse;
import org.opensearch.common.unit.TimeValue;
import org.opensearch.core.action.ActionListener;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.common.xcontent.XContentType;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.mach.lifecycle.BundleStore;
import org.opensearch.mach.lifecycle.ChunkBytes;
import org.opensearch.mach.lifecycle.ModelLifecycleService;
import org.opensearch.rest.BaseRestHandler;
import org.opensearch.rest.RestChannel;
import org.opensearch.rest.RestRequest;
import org.opensearch.transport.client.node.NodeClient;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;

import java.io.IOException;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

import static org.opensearch.rest.RestRequest.Method.DELETE;
import static org.opensearch.rest.RestRequest.Method.GET;
import static org.opensearch.rest.RestRequest.Method.POST;
import static org.opensearch.rest.RestRequest.Method.PUT;

/**
 * The model lifecycle over REST (plugin/README.md, "Model lifecycle"):
 * <pre>
 * POST   _plugins/_mach/uploads                         -> {"upload_id": ...}
 * PUT    _plugins/_mach/uploads/{upload_id}/{chunk}     {"data": "&lt;base64&gt;", "sha256": "&lt;hex of the chunk&gt;"}
 * GET    _plugins/_mach/uploads                         uploads not registered: chunks, bytes, age
 * DELETE _plugins/_mach/uploads/{upload_id}
 * POST   _plugins/_mach/models/{id}/_register           {"path": "/bundle.zip|dir"} or {"upload_id", "chunks", "sha256"}, "deploy": bool
 * POST   _plugins/_mach/models/{id}/_deploy             ?wait_for_completion=true&timeout=2m
 * POST   _plugins/_mach/models/{id}/_undeploy
 * DELETE _plugins/_mach/models/{id}
 * PUT    _plugins/_mach/aliases/{alias}                 {"model_id": ...}
 * DELETE _plugins/_mach/aliases/{alias}
 * GET    _plugins/_mach/aliases
 * </pre>
 */
public class RestMachLifecycleAction extends BaseRestHandler {
    private final Supplier<ModelLifecycleService> lifecycle;

    public RestMachLifecycleAction(Supplier<ModelLifecycleService> lifecycle) {
        this.lifecycle = lifecycle;
    }

    @Override
    public String getName() {
        return "mach_model_lifecycle";
    }

    @Override
    public List<Route> routes() {
        return List.of(
            new Route(POST, "/_plugins/_mach/uploads"),
            new Route(GET, "/_plugins/_mach/uploads"),
            new Route(PUT, "/_plugins/_mach/uploads/{upload_id}/{chunk}"),
            new Route(DELETE, "/_plugins/_mach/uploads/{upload_id}"),
            new Route(POST, "/_plugins/_mach/models/{id}/_register"),
            new Route(POST, "/_plugins/_mach/models/{id}/_deploy"),
            new Route(POST, "/_plugins/_mach/models/{id}/_undeploy"),
            new Route(DELETE, "/_plugins/_mach/models/{id}"),
            new Route(PUT, "/_plugins/_mach/aliases/{alias}"),
            new Route(DELETE, "/_plugins/_mach/aliases/{alias}"),
            new Route(GET, "/_plugins/_mach/aliases")
        );
    }

    @Override
    protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) throws IOException {
        ModelLifecycleService service = lifecycle.get();
        if (service == null) throw new IllegalStateException("the mach plugin is not initialized on this node");
        String path = request.path();
        String id = request.param("id");
        String alias = request.param("alias");
        String uploadId = request.param("upload_id");
        switch (request.method()) {
            case POST -> {
                if (path.endsWith("/_plugins/_mach/uploads")) {
                    return channel -> forkGeneric(client, channel, () -> Map.of(
                        "upload_id", service.createUpload(), "max_chunk_bytes", BundleStore.MAX_CHUNK_BYTES
                    ));
                }
                if (path.endsWith("/_register")) {
                    Register r = register(request);
                    return channel -> service.register(id, r.source(), r.deploy(), mapListener(channel, RestStatus.CREATED));
                }
                if (path.endsWith("/_deploy")) {
                    boolean wait = deployParameter(request, "wait_for_completion", "true or false", () -> request.paramAsBoolean("wait_for_completion", true));
                    TimeValue timeout = deployParameter(request, "timeout", "a time value such as 2m", () -> request.paramAsTime("timeout", DEFAULT_DEPLOY_TIMEOUT));
                    return channel -> service.deploy(id, wait, timeout, mapListener(channel, RestStatus.OK));
                }
                if (path.endsWith("/_undeploy")) {
                    return channel -> service.undeploy(id, ackListener(channel, Map.of("model_id", id, "deployed", false)));
                }
            }
            case PUT -> {
                if (uploadId != null) {
                    int chunk = chunkNumber(request.param("chunk"));
                    Chunk c = chunk(request);
                    return channel -> forkGeneric(client, channel, () -> {
                        service.putChunk(uploadId, chunk, c.data, c.sha256);
                        return Map.of("upload_id", uploadId, "chunk", chunk, "bytes", c.data.length());
                    });
                }
                String[] target = new String[1];
                try (XContentParser parser = parser(request, "alias", "{\"model_id\": \"<registered, deployed model>\"}")) {
                    StrictJson.readBody(parser, "[alias]", List.of("model_id"), (field, p) -> target[0] = StrictJson.text(p, "[alias]", field));
                }
                if (target[0] == null) throw new IllegalArgumentException("[alias] needs [model_id], the registered, deployed model to point to");
                String t = target[0];
                return channel -> service.putAlias(alias, t, ackListener(channel, Map.of("alias", alias, "model_id", t)));
            }
            case DELETE -> {
                if (uploadId != null) {
                    return channel -> forkGeneric(client, channel, () -> {
                        service.deleteUpload(uploadId);
                        return Map.of("upload_id", uploadId, "deleted", true);
                    });
                }
                if (alias != null) return channel -> service.deleteAlias(alias, ackListener(channel, Map.of("alias", alias, "deleted", true)));
                return channel -> service.delete(id, ackListener(channel, Map.of("model_id", id, "deleted", true)));
            }
            case GET -> {
                if (path.endsWith("/_plugins/_mach/uploads")) return channel -> forkGeneric(client, channel, () -> Map.of("uploads", service.uploads()));
                return channel -> RestResponses.send(channel, RestStatus.OK, Map.of("aliases", service.metadata().aliases()));
            }
            default -> {}
        }
        throw new IllegalArgumentException("unsupported request " + request.method() + " " + path);
    }

    static final TimeValue DEFAULT_DEPLOY_TIMEOUT = TimeValue.timeValueMinutes(2);

    /**
     * A query-string parameter of {@code _deploy}, read by {@code read}; a value it cannot take is a 400
     * that names the parameter and what it takes (OpenSearch's own boolean message names neither).
     */
    static <T> T deployParameter(RestRequest request, String name, String takes, java.util.function.Supplier<T> read) {
        try {
            return read.get();
        } catch (IllegalArgumentException | org.opensearch.OpenSearchParseException e) {
            throw new IllegalArgumentException("[_deploy] [" + name + "] must be " + takes + ", got [" + request.param(name) + "]", e);
        }
    }

    private record Register(ModelLifecycleService.Source source, boolean deploy) {}

    private static Register register(RestRequest request) throws IOException {
        String what = "[_register]";
        Map<String, Object> v = new HashMap<>();
        try (XContentParser parser = parser(request, "_register", "{\"upload_id\": ..., \"chunks\": n, \"sha256\": ...} or {\"path\": ...}")) {
            StrictJson.readBody(parser, what, List.of("path", "upload_id", "chunks", "sha256", "deploy"), (field, p) -> v.put(field, switch (field) {
                case "chunks" -> StrictJson.integer(p, what, field, 1, BundleStore.MAX_CHUNKS);
                case "deploy" -> StrictJson.bool(p, what, field);
                default -> StrictJson.text(p, what, field);
            }));
        }
        boolean deploy = Boolean.TRUE.equals(v.get("deploy"));
        if (v.get("path") instanceof String p) {
            if (v.containsKey("upload_id") || v.containsKey("chunks") || v.containsKey("sha256")) {
                throw new IllegalArgumentException(what + " give [path] or [upload_id] with [chunks] and [sha256], not both");
            }
            return new Register(ModelLifecycleService.Source.path(p), deploy);
        }
        if (v.get("upload_id") instanceof String u) {
            if (!(v.get("chunks") instanceof Integer n) || !(v.get("sha256") instanceof String sha)) {
                throw new IllegalArgumentException(what + " an upload needs [chunks] (their number) and [sha256] (of the whole zip)");
            }
            return new Register(ModelLifecycleService.Source.upload(u, n, sha), deploy);
        }
        throw new IllegalArgumentException(what + " give [path] (a bundle under the node's registration directory) or [upload_id] with [chunks] and [sha256]");
    }

    private static XContentParser parser(RestRequest request, String what, String example) throws IOException {
        if (!request.hasContent()) throw new IllegalArgumentException("[" + what + "] needs a JSON body " + example);
        return request.contentParser();
    }

    private record Chunk(ChunkBytes data, String sha256) {}

    private static final JsonFactory JSON = JsonFactory.builder()
        .streamReadConstraints(StreamReadConstraints.builder().maxStringLength(Integer.MAX_VALUE).build())
        .enable(com.fasterxml.jackson.core.StreamReadFeature.STRICT_DUPLICATE_DETECTION) // as OpenSearch's JSON parser, for the other bodies
        .build();

    /**
     * A chunk body, read with a streaming JSON parser: the base64 text is decoded straight into
     * {@link ChunkBytes} parts, never held whole as a string or an array (a chunk of several MB would
     * be a humongous heap allocation, twice). Same strictness as {@link StrictJson}.
     */
    private static Chunk chunk(RestRequest request) throws IOException {
        String what = "[chunk]";
        if (!request.hasContent()) throw new IllegalArgumentException("[chunk] needs a JSON body {\"data\": \"<base64>\", \"sha256\": \"<hex>\"}");
        if (request.getMediaType() != XContentType.JSON) {
            throw new IllegalArgumentException(what + " must be sent as JSON (Content-Type: application/json), got " + request.getMediaType());
        }
        ChunkBytes data = null;
        String sha = null;
        try (JsonParser p = JSON.createParser(request.content().streamInput())) {
            JsonToken token = p.nextToken();
            if (token != JsonToken.START_OBJECT) throw new IllegalArgumentException(what + " must be a JSON object, got " + describe(token));
            while ((token = p.nextToken()) != JsonToken.END_OBJECT) {
                if (token != JsonToken.FIELD_NAME) throw new IllegalArgumentException(what + " unexpected end of input");
                String field = p.currentName();
                if (!field.equals("data") && !field.equals("sha256")) {
                    throw new IllegalArgumentException(what + " unknown parameter [" + field + "]; known parameters: [data, sha256]");
                }
                token = p.nextToken();
                if (token != JsonToken.VALUE_STRING) {
                    String got = token != null && token.isScalarValue() ? describe(token) + " [" + p.getText() + "]" : describe(token);
                    throw new IllegalArgumentException(what + " [" + field + "] must be a string, got " + got);
                }
                if (field.equals("sha256")) {
                    sha = p.getText();
                    continue;
                }
                ChunkBytes.Builder out = new ChunkBytes.Builder(BundleStore.MAX_CHUNK_BYTES);
                try {
                    p.readBinaryValue(out);
                } catch (ChunkBytes.TooLargeException e) {
                    throw new IllegalArgumentException(what + " [data] holds more than " + BundleStore.MAX_CHUNK_BYTES + " bytes");
                } catch (JsonParseException e) {
                    throw new IllegalArgumentException(what + " [data] is not valid base64: " + e.getOriginalMessage());
                } catch (IllegalArgumentException e) { // Jackson's report of a character that is not base64
                    throw new IllegalArgumentException(what + " [data] is not valid base64: " + e.getMessage());
                }
                data = out.build();
            }
            if (StrictJson.anythingAfter(p::nextToken)) throw new IllegalArgumentException(what + " must be one JSON object, with nothing after it");
        } catch (JsonParseException | StreamConstraintsException e) {
            throw new IllegalArgumentException(what + " is not valid JSON: " + e.getOriginalMessage());
        } catch (java.io.CharConversionException e) { // bytes that are not text in the encoding Jackson detected
            throw new IllegalArgumentException(what + " is not valid JSON: " + e.getMessage());
        }
        if (data == null) throw new IllegalArgumentException(what + " needs [data], the chunk's bytes in base64");
        if (sha == null) throw new IllegalArgumentException(what + " needs [sha256], the hex SHA-256 of the chunk's bytes, so that a damaged chunk is caught");
        return new Chunk(data, sha);
    }

    private static String describe(JsonToken token) {
        if (token == null) return "nothing";
        return switch (token) {
            case START_OBJECT -> "an object";
            case START_ARRAY -> "an array";
            case VALUE_NULL -> "null";
            case VALUE_STRING -> "a string";
            case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> "a number";
            case VALUE_TRUE, VALUE_FALSE -> "a boolean";
            default -> token.name().toLowerCase(java.util.Locale.ROOT);
        };
    }

    private static int chunkNumber(String s) {
        try {
            return Integer.parseInt(s);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("chunk number must be an integer, got [" + s + "]");
        }
    }

    interface Work {
        Map<String, Object> run() throws Exception;
    }

    /** Blocking work (system index reads and writes) on the generic pool. */
    private static void forkGeneric(NodeClient client, RestChannel channel, Work work) {
        client.threadPool().generic().execute(() -> {
            try {
                RestResponses.send(channel, RestStatus.OK, work.run());
            } catch (Exception e) {
                RestResponses.fail(channel, e);
            }
        });
    }

    private static ActionListener<Map<String, Object>> mapListener(RestChannel channel, RestStatus status) {
        return ActionListener.wrap(m -> RestResponses.send(channel, status, m), e -> RestResponses.fail(channel, e));
    }

    private static ActionListener<AcknowledgedResponse> ackListener(RestChannel channel, Map<String, Object> fields) {
        return ActionListener.wrap(ack -> {
            Map<String, Object> m = new HashMap<>(fields);
            m.put("acknowledged", ack.isAcknowledged());
            RestResponses.send(channel, RestStatus.OK, m);
        }, e -> RestResponses.fail(channel, e));
    }
}
