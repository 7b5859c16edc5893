package org.opensearch.mach;

import org.opensearch.cluster.metadata.IndexNameExpressionResolver;
import org.opensearch.cluster.node.DiscoveryNodes;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.settings.ClusterSettings;
import org.opensearch.common.settings.IndexScopedSettings;
import org.opensearch.common.settings.Setting;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.settings.SettingsFilter;
import org.opensearch.core.common.io.stream.NamedWriteableRegistry;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.env.Environment;
import org.opensearch.env.NodeEnvironment;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.PredictionCache;
import org.opensearch.mach.model.ModelRegistry;
import org.opensearch.mach.query.MachProductsQueryBuilder;
import org.opensearch.mach.query.MachQueryBuilder;
import org.opensearch.mach.rest.RestMachModelsAction;
import org.opensearch.mach.rest.RestMachPredictAction;
import org.opensearch.plugins.ActionPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.SearchPlugin;
import org.opensearch.repositories.RepositoriesService;
import org.opensearch.rest.RestController;
import org.opensearch.rest.RestHandler;
import org.opensearch.script.ScriptService;
import org.opensearch.threadpool.ExecutorBuilder;
import org.opensearch.threadpool.FixedExecutorBuilder;
import org.opensearch.threadpool.ThreadPool;
import org.opensearch.transport.client.Client;
import org.opensearch.watcher.ResourceWatcherService;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.function.Supplier;

/**
 * MACH retrieval: the {@code mach} and {@code mach_products} queries, the model registry of this node
 * (bundles under {@code mach.models.dir}), the {@code mach_inference} thread pool and the
 * {@code _plugins/_mach} REST endpoints.
 */
public class MachPlugin extends Plugin implements SearchPlugin, ActionPlugin {

    /** Directory of model bundles; model id X is the bundle directory X under it. Relative paths resolve against the config dir. */
    public static final Setting<String> MODELS_DIR = Setting.simpleString("mach.models.dir", "mach-models", Setting.Property.NodeScope);
    /** Try the CUDA execution provider (onnxruntime_gpu jar needed); falls back to CPU with a log line. */
    public static final Setting<Boolean> CUDA = Setting.boolSetting("mach.inference.cuda", false, Setting.Property.NodeScope);

    /**
     * ONNX Runtime intra-op threads per inference. 1 by default: the mach_inference pool already runs one
     * query per core, and ORT's default (all cores, spinning) would oversubscribe a search node.
     */
    public static final Setting<Integer> INTRA_OP_THREADS = Setting.intSetting(
        "mach.inference.intra_op_threads", 1, 1, 256, Setting.Property.NodeScope
    );

    /**
     * Entries of the coordinator's result cache (model load + normalized text + decoding options); 0 disables it.
     * Dynamic (benchmarks switch it off and on): a change starts a new, empty cache.
     */
    public static final Setting<Integer> CACHE_SIZE = Setting.intSetting(
        "mach.cache.size", 10_000, 0, Setting.Property.NodeScope, Setting.Property.Dynamic
    );

    /** Set in createComponents; the query parsers (registered earlier) read it lazily. */
    private volatile MachInferenceService service;
    private ModelRegistry registry;

    @Override
    public List<Setting<?>> getSettings() {
        return List.of(MODELS_DIR, CUDA, INTRA_OP_THREADS, CACHE_SIZE);
    }

    @Override
    public List<ExecutorBuilder<?>> getExecutorBuilders(Settings settings) {
        int processors = Math.max(1, Runtime.getRuntime().availableProcessors());
        return List.of(
            new FixedExecutorBuilder(settings, MachInferenceService.THREAD_POOL, processors, 1000, "thread_pool." + MachInferenceService.THREAD_POOL)
        );
    }

    @Override
    public Collection<Object> createComponents(
        Client client,
        ClusterService clusterService,
        ThreadPool threadPool,
        ResourceWatcherService resourceWatcherService,
        ScriptService scriptService,
        NamedXContentRegistry xContentRegistry,
        Environment environment,
        NodeEnvironment nodeEnvironment,
        NamedWriteableRegistry namedWriteableRegistry,
        IndexNameExpressionResolver indexNameExpressionResolver,
        Supplier<RepositoriesService> repositoriesServiceSupplier
    ) {
        Path modelsDir = environment.configDir().resolve(MODELS_DIR.get(environment.settings()));
        registry = new ModelRegistry(modelsDir, CUDA.get(environment.settings()), INTRA_OP_THREADS.get(environment.settings()));
        service = new MachInferenceService(registry, threadPool, new PredictionCache(CACHE_SIZE.get(clusterService.getSettings())));
        clusterService.getClusterSettings().addSettingsUpdateConsumer(CACHE_SIZE, service::resizeCache);
        return List.of(registry, service);
    }

    private MachInferenceService service() {
        return service;
    }

    @Override
    public List<QuerySpec<?>> getQueries() {
        Supplier<MachInferenceService> services = this::service;
        return List.of(
            new QuerySpec<>(MachQueryBuilder.NAME, in -> new MachQueryBuilder(in, services), p -> MachQueryBuilder.fromXContent(p, services)),
            new QuerySpec<>(MachProductsQueryBuilder.NAME, MachProductsQueryBuilder::new, MachProductsQueryBuilder::fromXContent)
        );
    }

    @Override
    public List<RestHandler> getRestHandlers(
        Settings settings,
        RestController restController,
        ClusterSettings clusterSettings,
        IndexScopedSettings indexScopedSettings,
        SettingsFilter settingsFilter,
        IndexNameExpressionResolver indexNameExpressionResolver,
        Supplier<DiscoveryNodes> nodesInCluster
    ) {
        Supplier<MachInferenceService> services = this::service;
        return List.of(new RestMachModelsAction(services), new RestMachPredictAction(services));
    }

    @Override
    public void close() throws IOException {
        if (registry != null) registry.close(); // frees the ONNX Runtime sessions
    }
}
