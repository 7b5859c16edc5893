package org.opensearch.mach.lifecycle;

import org.opensearch.action.ActionRequestValidationException;
import org.opensearch.action.ActionType;
import org.opensearch.action.support.clustermanager.AcknowledgedRequest;
import org.opensearch.action.support.clustermanager.AcknowledgedResponse;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;

import java.io.IOException;

/** One change to the cluster's {@link MachModelsMetadata}, applied on the cluster manager by {@link TransportUpdateModelsAction}. */
public final class UpdateModelsRequest extends AcknowledgedRequest<UpdateModelsRequest> {
    public static final String NAME = "cluster:admin/mach/models/update";
    public static final ActionType<AcknowledgedResponse> ACTION = new ActionType<>(NAME, AcknowledgedResponse::new);

    public enum Op {
        REGISTER,
        DEPLOY,
        UNDEPLOY,
        DELETE,
        PUT_ALIAS,
        DELETE_ALIAS,
        /** A node measured the network of a model recorded by an earlier build: record it (network-only from then on). */
        MEASURED_NETWORK
    }

    final Op op;
    /** The model id; for the alias ops the alias' target (PUT_ALIAS) or null. */
    final String modelId;
    final String alias;
    final ModelEntry entry;

    private UpdateModelsRequest(Op op, String modelId, String alias, ModelEntry entry) {
        this.op = op;
        this.modelId = modelId;
        this.alias = alias;
        this.entry = entry;
    }

    public static UpdateModelsRequest register(ModelEntry entry) {
        return new UpdateModelsRequest(Op.REGISTER, entry.id(), null, entry);
    }

    public static UpdateModelsRequest deploy(String id) {
        return new UpdateModelsRequest(Op.DEPLOY, id, null, null);
    }

    public static UpdateModelsRequest undeploy(String id) {
        return new UpdateModelsRequest(Op.UNDEPLOY, id, null, null);
    }

    public static UpdateModelsRequest delete(String id) {
        return new UpdateModelsRequest(Op.DELETE, id, null, null);
    }

    public static UpdateModelsRequest putAlias(String alias, String id) {
        return new UpdateModelsRequest(Op.PUT_ALIAS, id, alias, null);
    }

    /** {@code measured}: the entry as loaded, with the network's measured bytes as its memory and network-only set. */
    public static UpdateModelsRequest measuredNetwork(ModelEntry measured) {
        return new UpdateModelsRequest(Op.MEASURED_NETWORK, measured.id(), null, measured);
    }

    public static UpdateModelsRequest deleteAlias(String alias) {
        return new UpdateModelsRequest(Op.DELETE_ALIAS, null, alias, null);
    }

    public UpdateModelsRequest(StreamInput in) throws IOException {
        super(in);
        op = in.readEnum(Op.class);
        modelId = in.readOptionalString();
        alias = in.readOptionalString();
        entry = in.readOptionalWriteable(ModelEntry::new);
    }

    @Override
    public void writeTo(StreamOutput out) throws IOException {
        super.writeTo(out);
        out.writeEnum(op);
        out.writeOptionalString(modelId);
        out.writeOptionalString(alias);
        out.writeOptionalWriteable(entry);
    }

    @Override
    public ActionRequestValidationException validate() {
        return null; // names are checked by the REST layer, the rest against the current cluster state
    }

    String describe() {
        return "mach-" + op.name().toLowerCase(java.util.Locale.ROOT) + " [" + (alias != null ? alias + " -> " : "") + modelId + "]";
    }
}
