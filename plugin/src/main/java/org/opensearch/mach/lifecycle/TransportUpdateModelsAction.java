package org.opensearch.mach.lifecycle;

import org.opensearch.OpenSearchStatusException;
import org.opensearch.ResourceNotFoundException;
import org.opensearch.action.support.ActionFilters;
import org.opensearch.action.support.clustermanager.AcknowledgedResponse;
import org.opensearch.action.support.clustermanager.TransportClusterManagerNodeAction;
import org.opensearch.cluster.AckedClusterStateUpdateTask;
import org.opensearch.cluster.ClusterState;
import org.opensearch.cluster.block.ClusterBlockException;
import org.opensearch.cluster.block.ClusterBlockLevel;
import org.opensearch.cluster.metadata.IndexNameExpressionResolver;
import org.opensearch.cluster.metadata.Metadata;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.inject.Inject;
import org.opensearch.core.action.ActionListener;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.unit.ByteSizeValue;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.mach.MachPlugin;
import org.opensearch.threadpool.ThreadPool;
import org.opensearch.transport.TransportService;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Applies an {@link UpdateModelsRequest} to the cluster state on the cluster manager. Every rule that
 * keeps queries valid is checked here, against the state the change applies to: an alias only
 * points to a deployed model, a model an alias points to is not undeployed or deleted, and a deploy
 * fits in {@code mach.models.memory_limit} (the networks' bytes; a node admits a model's catalog when a
 * request first needs it there, see {@link ModelDeployer}).
 */
public class TransportUpdateModelsAction extends TransportClusterManagerNodeAction<UpdateModelsRequest, AcknowledgedResponse> {

    @Inject
    public TransportUpdateModelsAction(
        TransportService transportService,
        ClusterService clusterService,
        ThreadPool threadPool,
        ActionFilters actionFilters,
        IndexNameExpressionResolver resolver
    ) {
        super(UpdateModelsRequest.NAME, transportService, clusterService, threadPool, actionFilters, UpdateModelsRequest::new, resolver);
    }

    @Override
    protected String executor() {
        return ThreadPool.Names.SAME;
    }

    @Override
    protected AcknowledgedResponse read(StreamInput in) throws IOException {
        return new AcknowledgedResponse(in);
    }

    @Override
    protected ClusterBlockException checkBlock(UpdateModelsRequest request, ClusterState state) {
        return state.blocks().globalBlockedException(ClusterBlockLevel.METADATA_WRITE);
    }

    @Override
    protected void clusterManagerOperation(UpdateModelsRequest request, ClusterState state, ActionListener<AcknowledgedResponse> listener) {
        long limit = clusterService.getClusterSettings().get(MachPlugin.MEMORY_LIMIT).getBytes();
        clusterService.submitStateUpdateTask(request.describe(), new AckedClusterStateUpdateTask<>(request, listener) {
            @Override
            protected AcknowledgedResponse newResponse(boolean acknowledged) {
                return new AcknowledgedResponse(acknowledged);
            }

            @Override
            public ClusterState execute(ClusterState current) {
                MachModelsMetadata before = MachModelsMetadata.of(current);
                MachModelsMetadata after = apply(before, request, limit);
                if (after.equals(before)) return current;
                return ClusterState.builder(current).metadata(Metadata.builder(current.metadata()).putCustom(MachModelsMetadata.TYPE, after)).build();
            }
        });
    }

    /** The change itself, pure (unit tested): the new metadata, or an exception with a 4xx status that says why not. */
    static MachModelsMetadata apply(MachModelsMetadata m, UpdateModelsRequest r, long memoryLimit) {
        switch (r.op) {
            case REGISTER -> {
                checkRegistrable(m, r.modelId);
                // two registers of one upload may race until here: the first to commit owns the chunks
                for (ModelEntry e : m.models().values()) {
                    if (e.storageId().equals(r.entry.storageId())) {
                        throw conflict("upload [" + e.storageId() + "] is already registered as model [" + e.id() + "]; upload the bundle again for another id");
                    }
                }
                return m.withModel(r.entry.withDeployed(false));
            }
            case DEPLOY -> {
                ModelEntry e = existing(m, r.modelId);
                if (e.deployed()) return m;
                long used = m.models().values().stream().filter(ModelEntry::deployed).mapToLong(ModelEntry::memoryBytes).sum();
                if (used + e.memoryBytes() > memoryLimit) {
                    String deployed = m.models().values().stream().filter(ModelEntry::deployed)
                        .map(x -> x.id() + " (" + new ByteSizeValue(x.memoryBytes()) + ")").collect(Collectors.joining(", "));
                    throw new OpenSearchStatusException(
                        "cannot deploy model [" + e.id() + "]: its network needs " + new ByteSizeValue(e.memoryBytes()) + " per node, deployed models use "
                            + new ByteSizeValue(used) + (deployed.isEmpty() ? "" : " [" + deployed + "]") + ", and " + MachPlugin.MEMORY_LIMIT.getKey()
                            + " is " + new ByteSizeValue(memoryLimit) + "; undeploy a model or raise the limit",
                        RestStatus.BAD_REQUEST
                    );
                }
                return m.withModel(e.withDeployed(true));
            }
            case UNDEPLOY -> {
                ModelEntry e = existing(m, r.modelId);
                refuseIfAliased(m, e.id(), "undeploy");
                return e.deployed() ? m.withModel(e.withDeployed(false)) : m;
            }
            case DELETE -> {
                ModelEntry e = existing(m, r.modelId);
                refuseIfAliased(m, e.id(), "delete");
                return m.withoutModel(e.id());
            }
            case PUT_ALIAS -> {
                if (m.models().containsKey(r.alias)) throw conflict("[" + r.alias + "] is a model id; an alias needs another name");
                ModelEntry e = existing(m, r.modelId);
                if (!e.deployed()) {
                    throw conflict("model [" + e.id() + "] is not deployed; deploy it before pointing alias [" + r.alias + "] to it");
                }
                return m.withAlias(r.alias, e.id());
            }
            case MEASURED_NETWORK -> {
                // only the entry that was measured (same stored bundle), and only once
                ModelEntry e = m.models().get(r.modelId);
                if (e == null || e.networkOnly() || !e.storageId().equals(r.entry.storageId())) return m;
                return m.withModel(e.withMeasuredNetwork(r.entry.memoryBytes()));
            }
            case DELETE_ALIAS -> {
                if (!m.aliases().containsKey(r.alias)) throw new ResourceNotFoundException("alias [" + r.alias + "] does not exist");
                return m.withAlias(r.alias, null);
            }
        }
        throw new IllegalStateException("unknown op " + r.op);
    }

    /** A new model may take this id: no model has it and no alias is named so (409 otherwise). */
    static void checkRegistrable(MachModelsMetadata m, String id) {
        if (m.models().containsKey(id)) throw conflict("model [" + id + "] is already registered; delete it first or use a new id");
        if (m.aliases().containsKey(id)) throw conflict("[" + id + "] is an alias; a model cannot have an alias' name");
    }

    private static ModelEntry existing(MachModelsMetadata m, String id) {
        ModelEntry e = m.models().get(id);
        if (e == null) {
            throw new ResourceNotFoundException("model [" + id + "] is not registered; registered: " + m.models().keySet());
        }
        return e;
    }

    private static void refuseIfAliased(MachModelsMetadata m, String id, String what) {
        List<String> aliases = m.aliases().entrySet().stream().filter(a -> a.getValue().equals(id)).map(Map.Entry::getKey).toList();
        if (!aliases.isEmpty()) {
            throw conflict("cannot " + what + " model [" + id + "]: alias " + aliases + " points to it; point the alias elsewhere or delete it first");
        }
    }

    private static OpenSearchStatusException conflict(String message) {
        return new OpenSearchStatusException(message, RestStatus.CONFLICT);
    }
}
