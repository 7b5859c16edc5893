package org.opensearch.mach.lifecycle;

import org.opensearch.action.ActionType;
import org.opensearch.action.FailedNodeException;
import org.opensearch.action.support.ActionFilters;
import org.opensearch.action.support.nodes.BaseNodeResponse;
import org.opensearch.action.support.nodes.BaseNodesRequest;
import org.opensearch.action.support.nodes.BaseNodesResponse;
import org.opensearch.action.support.nodes.TransportNodesAction;
import org.opensearch.cluster.ClusterName;
import org.opensearch.cluster.node.DiscoveryNode;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.inject.Inject;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.threadpool.ThreadPool;
import org.opensearch.transport.TransportRequest;
import org.opensearch.transport.TransportService;

import java.io.IOException;
import java.util.List;
import java.util.Map;

/** Asks every node for its {@link ModelDeployer#nodeView()}: per-node state and statistics of each deployed model. */
public final class NodesModelsAction {
    public static final String NAME = "cluster:monitor/mach/models/nodes";
    public static final ActionType<Response> ACTION = new ActionType<>(NAME, Response::new);

    private NodesModelsAction() {}

    public static final class Request extends BaseNodesRequest<Request> {
        public Request() {
            super((String[]) null);
        }

        public Request(StreamInput in) throws IOException {
            super(in);
        }
    }

    public static final class NodeRequest extends TransportRequest {
        NodeRequest() {}

        NodeRequest(StreamInput in) throws IOException {
            super(in);
        }
    }

    public static final class NodeResponse extends BaseNodeResponse {
        private final Map<String, Object> models;

        NodeResponse(DiscoveryNode node, Map<String, Object> models) {
            super(node);
            this.models = models;
        }

        NodeResponse(StreamInput in) throws IOException {
            super(in);
            models = in.readMap();
        }

        @Override
        public void writeTo(StreamOutput out) throws IOException {
            super.writeTo(out);
            out.writeMap(models);
        }

        /** Model id -> this node's view of it. */
        public Map<String, Object> models() {
            return models;
        }
    }

    public static final class Response extends BaseNodesResponse<NodeResponse> {
        public Response(StreamInput in) throws IOException {
            super(in);
        }

        Response(ClusterName clusterName, List<NodeResponse> nodes, List<FailedNodeException> failures) {
            super(clusterName, nodes, failures);
        }

        @Override
        protected List<NodeResponse> readNodesFrom(StreamInput in) throws IOException {
            return in.readList(NodeResponse::new);
        }

        @Override
        protected void writeNodesTo(StreamOutput out, List<NodeResponse> nodes) throws IOException {
            out.writeList(nodes);
        }
    }

    public static final class Transport extends TransportNodesAction<Request, Response, NodeRequest, NodeResponse> {
        private final ModelDeployer deployer;

        @Inject
        public Transport(
            ThreadPool threadPool,
            ClusterService clusterService,
            TransportService transportService,
            ActionFilters actionFilters,
            ModelDeployer deployer
        ) {
            super(NAME, threadPool, clusterService, transportService, actionFilters, Request::new, NodeRequest::new, ThreadPool.Names.MANAGEMENT, NodeResponse.class);
            this.deployer = deployer;
        }

        @Override
        protected Response newResponse(Request request, List<NodeResponse> responses, List<FailedNodeException> failures) {
            return new Response(clusterService.getClusterName(), responses, failures);
        }

        @Override
        protected NodeRequest newNodeRequest(Request request) {
            return new NodeRequest();
        }

        @Override
        protected NodeResponse newNodeResponse(StreamInput in) throws IOException {
            return new NodeResponse(in);
        }

        @Override
        protected NodeResponse nodeOperation(NodeRequest request) {
            return new NodeResponse(clusterService.localNode(), deployer.nodeView());
        }
    }
}
