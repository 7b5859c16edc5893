package org.opensearch.mach;

import org.opensearch.action.ActionRequest;
import org.opensearch.cluster.NamedDiff;
import org.opensearch.cluster.metadata.IndexNameExpressionResolver;
import org.opensearch.cluster.metadata.Metadata;
import org.opensearch.cluster.node.DiscoveryNodes;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.settings.ClusterSettings;
import org.opensearch.common.settings.IndexScopedSettings;
import org.opensearch.common.settings.Setting;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.settings.SettingsFilter;
import org.opensearch.core.ParseField;
import org.opensearch.core.action.ActionResponse;
import org.opensearch.core.common.io.stream.NamedWriteableRegistry;
import org.opensearch.core.common.unit.ByteSizeUnit;
import org.opensearch.core.common.unit.ByteSizeValue;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.env.Environment;
import org.opensearch.env.NodeEnvironment;
import org.opensearch.indices.SystemIndexDescriptor;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.lifecycle.BundleStore;
import org.opensearch.mach.lifecycle.MachModelsMetadata;
import org.opensearch.mach.lifecycle.ModelDeployer;
import org.opensearch.mach.lifecycle.ModelLifecycleService;
import org.opensearch.mach.lifecycle.NodesModelsAction;
import org.opensearch.mach.lifecycle.TransportUpdateModelsAction;
import org.opensearch.mach.lifecycle.UpdateModelsRequest;
import org.opensearch.mach.inference.PredictionCache;
import org.opensearch.mach.model.BundleZip;
import org.opensearch.mach.model.ModelRegistry;
import org.opensearch.mach.model.NodeModelMemory;
import org.opensearch.secure_sm.AccessController;
import org.apache.logging.log4j.LogManager;
import org.opensearch.mach.query.IndexBinding;
import org.opensearch.mach.query.AffineScoreQueryBuilder;
import org.opensearch.mach.query.MachBucketsQueryBuilder;
import org.opensearch.mach.query.MachProductsQueryBuilder;
import org.opensearch.mach.query.MachScoreQueryBuilder;
import org.opensearch.mach.query.MachQueryBuilder;
import org.opensearch.mach.rest.RestMachLifecycleAction;
import org.opensearch.mach.rest.RestMachModelsAction;
import org.opensearch.mach.rest.RestMachPredictAction;
import org.opensearch.index.mapper.Mapper;
import org.opensearch.mach.index.BucketFields;
import org.opensearch.mach.index.MachBucketsFieldMapper;
import org.opensearch.plugins.ActionPlugin;
import org.opensearch.plugins.MapperPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.SearchPlugin;
import org.opensearch.plugins.SystemIndexPlugin;
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
import java.util.Map;
import java.util.function.Supplier;

/**
 * MACH retrieval: the {@code mach} and {@code mach_products} queries, the model registry of this node
 * (bundles under {@code mach.models.dir}), the {@code mach_inference} thread pool, the {@code mach_buckets} field (index-side MACH) and the
 * {@code _plugins/_mach} REST endpoints.
 */
public class MachPlugin extends Plugin implements SearchPlugin, ActionPlugin, SystemIndexPlugin, MapperPlugin {

    /** Directory of model bundles; model id X is the bundle directory X under it. Relative paths resolve against the config dir. */
    public static final Setting<String> MODELS_DIR = Setting.simpleString("mach.models.dir", "mach-models", Setting.Property.NodeScope);
    /**
     * The only directory {@code _register {"path": ...}} may read bundles from; relative paths resolve
     * against the config dir. Empty (default): mach.models.dir, where the operator already puts bundles
     * this node may serve, so the endpoint cannot be used to read any other file of the node.
     */
    public static final Setting<String> REGISTER_DIR = Setting.simpleString(ModelLifecycleService.REGISTER_DIR_SETTING, "", Setting.Property.NodeScope);
    /**
     * How long a register's claim on an upload's record holds while its model is not registered and its node
     * is still in the cluster: an older claim is stale (a DELETE or another register may take the upload
     * over), as is one whose node left. A register renews its claim with a conditional write just before it
     * commits, so a register whose claim was taken over fails with a 409 and registers nothing, and one that
     * commits does so within the cluster manager's timeouts (seconds) of the renewal, far below this bound.
     * A claim left behind (its release failed while its node stays up) blocks DELETE of the upload this long.
     */
    public static final Setting<org.opensearch.common.unit.TimeValue> CLAIM_EXPIRY = Setting.timeSetting(
        ModelLifecycleService.CLAIM_EXPIRY_SETTING, org.opensearch.common.unit.TimeValue.timeValueHours(1),
        org.opensearch.common.unit.TimeValue.timeValueMinutes(5), Setting.Property.NodeScope, Setting.Property.Dynamic
    );
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
     * Most queries one ONNX Runtime call takes when queries for a model queue up on the inference pool
     * (dynamic batching: a query never waits for others; 1 = every query alone). Batching reads the
     * output layer once per batch instead of once per query (docs/performance.md).
     */
    public static final Setting<Integer> BATCH_SIZE = Setting.intSetting("mach.inference.batch_size", 8, 1, 256, Setting.Property.NodeScope);

    /**
     * Entries of the coordinator's result cache (model load + normalized text + decoding options); 0 disables it.
     * Dynamic (benchmarks switch it off and on): a change starts a new, empty cache.
     */
    public static final Setting<Integer> CACHE_SIZE = Setting.intSetting(
        "mach.cache.size", 10_000, 0, Setting.Property.NodeScope, Setting.Property.Dynamic
    );

    /**
     * Memory the models loaded on a node may use: deployed models and bundles of mach.models.dir, in one
     * account ({@link NodeModelMemory}): each network from its load (a deploy admits the network measured
     * at registration), each catalog from the request that first needs it. A deploy beyond it is refused
     * with the figures. Dynamic; set it cluster-wide.
     */
    public static final Setting<ByteSizeValue> MEMORY_LIMIT = Setting.byteSizeSetting(
        "mach.models.memory_limit", new ByteSizeValue(4, ByteSizeUnit.GB), Setting.Property.NodeScope, Setting.Property.Dynamic
    );

    /** Set in createComponents; the query parsers (registered earlier) read it lazily. */
    private volatile MachInferenceService service;
    private volatile ModelLifecycleService lifecycle;
    private ModelRegistry registry;
    private ModelDeployer deployer;

    @Override
    public List<Setting<?>> getSettings() {
        return List.of(MODELS_DIR, REGISTER_DIR, CUDA, INTRA_OP_THREADS, BATCH_SIZE, CACHE_SIZE, MEMORY_LIMIT, CLAIM_EXPIRY, IndexBinding.MODEL, IndexBinding.PRODUCT_ID_FIELD, IndexBinding.BUCKET_FIELD);
    }

    @Override
    public List<NamedWriteableRegistry.Entry> getNamedWriteables() {
        return List.of(
            new NamedWriteableRegistry.Entry(Metadata.Custom.class, MachModelsMetadata.TYPE, MachModelsMetadata::new),
            new NamedWriteableRegistry.Entry(NamedDiff.class, MachModelsMetadata.TYPE, MachModelsMetadata::readDiffFrom)
        );
    }

    @Override
    public List<NamedXContentRegistry.Entry> getNamedXContent() {
        return List.of(
            new NamedXContentRegistry.Entry(Metadata.Custom.class, new ParseField(MachModelsMetadata.TYPE), MachModelsMetadata::fromXContent)
        );
    }

    @Override
    public List<ActionHandler<? extends ActionRequest, ? extends ActionResponse>> getActions() {
        return List.of(
            new ActionHandler<>(UpdateModelsRequest.ACTION, TransportUpdateModelsAction.class),
            new ActionHandler<>(NodesModelsAction.ACTION, NodesModelsAction.Transport.class)
        );
    }

    @Override
    public Collection<SystemIndexDescriptor> getSystemIndexDescriptors(Settings settings) {
        return List.of(new SystemIndexDescriptor(BundleStore.INDEX, "MACH model bundles, in checksummed chunks"));
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
        Settings settings = environment.settings();
        Path modelsDir = environment.configDir().resolve(MODELS_DIR.get(settings));
        Path tmp = tmpDir(nodeEnvironment);
        ClusterSettings clusterSettings = clusterService.getClusterSettings();
        // one account for the node: deployed models and bundles of mach.models.dir alike
        NodeModelMemory memory = new NodeModelMemory(() -> clusterSettings.get(MEMORY_LIMIT).getBytes());
        registry = new ModelRegistry(modelsDir, CUDA.get(settings), INTRA_OP_THREADS.get(settings), tmp, memory);
        int workers = threadPool.info(MachInferenceService.THREAD_POOL).getMax();
        MachInferenceService inference = new MachInferenceService(
            registry, threadPool, new PredictionCache(CACHE_SIZE.get(clusterService.getSettings())), workers, BATCH_SIZE.get(settings)
        );
        clusterService.getClusterSettings().addSettingsUpdateConsumer(CACHE_SIZE, inference::resizeCache);
        BundleStore store = new BundleStore(client);
        deployer = new ModelDeployer(store, threadPool, CUDA.get(settings), INTRA_OP_THREADS.get(settings), memory, tmp);
        clusterService.addListener(deployer);
        inference.attachCluster(clusterService::state, deployer, indexNameExpressionResolver);
        String registerDir = REGISTER_DIR.get(settings);
        lifecycle = new ModelLifecycleService(
            client, clusterService, threadPool, store, registerDir.isEmpty() ? modelsDir : environment.configDir().resolve(registerDir), tmp
        );
        deployer.recordMeasuredNetworkWith(lifecycle::recordMeasuredNetwork);
        service = inference;
        return List.of(registry, inference, deployer, lifecycle);
    }

    /**
     * This node's directory for temporary bundle files (zips assembled from uploads or read from the
     * store, extracted bundles): {@code <data path>/mach-tmp}, owned by this node (the data path is
     * locked to it) and kept across restarts, unlike java.io.tmpdir, which OpenSearch makes anew at
     * every start. Nothing is loading yet, so what is there was left by a node killed mid-register or
     * mid-deploy: deleted here.
     */
    static Path tmpDir(NodeEnvironment nodeEnvironment) {
        Path tmp = nodeEnvironment.nodeDataPaths()[0].resolve(TMP_DIR);
        long freed = AccessController.doPrivileged(() -> BundleZip.clear(tmp));
        if (freed > 0) LogManager.getLogger(MachPlugin.class).info("deleted {} bytes of temporary bundle files left in [{}]", freed, tmp);
        return tmp;
    }

    /** The name of {@link #tmpDir} under a node's data path. */
    public static final String TMP_DIR = "mach-tmp";

    private MachInferenceService service() {
        return service;
    }

    @Override
    public Map<String, Mapper.TypeParser> getMappers() {
        return Map.of(BucketFields.TYPE, MachBucketsFieldMapper.PARSER);
    }

    @Override
    public List<QuerySpec<?>> getQueries() {
        Supplier<MachInferenceService> services = this::service;
        return List.of(
            new QuerySpec<>(MachQueryBuilder.NAME, in -> new MachQueryBuilder(in, services), p -> MachQueryBuilder.fromXContent(p, services)),
            new QuerySpec<>(MachProductsQueryBuilder.NAME, MachProductsQueryBuilder::new, MachProductsQueryBuilder::fromXContent),
            new QuerySpec<>(AffineScoreQueryBuilder.NAME, AffineScoreQueryBuilder::new, AffineScoreQueryBuilder::fromXContent),
            new QuerySpec<>(MachBucketsQueryBuilder.NAME, MachBucketsQueryBuilder::new, MachBucketsQueryBuilder::fromXContent),
            new QuerySpec<>(MachScoreQueryBuilder.NAME, MachScoreQueryBuilder::new, MachScoreQueryBuilder::fromXContent)
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
        Supplier<ModelLifecycleService> lifecycles = () -> lifecycle;
        return List.of(new RestMachModelsAction(services, lifecycles), new RestMachPredictAction(services), new RestMachLifecycleAction(lifecycles));
    }

    @Override
    public void close() throws IOException {
        if (deployer != null) deployer.close(); // frees the ONNX Runtime sessions
        if (registry != null) registry.close();
    }
}
