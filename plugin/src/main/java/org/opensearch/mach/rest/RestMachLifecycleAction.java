package org.opensearch.mach.rest;

import org.opensearch.action.support.clustermanager.AcknowledgedResponse;
import org.opensearch.common.unit.TimeValue;
import org.opensearch.core.action.ActionListener;
import org.opensearch.core.common.ParsingException;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.mach.lifecycle.ModelLifecycleService;
import org.opensearch.rest.BaseRestHandler;
import org.opensearch.rest.RestChannel;
import org.opensearch.rest.RestRequest;
import org.opensearch.transport.client.node.NodeClient;

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
                    String newId = ModelLifecycleService.newUploadId();
                    return channel -> RestResponses.send(channel, RestStatus.OK, Map.of("upload_id", newId, "max_chunk_bytes", org.opensearch.mach.lifecycle.BundleStore.MAX_CHUNK_BYTES));
                }
                if (path.endsWith("/_register")) {
                    Map<String, Object> body = body(request, "_register");
                    ModelLifecycleService.Source source = source(body);
                    boolean deploy = Boolean.TRUE.equals(body.get("deploy"));
                    return channel -> service.register(id, source, deploy, mapListener(channel, RestStatus.CREATED));
                }
                if (path.endsWith("/_deploy")) {
                    boolean wait = request.paramAsBoolean("wait_for_completion", true);
                    TimeValue timeout = request.paramAsTime("timeout", TimeValue.timeValueMinutes(2));
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
                        return Map.of("upload_id", uploadId, "chunk", chunk, "bytes", c.data.length);
                    });
                }
                Map<String, Object> body = body(request, "alias");
                Object target = body.get("model_id");
                if (!(target instanceof String t) || body.size() != 1) {
                    throw new IllegalArgumentException("[alias] the body must be {\"model_id\": \"<registered, deployed model>\"}");
                }
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
                return channel -> RestResponses.send(channel, RestStatus.OK, Map.of("aliases", service.metadata().aliases()));
            }
            default -> {}
        }
        throw new IllegalArgumentException("unsupported request " + request.method() + " " + path);
    }

    private static ModelLifecycleService.Source source(Map<String, Object> body) {
        for (String k : body.keySet()) {
            if (!List.of("path", "upload_id", "chunks", "sha256", "deploy").contains(k)) {
                throw new IllegalArgumentException("[_register] unknown parameter [" + k + "]; known: [path, upload_id, chunks, sha256, deploy]");
            }
        }
        if (body.get("path") instanceof String p) {
            if (body.containsKey("upload_id")) throw new IllegalArgumentException("[_register] give [path] or [upload_id], not both");
            return ModelLifecycleService.Source.path(p);
        }
        if (body.get("upload_id") instanceof String u) {
            if (!(body.get("chunks") instanceof Number n) || !(body.get("sha256") instanceof String sha)) {
                throw new IllegalArgumentException("[_register] an upload needs [chunks] (a number) and [sha256] (of the whole zip)");
            }
            return ModelLifecycleService.Source.upload(u, n.intValue(), sha);
        }
        throw new IllegalArgumentException("[_register] give [path] (a bundle zip or directory on the node) or [upload_id] with [chunks] and [sha256]");
    }

    private static Map<String, Object> body(RestRequest request, String what) throws IOException {
        if (!request.hasContent()) throw new IllegalArgumentException("[" + what + "] needs a JSON body");
        try (XContentParser parser = request.contentParser()) {
            return parser.map();
        }
    }

    private record Chunk(byte[] data, String sha256) {}

    private static Chunk chunk(RestRequest request) throws IOException {
        if (!request.hasContent()) throw new IllegalArgumentException("[chunk] needs a body {\"data\": \"<base64>\", \"sha256\": \"<hex>\"}");
        byte[] data = null;
        String sha = null;
        try (XContentParser p = request.contentParser()) {
            if (p.nextToken() != XContentParser.Token.START_OBJECT) throw new ParsingException(p.getTokenLocation(), "[chunk] the body must be an object");
            for (XContentParser.Token t = p.nextToken(); t != XContentParser.Token.END_OBJECT; t = p.nextToken()) {
                String name = p.currentName();
                p.nextToken();
                switch (name) {
                    case "data" -> {
                        try {
                            data = p.binaryValue();
                        } catch (IllegalArgumentException e) {
                            throw new IllegalArgumentException("[chunk] [data] is not valid base64: " + e.getMessage());
                        }
                    }
                    case "sha256" -> sha = p.text();
                    default -> throw new IllegalArgumentException("[chunk] unknown field [" + name + "]; known: [data, sha256]");
                }
            }
        }
        if (data == null) throw new IllegalArgumentException("[chunk] needs [data], the chunk's bytes in base64");
        return new Chunk(data, sha);
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
