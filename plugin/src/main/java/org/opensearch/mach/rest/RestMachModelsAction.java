package org.opensearch.mach.rest;

import org.opensearch.core.action.ActionListener;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.mach.lifecycle.MachModelsMetadata;
import org.opensearch.mach.lifecycle.ModelEntry;
import org.opensearch.mach.lifecycle.ModelLifecycleService;
import org.opensearch.mach.lifecycle.NodesModelsAction;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.PredictionCache;
import org.opensearch.mach.model.MachModel;
import org.opensearch.mach.model.ModelRegistry;
import org.opensearch.rest.BaseRestHandler;
import org.opensearch.rest.BytesRestResponse;
import org.opensearch.rest.RestRequest;
import org.opensearch.transport.client.node.NodeClient;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Supplier;

/**
 * {@code GET _plugins/_mach/models}: the registered models and aliases of the cluster, then the
 * models directory of the node handling the request, the bundles available there, and the models this
 * node holds loaded: the registered models it serves and the bundles of its models dir.
 * {@code GET _plugins/_mach/models/{id}} (an id or an alias): for a registered model its record and
 * every node's state and statistics; for a bundle under the models directory, loads it if needed and
 * returns its card (bad bundles answer 400 with the reason).
 */
public class RestMachModelsAction extends BaseRestHandler {
    private static final com.fasterxml.jackson.databind.ObjectMapper CARD_MAPPER = new com.fasterxml.jackson.databind.ObjectMapper();
    private final Supplier<MachInferenceService> services;
    private final Supplier<ModelLifecycleService> lifecycle;

    public RestMachModelsAction(Supplier<MachInferenceService> services, Supplier<ModelLifecycleService> lifecycle) {
        this.services = services;
        this.lifecycle = lifecycle;
    }

    @Override
    public String getName() {
        return "mach_models";
    }

    @Override
    public List<Route> routes() {
        return List.of(new Route(RestRequest.Method.GET, "/_plugins/_mach/models"), new Route(RestRequest.Method.GET, "/_plugins/_mach/models/{id}"));
    }

    @Override
    protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) throws IOException {
        String id = request.param("id");
        MachInferenceService service = RestMachPredictAction.service(services);
        ModelRegistry registry = service.registry();
        if (id == null) {
            return channel -> {
                XContentBuilder b = channel.newBuilder();
                b.startObject();
                MachModelsMetadata metadata = lifecycle.get().metadata();
                b.startObject("registered");
                for (ModelEntry e : metadata.models().values()) {
                    b.field(e.id(), ModelLifecycleService.describe(e));
                }
                b.endObject();
                b.field("aliases", metadata.aliases());
                b.field("models_dir", registry.modelsDir().toString());
                b.field("available", registry.available());
                cache(b, service.cache(), null);
                // what this node holds in memory: registered models it serves, then bundles of its models dir
                Map<String, MachModel> loaded = new TreeMap<>();
                if (service.deployer() != null) loaded.putAll(service.deployer().deployedModels());
                Map<String, MachModel> fromDir = registry.loaded();
                b.startObject("loaded");
                for (Map.Entry<String, MachModel> e : loaded.entrySet()) {
                    b.startObject(e.getKey());
                    b.field("source", "registered");
                    summary(b, e.getValue(), false);
                    cache(b, service.cache(), e.getKey());
                    b.endObject();
                }
                for (Map.Entry<String, MachModel> e : fromDir.entrySet()) {
                    if (loaded.containsKey(e.getKey())) continue; // a registered model shadows a bundle of the same id
                    b.startObject(e.getKey());
                    b.field("source", "models_dir");
                    summary(b, e.getValue(), true);
                    cache(b, service.cache(), e.getKey());
                    b.endObject();
                }
                b.endObject();
                b.endObject();
                channel.sendResponse(new BytesRestResponse(RestStatus.OK, b));
            };
        }
        ModelEntry entry = lifecycle.get().metadata().model(id);
        if (entry != null) {
            // a registered model: its record plus every node's state and statistics
            return channel -> lifecycle.get().nodes(ActionListener.wrap(nodes -> {
                Map<String, Object> out = new LinkedHashMap<>();
                if (!entry.id().equals(id)) out.put("alias", id);
                out.putAll(ModelLifecycleService.describe(entry));
                out.put("aliases", lifecycle.get().metadata().aliases().entrySet().stream()
                    .filter(a -> a.getValue().equals(entry.id())).map(Map.Entry::getKey).toList());
                Map<String, Object> perNode = new TreeMap<>();
                for (NodesModelsAction.NodeResponse n : nodes.getNodes()) {
                    Object view = n.models().get(entry.id());
                    perNode.put(n.getNode().getName(), view != null ? view : Map.of("state", entry.deployed() ? "pending" : "not_deployed"));
                }
                for (var f : nodes.failures()) perNode.put(f.nodeId(), Map.of("state", "unreachable", "error", String.valueOf(f.getMessage())));
                out.put("nodes", perNode);
                Map<String, Object> cache = new LinkedHashMap<>();
                PredictionCache.Stats s = service.cache().stats(entry.id());
                cache.put("hits", s.hits());
                cache.put("misses", s.misses());
                out.put("cache_on_this_node", cache);
                MachModel local = service.deployer() == null ? null : service.deployer().deployed(entry.id());
                if (local != null) out.put("card", CARD_MAPPER.convertValue(local.card().raw, Map.class)); // from this node's copy
                RestResponses.send(channel, RestStatus.OK, out);
            }, e -> RestResponses.fail(channel, e)));
        }
        // a bundle under mach.models.dir: loading can take a while, do it on the inference pool
        return channel -> RestMachPredictAction.fork(service, channel, () -> {
            MachModel model = registry.get(id);
            XContentBuilder b = channel.newBuilder();
            b.startObject();
            b.field("model_id", id);
            summary(b, model, true);
            cache(b, service.cache(), id);
            b.field("card", CARD_MAPPER.convertValue(model.card().raw, Map.class));
            b.endObject();
            return new BytesRestResponse(RestStatus.OK, b);
        });
    }

    /** Result cache figures: node totals (modelId null, with size and entries) or one model's hits and misses. */
    static void cache(XContentBuilder b, PredictionCache cache, String modelId) throws IOException {
        PredictionCache.Stats s = modelId == null ? cache.stats() : cache.stats(modelId);
        b.startObject("cache");
        if (modelId == null) {
            b.field("max_entries", cache.maxEntries());
            b.field("entries", cache.entries());
            b.field("evictions", cache.evictions());
        }
        b.field("hits", s.hits());
        b.field("misses", s.misses());
        long lookups = s.hits() + s.misses();
        b.field("hit_rate", lookups == 0 ? 0.0 : (double) s.hits() / lookups);
        b.endObject();
    }

    /** @param withDirectory a registered model's files are temporary copies: no directory to show */
    static void summary(XContentBuilder b, MachModel m, boolean withDirectory) throws IOException {
        b.field("name", m.card().name);
        if (withDirectory) b.field("directory", m.directory().toString());
        b.field("R", m.card().repetitions);
        b.field("B", m.card().buckets);
        b.field("products", m.productCount());
        b.field("device", m.device());
        b.field("load_ms", m.loadMillis());
        b.field("catalog_loaded", m.catalogLoaded()); // labels + product index: loaded by the first request that decodes
        b.field("network_bytes", m.networkBytes());
        b.field("catalog_bytes", m.catalogBytes());
        b.field("heap_and_native_bytes", m.memoryBytes()); // what the model holds now: network + catalog
    }
}
