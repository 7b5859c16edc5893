package org.opensearch.mach.cluster;

import com.fasterxml.jackson.databind.JsonNode;

import org.opensearch.action.search.SearchResponse;
import org.opensearch.action.search.SearchType;
import org.opensearch.action.support.PlainActionFuture;
import org.opensearch.action.support.clustermanager.AcknowledgedResponse;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.unit.TimeValue;
import org.opensearch.mach.TestPaths;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInferenceService;
import org.opensearch.mach.inference.Prediction;
import org.opensearch.mach.lifecycle.BundleStore;
import org.opensearch.mach.lifecycle.ChunkBytes;
import org.opensearch.mach.lifecycle.MachModelsMetadata;
import org.opensearch.mach.lifecycle.ModelEntry;
import org.opensearch.mach.lifecycle.ModelLifecycleService;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.BundleZip;
import org.opensearch.mach.model.MachModel;
import org.opensearch.mach.query.MachQueryBuilder;
import org.opensearch.search.SearchHit;
import org.opensearch.test.InternalTestCluster;
import org.opensearch.test.OpenSearchIntegTestCase;
import org.junit.AfterClass;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.opensearch.mach.lifecycle.LifecycleTestAccess.setClock;
import static org.opensearch.mach.lifecycle.LifecycleTestAccess.setTestHook;

/**
 * The model lifecycle on a 2-node in-JVM cluster: register (from a path and uploaded in chunks),
 * deploy, query through every node, restart a node and a full cluster restart (the models come back
 * from the cluster state and the bundle store by themselves; so does a node that joins later), index bindings, an alias swapped under
 * a concurrent query loop with zero failures, undeploy, delete, and the 4xx answers to bad input.
 */
@OpenSearchIntegTestCase.ClusterScope(scope = OpenSearchIntegTestCase.Scope.TEST, numDataNodes = 2, numClientNodes = 0, supportsDedicatedMasters = false)
public class MachLifecycleTests extends MachClusterTestCase {
    private static MachModel reference; // the fixture bundle loaded in the test JVM
    private static Path registerDir;

    @Override
    protected Settings nodeSettings(int nodeOrdinal) {
        return Settings.builder().put(super.nodeSettings(nodeOrdinal)).put("mach.models.register_dir", registerDir().toString()).build();
    }

    /** The directory _register {"path"} may read: the fixture bundle as [tiny] (and what the confinement test adds). */
    static synchronized Path registerDir() {
        if (registerDir == null) {
            try {
                registerDir = createTempDir().resolve("register");
                Files.createDirectories(registerDir.resolve("tiny"));
                for (Path f : (Iterable<Path>) Files.list(bundleDir())::iterator) {
                    Files.copy(f, registerDir.resolve("tiny").resolve(f.getFileName().toString()));
                }
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        }
        return registerDir;
    }

    static Path bundleDir() {
        return TestPaths.tinyFixture().resolve("bundle");
    }

    static synchronized MachModel reference() throws Exception {
        if (reference == null) reference = BundleLoader.load("reference", bundleDir(), false);
        return reference;
    }

    @AfterClass
    public static void closeReference() {
        if (reference != null) reference.close();
        reference = null;
        registerDir = null;
    }

    private String anyNode() {
        return randomFrom(internalCluster().getNodeNames());
    }

    private ModelLifecycleService lifecycle() {
        return internalCluster().getInstance(ModelLifecycleService.class, randomFrom(internalCluster().getNodeNames()));
    }

    private Map<String, Object> registerFromPath(String id, boolean deploy) {
        PlainActionFuture<Map<String, Object>> f = PlainActionFuture.newFuture();
        lifecycle().register(id, ModelLifecycleService.Source.path("tiny"), deploy, f);
        return f.actionGet(TimeValue.timeValueMinutes(2));
    }

    private Map<String, Object> deploy(String id) {
        PlainActionFuture<Map<String, Object>> f = PlainActionFuture.newFuture();
        lifecycle().deploy(id, true, TimeValue.timeValueMinutes(2), f);
        return f.actionGet(TimeValue.timeValueMinutes(2));
    }

    private void ack(java.util.function.Consumer<PlainActionFuture<AcknowledgedResponse>> call) {
        PlainActionFuture<AcknowledgedResponse> f = PlainActionFuture.newFuture();
        call.accept(f);
        assertTrue(f.actionGet(TimeValue.timeValueMinutes(1)).isAcknowledged());
    }

    /** Top product ids of a mach query (no lexical part) coordinated by {@code node}; model and field may be null (index binding). */
    private List<String> search(String node, String model, String field, String text) {
        MachInferenceService service = internalCluster().getInstance(MachInferenceService.class, node);
        MachQueryBuilder q = new MachQueryBuilder(model, text, field, () -> service).topN(10);
        SearchResponse r = client(node).prepareSearch(INDEX).setSearchType(SearchType.QUERY_THEN_FETCH).setQuery(q).setSize(10).get();
        List<String> ids = new ArrayList<>();
        for (SearchHit h : r.getHits().getHits()) ids.add(h.getId());
        return ids;
    }

    private static List<String> expected(String text) throws Exception {
        Prediction p = MachInferenceService.predict(reference(), text, new Decoder.Options(10, Decoder.Strategy.AUTO, 10, 1, Decoder.ScoreMode.MEAN));
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < p.size(); i++) ids.add(p.productId(i));
        return ids;
    }

    @SuppressWarnings("unchecked")
    private static void assertDeployedOnEveryNode(Map<String, Object> deployResult, int nodes) {
        assertEquals(deployResult.toString(), "deployed", deployResult.get("state"));
        Map<String, Object> perNode = (Map<String, Object>) deployResult.get("nodes");
        assertEquals(deployResult.toString(), nodes, perNode.size());
        for (Object v : perNode.values()) assertEquals(v.toString(), "deployed", ((Map<String, Object>) v).get("state"));
    }

    public void testRegisterDeployQueryRestartUndeployDelete() throws Exception {
        indexProducts(INDEX, 2, 1);
        Map<String, Object> reg = registerFromPath("tiny-v1", false);
        assertEquals("registered", reg.get("state"));
        assertEquals(300, reg.get("products"));
        // what a deploy admits: the network (the catalog is admitted on the node that first loads it)
        assertEquals(reg.toString(), Files.size(bundleDir().resolve("model.onnx")), ((Number) reg.get("memory_bytes")).longValue());

        // registered, not deployed: a query says so
        String text = "crimson couch";
        Exception notDeployed = expectThrows(Exception.class, () -> search(anyNode(), "tiny-v1", "product_id", text));
        assertTrue(notDeployed.toString(), notDeployed.toString().contains("not deployed"));

        assertDeployedOnEveryNode(deploy("tiny-v1"), 2);
        List<String> want = expected(text);
        for (String node : internalCluster().getNodeNames()) {
            assertEquals("served by " + node, want, search(node, "tiny-v1", "product_id", text));
        }

        // a restarted node serves the model again without anyone acting (it reloads from the bundle store)
        String restarted = anyNode();
        internalCluster().restartNode(restarted, new InternalTestCluster.RestartCallback());
        ensureGreen(INDEX, BundleStore.INDEX);
        assertEquals(want, search(restarted, "tiny-v1", "product_id", "crimson couch"));

        // so does every node after a full cluster restart (cluster state and bundle store are durable)
        internalCluster().fullRestart();
        ensureGreen(INDEX, BundleStore.INDEX);
        for (String node : internalCluster().getNodeNames()) {
            assertEquals("after full restart, " + node, want, search(node, "tiny-v1", "product_id", text));
        }

        // a node that joins later serves it too
        String joined = internalCluster().startNode();
        ensureStableCluster(3);
        assertEquals("served by the new node " + joined, want, search(joined, "tiny-v1", "product_id", text));

        ack(f -> lifecycle().undeploy("tiny-v1", f));
        Exception undeployed = expectThrows(Exception.class, () -> search(anyNode(), "tiny-v1", "product_id", text));
        assertTrue(undeployed.toString(), undeployed.toString().contains("not deployed"));

        String storage = MachModelsMetadata.of(clusterService().state()).models().get("tiny-v1").storageId();
        BundleStore store = new BundleStore(client());
        assertTrue(store.countChunks(storage) > 0);
        ack(f -> lifecycle().delete("tiny-v1", f));
        assertFalse(MachModelsMetadata.of(clusterService().state()).models().containsKey("tiny-v1"));
        // gone when the delete answers: no chunk, part or upload record left under the model's storage
        assertFalse("the stored bundle is deleted with the model", store.holdsAnything(storage));
    }

    public void testIndexBindingAndAliasSwapUnderQueries() throws Exception {
        indexProducts(INDEX, 2, 0);
        registerFromPath("tiny-a", true);
        registerFromPath("tiny-b", true);
        ack(f -> lifecycle().putAlias("prod", "tiny-a", f));
        client().admin().indices().prepareUpdateSettings(INDEX)
            .setSettings(Settings.builder().put("index.mach.model", "prod").put("index.mach.product_id_field", "product_id"))
            .get();
        String text = "crimson couch";
        List<String> want = expected(text);
        assertEquals("bound by the index settings", want, search(anyNode(), null, null, text));

        // a concurrent query loop through every node while the alias moves back and forth and models are redeployed
        AtomicBoolean stop = new AtomicBoolean();
        AtomicInteger ok = new AtomicInteger();
        List<Throwable> failures = new CopyOnWriteArrayList<>();
        List<Thread> threads = new ArrayList<>();
        for (String node : internalCluster().getNodeNames()) {
            Thread t = new Thread(() -> {
                while (!stop.get()) {
                    try {
                        List<String> got = search(node, null, null, text);
                        if (!got.equals(want)) failures.add(new AssertionError("wrong hits " + got));
                        else ok.incrementAndGet();
                    } catch (Throwable e) {
                        failures.add(e);
                    }
                }
            }, "query-loop-" + node);
            t.start();
            threads.add(t);
        }
        try {
            for (int round = 0; round < 3; round++) {
                ack(f -> lifecycle().putAlias("prod", "tiny-b", f));
                ack(f -> lifecycle().undeploy("tiny-a", f)); // nothing points to it any more
                assertDeployedOnEveryNode(deploy("tiny-a"), 2);
                ack(f -> lifecycle().putAlias("prod", "tiny-a", f));
                ack(f -> lifecycle().undeploy("tiny-b", f));
                assertDeployedOnEveryNode(deploy("tiny-b"), 2);
            }
        } finally {
            stop.set(true);
            for (Thread t : threads) t.join();
        }
        assertTrue("queries ran during the swaps: " + ok.get(), ok.get() > 10);
        assertEquals("failed queries: " + failures, 0, failures.size());

        // re-point the index to another model directly: a settings update, no reindexing
        client().admin().indices().prepareUpdateSettings(INDEX).setSettings(Settings.builder().put("index.mach.model", "tiny-b")).get();
        assertEquals(want, search(anyNode(), null, null, text));

        // the alias protects its model: undeploying or deleting it is refused until the alias moves
        Exception e = expectThrows(Exception.class, () -> ack(f -> lifecycle().undeploy("tiny-a", f)));
        assertTrue(e.toString(), e.toString().contains("alias [prod] points to it"));
    }

    /**
     * A deploy admits the network only; a node admits the catalog when a request first needs it there.
     * Over the limit a product_id_field query and _predict are a 400 naming the model and the limit,
     * nothing is left loaded, the model stays deployed and bucket_field queries keep working; once
     * the limit is raised the same query loads the catalog and answers.
     */
    public void testCatalogIsAdmittedWhenARequestFirstNeedsIt() throws Exception {
        indexBucketedProducts(INDEX, 2, reference().card().hashFamily.name(), "");
        Map<String, Object> reg = registerFromPath("tiny", false);
        long network = ((Number) reg.get("memory_bytes")).longValue();
        long catalog = reference().catalog().heapBytes();
        assertTrue("the network only: " + reg, network < reference().memoryBytes());
        String text = "crimson couch";
        String byBuckets = "{\"size\": 10, \"query\": {\"mach\": {\"model_id\": \"tiny\", \"query_text\": \"" + text
            + "\", \"bucket_field\": \"buckets\"}}}";
        String byIds = "{\"size\": 10, \"query\": {\"mach\": {\"model_id\": \"tiny\", \"query_text\": \"" + text
            + "\", \"product_id_field\": \"product_id\", \"top_n\": 10}}}";
        rest("PUT", "/_cluster/settings", "{\"persistent\": {\"mach.models.memory_limit\": \"" + (network + catalog - 1) + "b\"}}", 200);
        try {
            assertDeployedOnEveryNode(deploy("tiny"), 2);
            for (int i = 0; i < 2; i++) { // through both nodes (the client alternates)
                assertTrue(rest("POST", "/" + INDEX + "/_search", byBuckets, 200).get("hits").get("hits").size() > 0);
                String refused = rest("POST", "/" + INDEX + "/_search", byIds, 400).toString();
                assertTrue(refused, refused.contains("model [tiny]: its product catalog") && refused.contains("mach.models.memory_limit is"));
                refused = rest("POST", "/_plugins/_mach/models/tiny/_predict", "{\"query_text\": \"" + text + "\"}", 400).toString();
                assertTrue(refused, refused.contains("model [tiny]: its product catalog"));
            }
            JsonNode perNode = rest("GET", "/_plugins/_mach/models/tiny", null, 200).get("nodes");
            assertEquals(perNode.toString(), 2, perNode.size());
            for (JsonNode n : perNode) {
                assertEquals(n.toString(), "deployed", n.get("state").asText());
                assertFalse(n.toString(), n.get("catalog_loaded").asBoolean());
                assertEquals(n.toString(), network, n.get("network_bytes").asLong());
                assertEquals(n.toString(), network, n.get("memory_bytes").asLong());
            }
            assertTrue(rest("POST", "/" + INDEX + "/_search", byBuckets, 200).get("hits").get("hits").size() > 0);

            rest("PUT", "/_cluster/settings", "{\"persistent\": {\"mach.models.memory_limit\": \"" + (network + catalog) + "b\"}}", 200);
            List<String> got = new ArrayList<>();
            rest("POST", "/" + INDEX + "/_search", byIds, 200).get("hits").get("hits").forEach(h -> got.add(h.get("_id").asText()));
            assertEquals(expected(text), got);
            int withCatalog = 0;
            for (JsonNode n : rest("GET", "/_plugins/_mach/models/tiny", null, 200).get("nodes")) {
                long admitted = n.get("catalog_loaded").asBoolean() ? catalog : 0;
                withCatalog += admitted > 0 ? 1 : 0;
                assertEquals(n.toString(), admitted, n.get("catalog_bytes").asLong());
                assertEquals(n.toString(), network + admitted, n.get("memory_bytes").asLong());
            }
            assertEquals("the coordinating node", 1, withCatalog);
        } finally {
            rest("PUT", "/_cluster/settings", "{\"persistent\": {\"mach.models.memory_limit\": null}}", 200);
        }
    }

    /**
     * A model registered by an earlier build: its entry has no memory_network_only and its memory_bytes
     * counts the catalog too. A deploy admits that figure; each node then holds the network it measures
     * from the bundle, and the catalog once a request needs it, so the catalog is not counted twice: a
     * limit of network + catalog serves a product_id_field query.
     */
    public void testAModelOfAnEarlierBuildCountsItsCatalogOnce() throws Exception {
        indexProducts(INDEX, 2, 1);
        Map<String, Object> reg = registerFromPath("tiny", false);
        long network = ((Number) reg.get("memory_bytes")).longValue();
        long catalog = reference().catalog().heapBytes();
        // the entry as an earlier build recorded it
        org.opensearch.cluster.service.ClusterService cs = internalCluster().getCurrentClusterManagerNodeInstance(
            org.opensearch.cluster.service.ClusterService.class
        );
        PlainActionFuture<Void> rewritten = PlainActionFuture.newFuture();
        cs.submitStateUpdateTask("old-format entry", new org.opensearch.cluster.ClusterStateUpdateTask() {
            @Override
            public org.opensearch.cluster.ClusterState execute(org.opensearch.cluster.ClusterState current) {
                MachModelsMetadata m = MachModelsMetadata.of(current);
                ModelEntry e = m.models().get("tiny");
                ModelEntry old = new ModelEntry(e.id(), e.storageId(), e.sha256(), e.sizeBytes(), e.chunks(), network + catalog,
                    e.products(), e.repetitions(), e.buckets(), e.name(), e.registeredAt(), e.deployed(), false);
                return org.opensearch.cluster.ClusterState.builder(current).metadata(
                    org.opensearch.cluster.metadata.Metadata.builder(current.metadata()).putCustom(MachModelsMetadata.TYPE, m.withModel(old))
                ).build();
            }

            @Override
            public void onFailure(String source, Exception e) {
                rewritten.onFailure(e);
            }

            @Override
            public void clusterStateProcessed(String source, org.opensearch.cluster.ClusterState before, org.opensearch.cluster.ClusterState after) {
                rewritten.onResponse(null);
            }
        });
        rewritten.actionGet(TimeValue.timeValueMinutes(1));
        assertEquals(network + catalog, rest("GET", "/_plugins/_mach/models/tiny", null, 200).get("memory_bytes").asLong());
        String text = "crimson couch";
        String byIds = "{\"size\": 10, \"query\": {\"mach\": {\"model_id\": \"tiny\", \"query_text\": \"" + text
            + "\", \"product_id_field\": \"product_id\", \"top_n\": 10}}}";
        rest("PUT", "/_cluster/settings", "{\"persistent\": {\"mach.models.memory_limit\": \"" + (network + catalog) + "b\"}}", 200);
        try {
            assertDeployedOnEveryNode(deploy("tiny"), 2);
            for (JsonNode n : rest("GET", "/_plugins/_mach/models/tiny", null, 200).get("nodes")) {
                assertEquals(n.toString(), network, n.get("network_bytes").asLong()); // measured from the bundle
                assertEquals(n.toString(), network, n.get("memory_bytes").asLong());
            }
            // and recorded in the cluster state: the deploy check counts the network alone from then on
            assertBusy(() -> {
                ModelEntry recorded = MachModelsMetadata.of(internalCluster().clusterService().state()).models().get("tiny");
                assertTrue(recorded.toString(), recorded.networkOnly());
                assertEquals(network, recorded.memoryBytes());
            });
            assertEquals(network, rest("GET", "/_plugins/_mach/models/tiny", null, 200).get("memory_bytes").asLong());
            for (int i = 0; i < 2; i++) { // through both nodes (the client alternates): each loads the catalog once
                List<String> got = new ArrayList<>();
                rest("POST", "/" + INDEX + "/_search", byIds, 200).get("hits").get("hits").forEach(h -> got.add(h.get("_id").asText()));
                assertEquals(expected(text), got);
            }
            for (JsonNode n : rest("GET", "/_plugins/_mach/models/tiny", null, 200).get("nodes")) {
                long admitted = n.get("catalog_loaded").asBoolean() ? catalog : 0;
                assertEquals(n.toString(), network + admitted, n.get("memory_bytes").asLong());
            }
        } finally {
            rest("PUT", "/_cluster/settings", "{\"persistent\": {\"mach.models.memory_limit\": null}}", 200);
        }
    }

    private static Path tmpDir(String node) {
        return internalCluster().getInstance(org.opensearch.env.NodeEnvironment.class, node).nodeDataPaths()[0]
            .resolve(org.opensearch.mach.MachPlugin.TMP_DIR);
    }

    private static List<Path> filesUnder(Path dir) throws Exception {
        if (!Files.isDirectory(dir)) return List.of();
        try (var s = Files.list(dir)) {
            return s.toList();
        }
    }

    /** A register and a deploy leave no temporary file; what a killed node left is deleted when it starts again. */
    public void testTemporaryBundleFilesAreDeletedAtNodeStart() throws Exception {
        registerFromPath("tiny", true);
        // a deployed model keeps only its labels file (read when a request first needs its catalog)
        for (String node : internalCluster().getNodeNames()) {
            List<Path> left = filesUnder(tmpDir(node));
            assertEquals(node + ": " + left, 1, left.size());
            assertTrue(left.toString(), left.get(0).getFileName().toString().matches("tiny-.*\\.labels\\.txt"));
        }

        // what a node killed mid-register or mid-deploy leaves: an assembled zip and an extracted bundle
        String node = internalCluster().getNodeNames()[0];
        Path tmp = tmpDir(node);
        Files.createDirectories(tmp.resolve("bundle-1"));
        Files.write(tmp.resolve("tiny-1.zip"), new byte[1 << 20]);
        Files.write(tmp.resolve("bundle-1").resolve("model.onnx"), new byte[1 << 20]);
        internalCluster().restartNode(node);
        // (the restarted node may already be loading tiny again: only the files planted above must be gone)
        assertFalse(Files.exists(tmp.resolve("tiny-1.zip")));
        assertFalse(Files.exists(tmp.resolve("bundle-1")));
        ensureGreen();
        assertBusy(() -> assertNotNull(internalCluster().getInstance(MachInferenceService.class, node).deployer().deployed("tiny")));
    }

    /** The fixture bundle plus an incompressible file of {@code padBytes} that its card lists: a valid bundle of any size. */
    private static Path paddedBundleZip(int padBytes) throws Exception {
        Path dir = createTempDir().resolve("padded");
        Files.createDirectories(dir);
        for (Path f : (Iterable<Path>) Files.list(bundleDir())::iterator) Files.copy(f, dir.resolve(f.getFileName().toString()));
        byte[] pad = new byte[padBytes];
        random().nextBytes(pad);
        Files.write(dir.resolve("padding.bin"), pad);
        var card = (com.fasterxml.jackson.databind.node.ObjectNode) JSON.readTree(dir.resolve("mach.json").toFile());
        ((com.fasterxml.jackson.databind.node.ObjectNode) card.get("files")).put("padding.bin", BundleStore.sha256(pad));
        JSON.writeValue(dir.resolve("mach.json").toFile(), card);
        Path zip = createTempDir().resolve("padded.zip");
        BundleZip.zipDirectory(dir, zip);
        return zip;
    }

    /**
     * A bundle of tens of MB, uploaded in 8 MB chunks as mach_tools deploy sends them, redeployed under a
     * query loop on every node: no query fails. Reading it back from the store streams each chunk into
     * the file: the reading thread allocates a small fraction of the bundle (decoding a chunk's source
     * into a map, a string and a byte array allocated several times the bundle).
     */
    public void testRedeployOfALargeBundleUnderQueries() throws Exception {
        indexProducts(INDEX, 2, 0);
        Path zip = paddedBundleZip(40 << 20);
        long size = Files.size(zip);
        String sha = BundleLoader.sha256(zip);
        int chunkBytes = 8 << 20;
        int chunks = (int) ((size + chunkBytes - 1) / chunkBytes);
        String uploadId = lifecycle().createUpload();
        try (var in = Files.newInputStream(zip)) {
            for (int i = 0; i < chunks; i++) {
                byte[] data = in.readNBytes(chunkBytes);
                lifecycle().putChunk(uploadId, i, ChunkBytes.of(data), BundleStore.sha256(data));
            }
        }
        PlainActionFuture<Map<String, Object>> registered = PlainActionFuture.newFuture();
        lifecycle().register("big", ModelLifecycleService.Source.upload(uploadId, chunks, sha), true, registered);
        assertDeployedOnEveryNode(registered.actionGet(TimeValue.timeValueMinutes(2)), 2);

        var threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        Path copy = createTempDir().resolve("copy.zip");
        long before = threads.getCurrentThreadAllocatedBytes();
        new BundleStore(client()).readBundle(uploadId, chunks, sha, copy);
        long allocated = threads.getCurrentThreadAllocatedBytes() - before;
        assertEquals(sha, BundleLoader.sha256(copy));
        logger.info("reading the {} byte bundle ({} chunks) allocated {} bytes on the reading thread", size, chunks, allocated);
        assertTrue("reading a " + size + " byte bundle allocated " + allocated + " bytes", allocated < size / 4);

        String text = "crimson couch";
        List<String> want = expected(text);
        AtomicBoolean stop = new AtomicBoolean();
        AtomicInteger ok = new AtomicInteger();
        List<Throwable> failures = new CopyOnWriteArrayList<>();
        List<Thread> loops = new ArrayList<>();
        for (String node : internalCluster().getNodeNames()) {
            Thread t = new Thread(() -> {
                while (!stop.get()) {
                    try {
                        // tiny serves while big is redeployed: queries on one model, loads of another
                        List<String> got = search(node, "tiny", "product_id", text);
                        if (!got.equals(want)) failures.add(new AssertionError("wrong hits " + got));
                        else ok.incrementAndGet();
                    } catch (Throwable e) {
                        failures.add(e);
                    }
                }
            }, "query-loop-" + node);
            loops.add(t);
        }
        registerFromPath("tiny", true);
        loops.forEach(Thread::start);
        long maxHeap = 0;
        try {
            for (int round = 0; round < 3; round++) {
                ack(f -> lifecycle().undeploy("big", f));
                PlainActionFuture<Map<String, Object>> f = PlainActionFuture.newFuture();
                lifecycle().deploy("big", true, TimeValue.timeValueMinutes(2), f);
                while (!f.isDone()) {
                    // both nodes run in this JVM: its heap is theirs
                    maxHeap = Math.max(maxHeap, java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed());
                    Thread.sleep(50);
                }
                assertDeployedOnEveryNode(f.actionGet(), 2);
            }
        } finally {
            stop.set(true);
            for (Thread t : loops) t.join();
        }
        logger.info("3 redeploys of a {} byte bundle: {} queries, {} failed; heap used at most {} bytes (test JVM heap {})",
            size, ok.get(), failures.size(), maxHeap, Runtime.getRuntime().maxMemory());
        assertTrue("queries ran during the redeploys: " + ok.get(), ok.get() > 10);
        assertEquals("failed queries: " + failures, 0, failures.size());
    }

    // ------------------------------------------------------------------ REST: chunked upload and bad input

    /** Uploads a bundle zip in chunks over REST; returns the upload id. */
    private static String upload(byte[] zip, int chunkBytes, boolean corruptSecond, boolean skipLast) throws Exception {
        String uploadId = rest("POST", "/_plugins/_mach/uploads", null, 200).get("upload_id").asText();
        int n = (zip.length + chunkBytes - 1) / chunkBytes;
        for (int i = 0; i < n; i++) {
            if (skipLast && i == n - 1) break;
            byte[] chunk = java.util.Arrays.copyOfRange(zip, i * chunkBytes, Math.min(zip.length, (i + 1) * chunkBytes));
            String sha = BundleStore.sha256(chunk);
            if (corruptSecond && i == 1) chunk[0] ^= 1;
            String body = "{\"data\": \"" + Base64.getEncoder().encodeToString(chunk) + "\", \"sha256\": \"" + sha + "\"}";
            rest("PUT", "/_plugins/_mach/uploads/" + uploadId + "/" + i, body, corruptSecond && i == 1 ? 400 : 200);
        }
        return uploadId;
    }

    /**
     * A bundle zip as the upload tests send it: cut into 64 KB chunks (the fixture makes several, so every
     * chunk path runs), with its SHA-256; uploads and registers of it.
     */
    private record Fixture(byte[] zip, String sha, int chunkBytes, int chunks) {
        static Fixture of(Path bundleDir) throws Exception {
            return of(zipOf(bundleDir));
        }

        static Fixture of(byte[] zip) {
            int chunkBytes = 64 << 10;
            return new Fixture(zip, BundleStore.sha256(zip), chunkBytes, (zip.length + chunkBytes - 1) / chunkBytes);
        }

        /** A complete upload of it over REST: its id. */
        String upload() throws Exception {
            return MachLifecycleTests.upload(zip, chunkBytes, false, false);
        }

        /** Registers upload {@code uploadId} of it as model {@code id} through {@code service}, not deployed. */
        Map<String, Object> register(ModelLifecycleService service, String id, String uploadId) {
            return MachLifecycleTests.register(service, id, ModelLifecycleService.Source.upload(uploadId, chunks, sha));
        }
    }

    private static byte[] zipOf(Path bundle) throws Exception {
        Path zip = createTempDir().resolve("bundle.zip");
        BundleZip.zipDirectory(bundle, zip);
        return Files.readAllBytes(zip);
    }

    private static String register(String id, String uploadId, int chunks, String sha, int status) throws Exception {
        String body = "{\"upload_id\": \"" + uploadId + "\", \"chunks\": " + chunks + ", \"sha256\": \"" + sha + "\", \"deploy\": true}";
        return rest("POST", "/_plugins/_mach/models/" + id + "/_register", body, status).toString();
    }

    public void testChunkedUploadAndBadInputOverRest() throws Exception {
        indexProducts(INDEX, 1, 0);
        Fixture fx = Fixture.of(bundleDir());
        assertTrue("the fixture spans several chunks: " + fx.chunks(), fx.chunks() >= 3);
        BundleStore store = new BundleStore(client());

        // a corrupt chunk is refused at once
        String corrupt = upload(fx.zip(), fx.chunkBytes(), true, false);
        // a truncated upload (last chunk missing) is refused at registration; its chunks stay for a retry
        String truncated = upload(fx.zip(), fx.chunkBytes(), false, true);
        assertTrue(register("m-trunc", truncated, fx.chunks(), fx.sha(), 400).contains("chunk [" + (fx.chunks() - 1) + "] of " + fx.chunks() + " is missing"));
        assertEquals(fx.chunks() - 1, store.countChunks(truncated));
        // every other failed register keeps the chunks too: checksum mismatch, malformed sha256, absurd chunk count, invalid id
        String retried = fx.upload();
        assertTrue(register("m-sha", retried, fx.chunks(), "0".repeat(64), 400).contains("checksum mismatch"));
        register("m-sha", retried, fx.chunks(), "not-hex", 400);
        register("m-sha", retried, 1_000_000, fx.sha(), 400);
        register("-bad-id", retried, fx.chunks(), fx.sha(), 400);
        assertEquals(fx.chunks(), store.countChunks(retried));
        // ... so the fixed request succeeds without uploading again, and only once: the chunks now belong to the model
        JsonNode registered = JSON.readTree(register("m-retry", retried, fx.chunks(), fx.sha(), 201));
        assertEquals("deployed", registered.get("state").asText());
        assertTrue("one answer: deployed flag and state agree " + registered, registered.get("deployed").asBoolean());
        // GET _plugins/_mach/models lists the registered models this node serves as loaded
        JsonNode loaded = rest("GET", "/_plugins/_mach/models", null, 200).get("loaded");
        assertEquals(loaded.toString(), "registered", loaded.path("m-retry").path("source").asText());
        assertTrue(register("m-twice", retried, fx.chunks(), fx.sha(), 409).contains("registered model [m-retry]"));
        String chunk0 = "{\"data\": \"" + Base64.getEncoder().encodeToString(new byte[] { 1 }) + "\", \"sha256\": \"" + BundleStore.sha256(new byte[] { 1 }) + "\"}";
        assertTrue(rest("PUT", "/_plugins/_mach/uploads/" + retried + "/0", chunk0, 409).toString().contains("registered model [m-retry]"));
        rest("DELETE", "/_plugins/_mach/uploads/" + retried, null, 409);
        rest("DELETE", "/_plugins/_mach/models/m-retry", null, 200);
        assertBusy(() -> assertEquals(0, store.countChunks(retried)));

        // chunks: a checksum is required, the upload must exist, a stored chunk is never replaced
        String open = rest("POST", "/_plugins/_mach/uploads", null, 200).get("upload_id").asText();
        String noSha = "{\"data\": \"" + Base64.getEncoder().encodeToString(new byte[] { 1 }) + "\"}";
        assertTrue(rest("PUT", "/_plugins/_mach/uploads/" + open + "/0", noSha, 400).toString().contains("needs [sha256]"));
        rest("PUT", "/_plugins/_mach/uploads/" + open + "/0", chunk0, 200);
        rest("PUT", "/_plugins/_mach/uploads/" + open + "/0", chunk0, 200); // a retry of the same bytes
        String other = "{\"data\": \"" + Base64.getEncoder().encodeToString(new byte[] { 2 }) + "\", \"sha256\": \"" + BundleStore.sha256(new byte[] { 2 }) + "\"}";
        assertTrue(rest("PUT", "/_plugins/_mach/uploads/" + open + "/0", other, 409).toString().contains("already stored with other bytes"));
        String neverCreated = "NeverCreated0123456789";
        rest("PUT", "/_plugins/_mach/uploads/" + neverCreated + "/0", chunk0, 404);
        assertEquals("nothing stored", 0, store.countChunks(neverCreated));
        rest("DELETE", "/_plugins/_mach/uploads/" + neverCreated, null, 404);
        rest("POST", "/_plugins/_mach/models/m-x/_register", "{\"upload_id\": \"" + neverCreated + "\", \"chunks\": 1, \"sha256\": \"" + fx.sha() + "\"}", 404);

        // uploads are listed (id, chunks, bytes, age) and abandoned ones deleted
        Map<String, JsonNode> listed = new java.util.HashMap<>();
        rest("GET", "/_plugins/_mach/uploads", null, 200).get("uploads").forEach(u -> listed.put(u.get("upload_id").asText(), u));
        assertEquals(listed.toString(), fx.chunks() - 1, listed.get(truncated).get("chunks").asInt());
        assertEquals(listed.toString(), (long) (fx.chunks() - 1) * fx.chunkBytes(), listed.get(truncated).get("bytes").asLong());
        assertTrue(listed.toString(), listed.get(truncated).get("age_ms").asLong() >= 0 && !listed.get(truncated).get("orphan").asBoolean());
        assertEquals(listed.toString(), 1, listed.get(open).get("chunks").asInt());
        assertFalse("a model's storage is not an upload", listed.containsKey(retried));
        for (String id : List.of(truncated, open, corrupt)) rest("DELETE", "/_plugins/_mach/uploads/" + id, null, 200);
        assertFalse(rest("GET", "/_plugins/_mach/uploads", null, 200).toString().contains(truncated));

        // a good upload registers and deploys in one call, and answers queries
        String good = fx.upload();
        JsonNode reg = JSON.readTree(register("m1", good, fx.chunks(), fx.sha(), 201));
        assertEquals(reg.toString(), "deployed", reg.get("state").asText());
        assertEquals(fx.sha(), reg.get("sha256").asText());
        // deployed, nothing asked yet: no node holds the catalog (labels + product index)
        JsonNode perNode = rest("GET", "/_plugins/_mach/models/m1", null, 200).get("nodes");
        assertEquals(perNode.toString(), 2, perNode.size());
        for (JsonNode n : perNode) {
            assertFalse(n.toString(), n.get("catalog_loaded").asBoolean());
            assertEquals(n.toString(), 0, n.get("catalog_bytes").asLong());
        }
        String search = "{\"query\": {\"mach\": {\"model_id\": \"m1\", \"query_text\": \"crimson couch\", \"product_id_field\": \"product_id\", \"top_n\": 10}}, \"size\": 10}";
        JsonNode hits = rest("POST", "/" + INDEX + "/_search", search, 200).get("hits").get("hits");
        List<String> got = new ArrayList<>();
        hits.forEach(h -> got.add(h.get("_id").asText()));
        assertEquals(expected("crimson couch"), got);

        // GET: record, per-node state and statistics; the list; predict through an alias
        rest("PUT", "/_plugins/_mach/aliases/live", "{\"model_id\": \"m1\"}", 200);
        JsonNode m = rest("GET", "/_plugins/_mach/models/live", null, 200);
        assertEquals("m1", m.get("model_id").asText());
        assertEquals("the card of the deployed copy", reference().card().name, m.get("card").get("name").asText());
        assertEquals(2, m.get("nodes").size());
        long queries = 0;
        for (JsonNode n : m.get("nodes")) {
            assertEquals(n.toString(), "deployed", n.get("state").asText());
            queries += n.get("queries").asLong();
        }
        assertTrue("the query was counted: " + m, queries >= 1);
        // the product_id_field query loaded the catalog on the node that coordinated it, counted in its memory
        int withCatalog = 0;
        for (JsonNode n : m.get("nodes")) {
            if (n.get("catalog_loaded").asBoolean()) {
                withCatalog++;
                assertTrue(n.toString(), n.get("catalog_bytes").asLong() > 300 * 4);
                assertTrue(n.toString(), n.get("heap_and_native_bytes").asLong() > n.get("catalog_bytes").asLong());
            } else {
                assertEquals(n.toString(), 0, n.get("catalog_bytes").asLong());
            }
        }
        assertEquals(m.toString(), 1, withCatalog);
        assertEquals("m1", rest("GET", "/_plugins/_mach/models", null, 200).get("aliases").get("live").asText());
        JsonNode p = rest("POST", "/_plugins/_mach/models/live/_predict", "{\"query_text\": \"crimson couch\", \"top_n\": 3}", 200);
        assertEquals(expected("crimson couch").get(0), p.get("products").get(0).get("product_id").asText());
        assertEquals("each repetition's top buckets", reference().card().repetitions, p.get("repetitions").size());

        // duplicate id: 409, the registered model untouched
        String again = fx.upload();
        assertTrue(register("m1", again, fx.chunks(), fx.sha(), 409).contains("already registered"));
        assertEquals("kept for a retry under another id", fx.chunks(), store.countChunks(again));
        assertEquals(1, MachModelsMetadata.of(clusterService().state()).models().size());

        // a bundle whose card does not match its ONNX graph
        Path bad = createTempDir().resolve("bad");
        Files.createDirectories(bad);
        for (Path f : (Iterable<Path>) Files.list(bundleDir())::iterator) Files.copy(f, bad.resolve(f.getFileName().toString()));
        String card = Files.readString(bad.resolve("mach.json"));
        // a consistent card with B doubled everywhere it appears, over a graph that outputs B buckets
        var cardJson = (com.fasterxml.jackson.databind.node.ObjectNode) JSON.readTree(card);
        int B = cardJson.get("B").asInt();
        cardJson.put("B", 2 * B);
        ((com.fasterxml.jackson.databind.node.ObjectNode) cardJson.get("product_hash")).put("buckets", 2 * B);
        ((com.fasterxml.jackson.databind.node.ArrayNode) cardJson.get("onnx").get("output").get("shape")).set(2, 2 * B);
        String badCard = JSON.writerWithDefaultPrettyPrinter().writeValueAsString(cardJson);
        Files.writeString(bad.resolve("mach.json"), badCard);
        Fixture badFx = Fixture.of(bad);
        String badUpload = badFx.upload();
        String badReply = register("m-bad", badUpload, badFx.chunks(), badFx.sha(), 400);
        assertTrue(badReply, badReply.contains("not a valid bundle"));
        assertEquals(badFx.chunks(), store.countChunks(badUpload));
        assertFalse(MachModelsMetadata.of(clusterService().state()).models().containsKey("m-bad"));

        // a deploy that fails on the nodes is an error, and an alias cannot point to a model no node serves
        String brokenUpload = fx.upload();
        rest("POST", "/_plugins/_mach/models/m-broken/_register",
            "{\"upload_id\": \"" + brokenUpload + "\", \"chunks\": " + fx.chunks() + ", \"sha256\": \"" + fx.sha() + "\"}", 201);
        byte[] damaged = java.util.Arrays.copyOf(fx.zip(), fx.chunkBytes());
        damaged[100] ^= 1; // the stored chunk is consistent with its own checksum, not with the bundle's
        try (var ignored = client().threadPool().getThreadContext().stashContext()) { // JSON, as BundleStore writes chunks
            client().prepareIndex(BundleStore.INDEX).setId(brokenUpload + "#0")
                .setSource(Map.of("storage_id", brokenUpload, "chunk", 0, "sha256", BundleStore.sha256(damaged), "size", damaged.length, "data", damaged), org.opensearch.common.xcontent.XContentType.JSON)
                .get();
        }
        String failed = rest("POST", "/_plugins/_mach/models/m-broken/_deploy", null, 503).toString();
        assertTrue(failed, failed.contains("deploying model [m-broken] failed on") && failed.contains("checksum mismatch"));
        String aliasRefused = rest("PUT", "/_plugins/_mach/aliases/live", "{\"model_id\": \"m-broken\"}", 409).toString();
        assertTrue(aliasRefused, aliasRefused.contains("no node serves model [m-broken]"));
        assertEquals("the alias is left as it was", "m1", rest("GET", "/_plugins/_mach/aliases", null, 200).get("aliases").get("live").asText());
        rest("POST", "/_plugins/_mach/models/m-broken/_undeploy", null, 200);
        rest("DELETE", "/_plugins/_mach/models/m-broken", null, 200);

        // registration from a path reads only inside the registration directory, the card first, and no zip bomb
        String outside = rest("POST", "/_plugins/_mach/models/m-p/_register", "{\"path\": \"/etc/passwd\"}", 400).toString();
        assertTrue(outside, outside.contains("must be inside the registration directory") && !outside.contains("/etc"));
        rest("POST", "/_plugins/_mach/models/m-p/_register", "{\"path\": \"../../../../etc/passwd\"}", 400);
        Files.createSymbolicLink(Path.of(registerDir().resolve("escape").toString()), Path.of("/etc")); // the default file system: the test one has no links
        String linked = rest("POST", "/_plugins/_mach/models/m-p/_register", "{\"path\": \"escape/passwd\"}", 400).toString();
        assertTrue(linked, linked.contains("must be inside the registration directory") && !linked.contains("/etc"));
        String absent = rest("POST", "/_plugins/_mach/models/m-p/_register", "{\"path\": \"" + registerDir().resolve("nope") + "\"}", 404).toString();
        assertTrue(absent, absent.contains("no bundle at [nope]"));
        Files.createDirectories(registerDir().resolve("no-card"));
        Files.write(registerDir().resolve("no-card/model.onnx"), new byte[1 << 20]);
        assertTrue(rest("POST", "/_plugins/_mach/models/m-p/_register", "{\"path\": \"no-card\"}", 400).toString().contains("no mach.json"));
        Path bomb = registerDir().resolve("bomb.zip");
        try (var out = new java.util.zip.ZipOutputStream(Files.newOutputStream(bomb))) {
            out.putNextEntry(new java.util.zip.ZipEntry("mach.json"));
            out.write(Files.readAllBytes(bundleDir().resolve("mach.json")));
            out.putNextEntry(new java.util.zip.ZipEntry("model.onnx"));
            byte[] zeros = new byte[1 << 20];
            for (int i = 0; i < 64; i++) out.write(zeros); // 64 MB of zeros: ~64 KB zipped
        }
        String bombed = rest("POST", "/_plugins/_mach/models/m-p/_register", "{\"path\": \"bomb.zip\"}", 400).toString();
        assertTrue(bombed, bombed.contains("would inflate"));
        Fixture bombFx = Fixture.of(Files.readAllBytes(bomb));
        bombed = register("m-p", bombFx.upload(), bombFx.chunks(), bombFx.sha(), 400);
        assertTrue(bombed, bombed.contains("would inflate"));
        assertFalse(MachModelsMetadata.of(clusterService().state()).models().containsKey("m-p"));

        // unknown ids and aliases
        assertTrue(rest("POST", "/_plugins/_mach/models/nope/_deploy", null, 404).toString().contains("not registered"));
        assertTrue(rest("DELETE", "/_plugins/_mach/aliases/nope", null, 404).toString().contains("does not exist"));
        rest("PUT", "/_plugins/_mach/aliases/x", "{\"model_id\": \"nope\"}", 404);
        String unknown = "{\"query\": {\"mach\": {\"model_id\": \"nope\", \"query_text\": \"sofa\", \"product_id_field\": \"product_id\"}}}";
        assertTrue(rest("POST", "/" + INDEX + "/_search", unknown, 404).toString().contains("not found"));

        // memory: a deploy beyond mach.models.memory_limit is refused with the figures
        rest("POST", "/_plugins/_mach/models/m1/_undeploy", null, 409); // the alias protects it
        rest("DELETE", "/_plugins/_mach/aliases/live", null, 200);
        rest("POST", "/_plugins/_mach/models/m1/_undeploy", null, 200);
        rest("PUT", "/_cluster/settings", "{\"persistent\": {\"mach.models.memory_limit\": \"1kb\"}}", 200);
        try {
            String refused = rest("POST", "/_plugins/_mach/models/m1/_deploy", null, 400).toString();
            assertTrue(refused, refused.contains("mach.models.memory_limit is 1kb") && refused.contains("needs"));
        } finally {
            rest("PUT", "/_cluster/settings", "{\"persistent\": {\"mach.models.memory_limit\": null}}", 200);
        }
        rest("DELETE", "/_plugins/_mach/models/m1", null, 200);
        rest("GET", "/_plugins/_mach/models/m1", null, 404);
    }

    // ------------------------------------------------------------------ failed calls change nothing

    /**
     * What a failed call must leave as it was: the registered models (records and deployed flags), the
     * aliases, and the uploads with their chunks (a path registration's leftover storage would show here
     * as an orphan).
     */
    private static String lifecycleState() throws Exception {
        JsonNode all = rest("GET", "/_plugins/_mach/models", null, 200);
        List<String> uploads = new ArrayList<>();
        for (JsonNode u : rest("GET", "/_plugins/_mach/uploads", null, 200).get("uploads")) {
            uploads.add(u.get("upload_id").asText() + " chunks " + u.get("chunks") + " bytes " + u.get("bytes") + " orphan " + u.get("orphan"));
        }
        java.util.Collections.sort(uploads);
        return "registered " + all.get("registered") + "\naliases " + all.get("aliases") + "\nuploads " + uploads;
    }

    /** The model instance each node serves {@code id} with (the same instances afterwards: nothing was reloaded). */
    private Map<String, MachModel> servedInstances(String id) {
        Map<String, MachModel> out = new java.util.TreeMap<>();
        for (String node : internalCluster().getNodeNames()) {
            MachModel m = internalCluster().getInstance(MachInferenceService.class, node).deployer().deployed(id);
            assertNotNull(id + " is served by " + node, m);
            out.put(node, m);
        }
        return out;
    }

    private static String chunkBody(byte[] data, String sha) {
        return "{\"data\": \"" + Base64.getEncoder().encodeToString(data) + "\", \"sha256\": \"" + sha + "\"}";
    }

    /**
     * Every refusal of the lifecycle endpoints over REST: its status, a message naming the field, model,
     * alias or upload, and afterwards the same registered models, aliases and uploads, the deployed
     * model served by the same instances on every node, with the same hits. Then the calls that are
     * no-ops (deploying a deployed model, undeploying one that is not, a chunk sent again) and deleting
     * a deployed model.
     */
    public void testFailedCallsLeaveEverythingAsItWas() throws Exception {
        indexProducts(INDEX, 1, 0);
        Fixture fx = Fixture.of(bundleDir());
        assertTrue("the fixture spans several chunks: " + fx.chunks(), fx.chunks() >= 3);
        BundleStore store = new BundleStore(client());
        rest("POST", "/_plugins/_mach/models/live-m/_register", "{\"path\": \"tiny\", \"deploy\": true}", 201);
        rest("POST", "/_plugins/_mach/models/idle-m/_register", "{\"path\": \"tiny\"}", 201);
        rest("PUT", "/_plugins/_mach/aliases/live", "{\"model_id\": \"live-m\"}", 200);
        String open = fx.upload(); // complete, waiting for its _register
        // a bundle that fails validation after it is extracted (its labels no longer match the card's sha256), by path and by upload
        Path broken = registerDir().resolve("broken-" + randomAlphaOfLength(6).toLowerCase(java.util.Locale.ROOT));
        Files.createDirectories(broken);
        for (Path f : (Iterable<Path>) Files.list(bundleDir())::iterator) Files.copy(f, broken.resolve(f.getFileName().toString()));
        Files.writeString(broken.resolve("labels.txt"), "extra-product\n", java.nio.file.StandardOpenOption.APPEND);
        Fixture brokenFx = Fixture.of(broken);
        String brokenUpload = brokenFx.upload();
        String liveStorage = MachModelsMetadata.of(clusterService().state()).models().get("live-m").storageId();
        byte[] first = java.util.Arrays.copyOf(fx.zip(), fx.chunkBytes());
        byte[] one = { 7 };
        String text = "crimson couch";
        List<String> want = expected(text);
        Map<String, MachModel> served = servedInstances("live-m");
        String before = lifecycleState();
        assertTrue(before, before.contains(open) && before.contains(brokenUpload) && before.contains("\"live\":\"live-m\""));

        String reg = "/_plugins/_mach/models/new-m/_register";
        String upload = "{\"upload_id\": \"" + open + "\", \"chunks\": " + fx.chunks() + ", \"sha256\": \"" + fx.sha() + "\"}";
        String[][] refused = {
            // register: an id taken (by a model, by an alias), bodies that do not add up, an upload that does not
            { "POST", "/_plugins/_mach/models/live-m/_register", "{\"path\": \"tiny\"}", "409", "model [live-m] is already registered" },
            { "POST", "/_plugins/_mach/models/live-m/_register", upload, "409", "model [live-m] is already registered" },
            { "POST", "/_plugins/_mach/models/live/_register", "{\"path\": \"tiny\", \"deploy\": true}", "409", "[live] is an alias" },
            { "POST", "/_plugins/_mach/models/new%20m/_register", "{\"path\": \"tiny\"}", "400", "invalid model id [new m]" },
            { "POST", reg, "{\"path\": \"tiny\", \"chunks\": 3}", "400", "[_register] give [path] or [upload_id] with [chunks] and [sha256], not both" },
            { "POST", reg, "{\"path\": \"tiny\", \"deploy\": 1}", "400", "[_register] [deploy] must be true or false, got a number [1]" },
            { "POST", reg, "{\"path\": \"no/such\"}", "404", "no bundle at [no/such]" },
            { "POST", reg, upload.replace("\"chunks\": " + fx.chunks(), "\"chunks\": " + (fx.chunks() - 1)), "400",
                "upload [" + open + "] holds " + fx.chunks() + " chunks but [chunks] says " + (fx.chunks() - 1) },
            { "POST", reg, upload.replace("\"chunks\": " + fx.chunks(), "\"chunks\": " + (fx.chunks() + 1)), "400",
                "the bundle is incomplete: chunk [" + fx.chunks() + "] of " + (fx.chunks() + 1) + " is missing" },
            { "POST", reg, upload.replace(fx.sha(), "0".repeat(64)), "400", "checksum mismatch" },
            { "POST", reg, "{\"path\": \"" + broken.getFileName() + "\"}", "400", "model [new-m] is not a valid bundle" },
            { "POST", reg, "{\"upload_id\": \"" + brokenUpload + "\", \"chunks\": " + brokenFx.chunks() + ", \"sha256\": \"" + brokenFx.sha()
                + "\", \"deploy\": true}", "400", "model [new-m] is not a valid bundle" },
            { "POST", reg, upload.replace(fx.sha(), "xyz"), "400", "[sha256] must be the hex SHA-256 of the whole bundle zip" },
            { "POST", reg, upload.replace(open, liveStorage), "409", "upload [" + liveStorage + "] is the stored bundle of registered model [live-m]" },
            { "POST", reg, upload.replace(open, "short"), "400", "invalid upload_id [short]" },
            // deploy, undeploy, delete: unknown models (an alias is not a model id), a model an alias protects, bad parameters
            { "POST", "/_plugins/_mach/models/nope/_deploy", null, "404", "model [nope] is not registered" },
            { "POST", "/_plugins/_mach/models/nope/_deploy?wait_for_completion=false", null, "404", "model [nope] is not registered" },
            { "POST", "/_plugins/_mach/models/live-m/_deploy?wait_for_completion=maybe", null, "400", "[_deploy] [wait_for_completion] must be true or false, got [maybe]" },
            { "POST", "/_plugins/_mach/models/live-m/_deploy?timeout=soon", null, "400", "[_deploy] [timeout] must be a time value such as 2m, got [soon]" },
            { "POST", "/_plugins/_mach/models/nope/_undeploy", null, "404", "model [nope] is not registered" },
            { "POST", "/_plugins/_mach/models/live/_undeploy", null, "404", "model [live] is not registered" },
            { "DELETE", "/_plugins/_mach/models/nope", null, "404", "model [nope] is not registered" },
            { "DELETE", "/_plugins/_mach/models/live", null, "404", "model [live] is not registered" },
            { "POST", "/_plugins/_mach/models/live-m/_undeploy", null, "409", "cannot undeploy model [live-m]: alias [live] points to it" },
            { "DELETE", "/_plugins/_mach/models/live-m", null, "409", "cannot delete model [live-m]: alias [live] points to it" },
            // aliases
            { "PUT", "/_plugins/_mach/aliases/live", "{\"model_id\": \"idle-m\"}", "409", "model [idle-m] is not deployed" },
            { "PUT", "/_plugins/_mach/aliases/live", "{\"model_id\": \"nope\"}", "404", "model [nope] is not registered" },
            { "PUT", "/_plugins/_mach/aliases/live", "{\"model_id\": null}", "400", "[alias] [model_id] must be a string, got null" },
            { "PUT", "/_plugins/_mach/aliases/idle-m", "{\"model_id\": \"live-m\"}", "409", "[idle-m] is a model id" },
            { "PUT", "/_plugins/_mach/aliases/bad%20alias", "{\"model_id\": \"live-m\"}", "400", "invalid alias [bad alias]" },
            { "DELETE", "/_plugins/_mach/aliases/nope", null, "404", "alias [nope] does not exist" },
            // chunks: other bytes under a stored chunk, numbers out of range, an empty or corrupt chunk, bad or taken upload ids
            { "PUT", "/_plugins/_mach/uploads/" + open + "/0", chunkBody(one, BundleStore.sha256(one)), "409",
                "chunk [0] of upload [" + open + "] is already stored with other bytes" },
            { "PUT", "/_plugins/_mach/uploads/" + open + "/10000", chunkBody(one, BundleStore.sha256(one)), "400", "chunk number must be between 0 and 9999, got [10000]" },
            { "PUT", "/_plugins/_mach/uploads/" + open + "/-1", chunkBody(one, BundleStore.sha256(one)), "400", "chunk number must be between 0 and 9999, got [-1]" },
            { "PUT", "/_plugins/_mach/uploads/" + open + "/x", chunkBody(one, BundleStore.sha256(one)), "400", "chunk number must be an integer, got [x]" },
            { "PUT", "/_plugins/_mach/uploads/" + open + "/" + fx.chunks(), chunkBody(new byte[0], BundleStore.sha256(new byte[0])), "400", "a chunk must hold 1 to" },
            { "PUT", "/_plugins/_mach/uploads/" + open + "/" + fx.chunks(), chunkBody(one, "0".repeat(64)), "400", "chunk [" + fx.chunks() + "] is corrupt" },
            { "PUT", "/_plugins/_mach/uploads/" + open + "/" + fx.chunks(), "{\"data\": \"AAAA\"}", "400", "[chunk] needs [sha256]" },
            { "PUT", "/_plugins/_mach/uploads/short/0", chunkBody(one, BundleStore.sha256(one)), "400", "invalid upload_id [short]" },
            { "PUT", "/_plugins/_mach/uploads/" + liveStorage + "/0", chunkBody(one, BundleStore.sha256(one)), "409",
                "upload [" + liveStorage + "] is the stored bundle of registered model [live-m]" },
            { "DELETE", "/_plugins/_mach/uploads/short", null, "400", "invalid upload_id [short]" },
            { "DELETE", "/_plugins/_mach/uploads/" + liveStorage, null, "409", "upload [" + liveStorage + "] belongs to model [live-m]; delete the model" },
            // _predict and GET
            { "POST", "/_plugins/_mach/models/nope/_predict", "{\"query_text\": \"sofa\"}", "404", "model [nope] not found" },
            { "POST", "/_plugins/_mach/models/idle-m/_predict", "{\"query_text\": \"sofa\"}", "409", "model [idle-m] is registered but not deployed" },
            { "POST", "/_plugins/_mach/models/live/_predict", "{\"query_text\": \"sofa\", \"top_n\": 0}", "400", "[_predict] [top_n] must be between 1 and 10000, got [0]" },
            { "POST", "/_plugins/_mach/models/live/_predict", null, "400", "[_predict] needs a JSON body" },
            { "POST", "/_plugins/_mach/models/live/_predict", "{\"query_text\": \"sofa\", \"min_repetitions\": 5}", "400", "min_repetitions" },
            { "GET", "/_plugins/_mach/models/nope", null, "404", "model [nope] not found" } };
        for (String[] r : refused) {
            String call = r[0] + " " + r[1] + " " + (r[2] == null ? "" : r[2].substring(0, Math.min(100, r[2].length())));
            JsonNode error = rest(r[0], r[1], r[2], Integer.parseInt(r[3])).get("error");
            String reason = error.get("reason").asText();
            assertTrue(call + " -> " + error, reason.contains(r[4]));
            assertEquals("after " + call, before, lifecycleState());
        }
        // over real HTTP too: bytes that are not text in the encoding the parser detects, anything after the body's object
        for (String path : List.of(reg, "/_plugins/_mach/uploads/" + open + "/" + fx.chunks(), "/_plugins/_mach/aliases/live")) {
            String method = path.endsWith("_register") ? "POST" : "PUT";
            org.opensearch.client.Request raw = new org.opensearch.client.Request(method, path);
            raw.setEntity(new org.apache.hc.core5.http.io.entity.ByteArrayEntity(new byte[] { 0, 0, 0, '{', 0, 0, 0 },
                org.apache.hc.core5.http.ContentType.APPLICATION_JSON));
            org.opensearch.client.Response resp;
            try {
                resp = getRestClient().performRequest(raw);
            } catch (org.opensearch.client.ResponseException e) {
                resp = e.getResponse();
            }
            String answer = org.apache.hc.core5.http.io.entity.EntityUtils.toString(resp.getEntity());
            assertEquals(path + " " + answer, 400, resp.getStatusLine().getStatusCode());
            assertTrue(path + " " + answer, answer.contains("is not valid JSON"));
            String body = path.endsWith("_register") ? "{\"path\": \"tiny\"}" : path.contains("aliases") ? "{\"model_id\": \"live-m\"}"
                : chunkBody(one, BundleStore.sha256(one));
            assertTrue(rest(method, path, body + " {}", 400).toString().contains("must be one JSON object, with nothing after it"));
            assertEquals("after " + path, before, lifecycleState());
        }
        assertTrue("chunk 0 kept its bytes", rest("PUT", "/_plugins/_mach/uploads/" + open + "/0", chunkBody(first, BundleStore.sha256(first)), 200)
            .get("bytes").asInt() == fx.chunkBytes());
        assertEquals(fx.chunks(), store.countChunks(open));
        for (String node : internalCluster().getNodeNames()) {
            assertEquals("served by " + node, want, search(node, "live", "product_id", text));
        }
        assertEquals("not reloaded", served, servedInstances("live-m"));

        // no-ops: deploying a deployed model (not reloaded), undeploying one that is not deployed
        JsonNode again = rest("POST", "/_plugins/_mach/models/live-m/_deploy", null, 200);
        assertEquals(again.toString(), "deployed", again.get("state").asText());
        assertEquals(again.toString(), 2, again.get("nodes").size());
        JsonNode idle = rest("POST", "/_plugins/_mach/models/idle-m/_undeploy", null, 200);
        assertFalse(idle.toString(), idle.get("deployed").asBoolean());
        assertEquals(before, lifecycleState());
        assertEquals("not reloaded", served, servedInstances("live-m"));

        // the chunks may come in any order: the open upload registers, and so does one sent last chunk first
        String reversed = rest("POST", "/_plugins/_mach/uploads", null, 200).get("upload_id").asText();
        for (int i = fx.chunks() - 1; i >= 0; i--) {
            byte[] c = java.util.Arrays.copyOfRange(fx.zip(), i * fx.chunkBytes(), Math.min(fx.zip().length, (i + 1) * fx.chunkBytes()));
            rest("PUT", "/_plugins/_mach/uploads/" + reversed + "/" + i, chunkBody(c, BundleStore.sha256(c)), 200);
        }
        rest("POST", "/_plugins/_mach/models/rev-m/_register", upload.replace(open, reversed).replace("}", ", \"deploy\": true}"), 201);
        assertEquals(want, search(anyNode(), "rev-m", "product_id", text));

        // deleting a deployed model (no alias on it): every node releases it, its bundle is deleted; the others keep serving
        String revStorage = MachModelsMetadata.of(clusterService().state()).models().get("rev-m").storageId();
        assertEquals(reversed, revStorage);
        rest("DELETE", "/_plugins/_mach/models/rev-m", null, 200);
        assertFalse(store.holdsAnything(revStorage));
        assertBusy(() -> {
            for (String node : internalCluster().getNodeNames()) {
                assertNull(node, internalCluster().getInstance(MachInferenceService.class, node).deployer().deployed("rev-m"));
            }
        });
        assertTrue(rest("POST", "/_plugins/_mach/models/rev-m/_predict", "{\"query_text\": \"sofa\"}", 404).toString().contains("model [rev-m] not found"));
        assertEquals(before, lifecycleState());
        assertEquals("not reloaded", served, servedInstances("live-m"));
        for (String node : internalCluster().getNodeNames()) assertEquals("served by " + node, want, search(node, "live", "product_id", text));

        // nothing left in the nodes' temporary directories but the labels file of the deployed model
        assertBusy(() -> {
            for (String node : internalCluster().getNodeNames()) {
                List<Path> left = filesUnder(tmpDir(node));
                assertEquals(node + ": " + left, 1, left.size());
                assertTrue(node + ": " + left, left.get(0).getFileName().toString().matches("live-m-.*\\.labels\\.txt"));
            }
        });
    }

    /**
     * Registers of one id racing each other (two from the path, two from complete uploads, through both
     * nodes, released together): exactly one wins, the others are a 409 naming the model (refused early or
     * by the cluster manager, which applies one register at a time), the losing uploads keep all their
     * chunks for a retry, and a losing path registration leaves no storage behind. Then a register with
     * {@code "deploy": true} whose deploy is refused: the error says the model is registered (and it
     * is, not deployed), and the deployed model keeps serving with the same instances.
     */
    public void testConcurrentRegistersOfOneId() throws Exception {
        indexProducts(INDEX, 1, 0);
        Fixture fx = Fixture.of(bundleDir());
        List<ModelLifecycleService.Source> sources = List.of(
            ModelLifecycleService.Source.path("tiny"),
            ModelLifecycleService.Source.upload(fx.upload(), fx.chunks(), fx.sha()),
            ModelLifecycleService.Source.path("tiny"),
            ModelLifecycleService.Source.upload(fx.upload(), fx.chunks(), fx.sha())
        );
        String[] nodes = internalCluster().getNodeNames();
        List<java.util.concurrent.Callable<Object>> registers = new ArrayList<>();
        for (int i = 0; i < sources.size(); i++) {
            ModelLifecycleService service = internalCluster().getInstance(ModelLifecycleService.class, nodes[i % nodes.length]);
            registers.add(registerCall(service, "race", sources.get(i)));
        }
        Object[] outcome = race(registers);
        int won = -1;
        for (int i = 0; i < outcome.length; i++) {
            if (outcome[i] instanceof Map<?, ?> m) {
                assertEquals("one winner: " + java.util.Arrays.toString(outcome), -1, won);
                assertEquals(m.toString(), "registered", m.get("state"));
                won = i;
            } else {
                Throwable cause = org.opensearch.ExceptionsHelper.unwrapCause((Exception) outcome[i]);
                assertEquals(cause.toString(), org.opensearch.core.rest.RestStatus.CONFLICT, org.opensearch.ExceptionsHelper.status(cause));
                assertTrue(cause.toString(), cause.getMessage().contains("model [race] is already registered"));
            }
        }
        assertTrue("one winner: " + java.util.Arrays.toString(outcome), won >= 0);
        String storage = MachModelsMetadata.of(clusterService().state()).models().get("race").storageId();
        if (sources.get(won).uploadId() != null) assertEquals(sources.get(won).uploadId(), storage);
        BundleStore store = new BundleStore(client());
        // the winner's chunks: the upload's, or the path registration's own (4 MB each)
        int stored = MachModelsMetadata.of(clusterService().state()).models().get("race").chunks();
        assertEquals(sources.get(won).uploadId() != null ? fx.chunks() : 1, stored);
        assertEquals(stored, store.countChunks(storage));
        Map<String, JsonNode> listed = new java.util.HashMap<>();
        rest("GET", "/_plugins/_mach/uploads", null, 200).get("uploads").forEach(u -> listed.put(u.get("upload_id").asText(), u));
        for (ModelLifecycleService.Source source : sources) {
            if (source.uploadId() == null || source.uploadId().equals(storage)) continue;
            JsonNode u = listed.remove(source.uploadId());
            assertNotNull("the losing upload is kept: " + listed, u);
            assertEquals(u.toString(), fx.chunks(), u.get("chunks").asInt());
            assertEquals(u.toString(), fx.zip().length, u.get("bytes").asLong());
        }
        assertEquals("no storage left by a losing path registration", Map.of(), listed);
        assertEquals(1, MachModelsMetadata.of(clusterService().state()).models().size());

        // a timeout too long for System.nanoTime arithmetic still waits for every node (it answered "deploying" at once)
        JsonNode deployed = rest("POST", "/_plugins/_mach/models/race/_deploy?timeout=365000d", null, 200);
        assertEquals(deployed.toString(), "deployed", deployed.get("state").asText());

        // "deploy": true whose deploy the memory limit refuses: the register stands, the answer says so
        Map<String, MachModel> served = servedInstances("race");
        long network = MachModelsMetadata.of(clusterService().state()).models().get("race").memoryBytes();
        rest("PUT", "/_cluster/settings", "{\"persistent\": {\"mach.models.memory_limit\": \"" + network + "b\"}}", 200);
        try {
            String refused = rest("POST", "/_plugins/_mach/models/over/_register", "{\"path\": \"tiny\", \"deploy\": true}", 400).toString();
            assertTrue(refused, refused.contains("model [over] is registered, but deploying it failed: cannot deploy model [over]")
                && refused.contains("mach.models.memory_limit is"));
        } finally {
            rest("PUT", "/_cluster/settings", "{\"persistent\": {\"mach.models.memory_limit\": null}}", 200);
        }
        JsonNode over = rest("GET", "/_plugins/_mach/models/over", null, 200);
        assertFalse(over.toString(), over.get("deployed").asBoolean());
        for (JsonNode n : over.get("nodes")) assertEquals(over.toString(), "not_deployed", n.get("state").asText());
        assertEquals("not reloaded", served, servedInstances("race"));
        List<String> want = expected("crimson couch");
        for (String node : nodes) assertEquals("served by " + node, want, search(node, "race", "product_id", "crimson couch"));
    }

    /** Runs each call on its own thread, released together; returns what each returned or threw. */
    /** Registers {@code source} as model {@code id} through {@code service}, not deployed: the response (or its exception). */
    private static Map<String, Object> register(ModelLifecycleService service, String id, ModelLifecycleService.Source source) {
        PlainActionFuture<Map<String, Object>> f = PlainActionFuture.newFuture();
        service.register(id, source, false, f);
        return f.actionGet(TimeValue.timeValueMinutes(2));
    }

    /** {@link #register} as a racer of {@link #race}. */
    private static java.util.concurrent.Callable<Object> registerCall(ModelLifecycleService service, String id, ModelLifecycleService.Source source) {
        return () -> register(service, id, source);
    }

    private static Object[] race(List<java.util.concurrent.Callable<Object>> calls) throws Exception {
        java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(calls.size());
        Object[] outcome = new Object[calls.size()];
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < calls.size(); i++) {
            int racer = i;
            Thread t = new Thread(() -> {
                try {
                    start.await();
                    outcome[racer] = calls.get(racer).call();
                } catch (Exception e) {
                    outcome[racer] = e;
                }
            }, "racer-" + i);
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) t.join();
        return outcome;
    }

    private static org.opensearch.core.rest.RestStatus statusOf(Object outcome) {
        assertTrue(String.valueOf(outcome), outcome instanceof Exception);
        return org.opensearch.ExceptionsHelper.status(org.opensearch.ExceptionsHelper.unwrapCause((Exception) outcome));
    }

    /**
     * One chunk sent several times at once with the same bytes is stored once (every call answers as a
     * retry would); sent at once with other bytes, one is stored and the other is a 409. One complete
     * upload registered at once under two ids: one model gets it, the other call is a 409 and registers
     * nothing; the chunks stay the winner's.
     */
    public void testConcurrentChunksAndRegistersOfOneUpload() throws Exception {
        Fixture fx = Fixture.of(bundleDir());
        String[] nodes = internalCluster().getNodeNames();
        BundleStore store = new BundleStore(client());

        String uploadId = lifecycle().createUpload();
        byte[] first = java.util.Arrays.copyOf(fx.zip(), fx.chunkBytes());
        List<java.util.concurrent.Callable<Object>> same = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            ModelLifecycleService service = internalCluster().getInstance(ModelLifecycleService.class, nodes[i % nodes.length]);
            same.add(() -> {
                service.putChunk(uploadId, 0, ChunkBytes.of(first), BundleStore.sha256(first));
                return "stored";
            });
        }
        assertEquals(List.of("stored", "stored", "stored", "stored"), java.util.Arrays.asList(race(same)));
        assertEquals(1, store.countChunks(uploadId));

        byte[] second = java.util.Arrays.copyOfRange(fx.zip(), fx.chunkBytes(), 2 * fx.chunkBytes());
        byte[] wrong = second.clone();
        wrong[0] ^= 1;
        List<java.util.concurrent.Callable<Object>> different = new ArrayList<>();
        for (byte[] bytes : List.of(second, wrong)) {
            ModelLifecycleService service = internalCluster().getInstance(ModelLifecycleService.class, nodes[different.size() % nodes.length]);
            different.add(() -> {
                service.putChunk(uploadId, 1, ChunkBytes.of(bytes), BundleStore.sha256(bytes));
                return bytes;
            });
        }
        Object[] outcome = race(different);
        int stored = outcome[0] instanceof byte[] ? 0 : 1;
        assertTrue(java.util.Arrays.toString(outcome), outcome[stored] instanceof byte[]);
        assertEquals(org.opensearch.core.rest.RestStatus.CONFLICT, statusOf(outcome[1 - stored]));
        assertTrue(outcome[1 - stored].toString(), ((Exception) outcome[1 - stored]).getMessage().contains("chunk [1] of upload [" + uploadId + "] is already stored with other bytes"));
        if (stored == 1) { // the damaged copy won: start again, as the 409 says
            rest("DELETE", "/_plugins/_mach/uploads/" + uploadId, null, 200);
            rest("GET", "/_plugins/_mach/uploads", null, 200); // (listed no more)
        }
        String complete = stored == 0 ? uploadId : fx.upload();
        if (stored == 0) {
            for (int i = 2; i < fx.chunks(); i++) {
                byte[] c = java.util.Arrays.copyOfRange(fx.zip(), i * fx.chunkBytes(), Math.min(fx.zip().length, (i + 1) * fx.chunkBytes()));
                lifecycle().putChunk(complete, i, ChunkBytes.of(c), BundleStore.sha256(c));
            }
        }

        // one upload, two ids at once: one model owns it
        List<java.util.concurrent.Callable<Object>> registers = new ArrayList<>();
        for (String id : List.of("one-a", "one-b")) {
            ModelLifecycleService service = internalCluster().getInstance(ModelLifecycleService.class, nodes[registers.size() % nodes.length]);
            registers.add(registerCall(service, id, ModelLifecycleService.Source.upload(complete, fx.chunks(), fx.sha())));
        }
        outcome = race(registers);
        int won = outcome[0] instanceof Map ? 0 : 1;
        assertTrue(java.util.Arrays.toString(outcome), outcome[won] instanceof Map);
        String winner = won == 0 ? "one-a" : "one-b";
        assertEquals(org.opensearch.core.rest.RestStatus.CONFLICT, statusOf(outcome[1 - won]));
        String refusal = org.opensearch.ExceptionsHelper.unwrapCause((Exception) outcome[1 - won]).getMessage();
        // refused by the cluster manager, or early when the winner had already committed
        assertTrue(refusal, refusal.contains("upload [" + complete + "] is already registered as model [" + winner + "]")
            || refusal.contains("upload [" + complete + "] belongs to model [" + winner + "]") // claimed by the winner's register
            || refusal.contains("upload [" + complete + "] is the stored bundle of registered model [" + winner + "]"));
        MachModelsMetadata m = MachModelsMetadata.of(clusterService().state());
        assertEquals(m.models().keySet().toString(), java.util.Set.of(winner), m.models().keySet());
        assertEquals(complete, m.models().get(winner).storageId());
        assertEquals(fx.chunks(), store.countChunks(complete));
        assertFalse("the model's chunks are no upload", rest("GET", "/_plugins/_mach/uploads", null, 200).toString().contains(complete));
    }

    /**
     * DELETE of an upload and its register, each driven inside the other's window (a test hook between the
     * check and the write; no sleeps): exactly one wins. DELETE after the register's claim (just before its
     * commit): 409 naming the model, which registers with its whole bundle and deploys. DELETE just before
     * the claim: it wins, the register is a 409 ("was deleted") and nothing is registered or stored. A
     * register inside a DELETE that has checked but not yet deleted the record: the register wins, the DELETE
     * is a 409; a register once the record is deleted is refused. Then a claim whose node left the cluster
     * does not block a DELETE.
     */
    public void testDeleteOfAnUploadDuringItsRegister() throws Exception {
        indexProducts(INDEX, 1, 0);
        Fixture fx = Fixture.of(bundleDir());
        String[] nodes = internalCluster().getNodeNames();
        ModelLifecycleService first = internalCluster().getInstance(ModelLifecycleService.class, nodes[0]);
        ModelLifecycleService second = internalCluster().getInstance(ModelLifecycleService.class, nodes[1]);
        BundleStore store = new BundleStore(client());
        List<String> want = expected("crimson couch");

        // 1. DELETE after the register claimed the upload, before it commits: the DELETE is refused
        String u1 = fx.upload();
        List<Object> inWindow = new CopyOnWriteArrayList<>();
        setTestHook(first, once("register:before-commit", () -> inWindow.add(done(() -> second.deleteUpload(u1)))));
        Map<String, Object> registered = fx.register(first, "claimed", u1);
        assertEquals(registered.toString(), "registered", registered.get("state"));
        assertEquals("the hook ran", 1, inWindow.size());
        assertEquals("the bundle is whole", fx.chunks(), store.countChunks(u1));
        assertEquals(inWindow.toString(), org.opensearch.core.rest.RestStatus.CONFLICT, statusOf(inWindow.get(0)));
        assertTrue(inWindow.toString(), ((Exception) inWindow.get(0)).getMessage().contains("upload [" + u1 + "] belongs to model [claimed]"));
        assertDeployedOnEveryNode(deploy("claimed"), nodes.length);
        for (String node : nodes) assertEquals("served by " + node, want, search(node, "claimed", "product_id", "crimson couch"));

        // 2. DELETE after the register's checks, before its claim: the DELETE wins, the register is refused
        String u2 = fx.upload();
        inWindow.clear();
        setTestHook(first, once("register:before-claim", () -> inWindow.add(done(() -> second.deleteUpload(u2)))));
        Object refused = outcome(() -> fx.register(first, "too-late", u2));
        assertEquals(List.of("done"), inWindow);
        assertEquals(String.valueOf(refused), org.opensearch.core.rest.RestStatus.CONFLICT, statusOf(refused));
        assertTrue(refused.toString(), ((Exception) refused).getMessage().contains("upload [" + u2 + "] was deleted"));
        assertNull(MachModelsMetadata.of(clusterService().state()).models().get("too-late"));
        assertFalse("nothing stored", store.holdsAnything(u2));

        // 3. a register inside a DELETE that checked the record but has not deleted it: the register wins
        String u3 = fx.upload();
        inWindow.clear();
        setTestHook(second, once("delete:before-record-delete", () -> inWindow.add(outcome(() -> fx.register(first, "first-in", u3)))));
        Object deleted = done(() -> second.deleteUpload(u3));
        assertEquals(inWindow.toString(), 1, inWindow.size());
        assertTrue(inWindow.toString(), inWindow.get(0) instanceof Map);
        assertEquals(String.valueOf(deleted), org.opensearch.core.rest.RestStatus.CONFLICT, statusOf(deleted));
        assertTrue(deleted.toString(), ((Exception) deleted).getMessage().contains("upload [" + u3 + "] belongs to model [first-in]"));
        assertEquals("the bundle is whole", fx.chunks(), store.countChunks(u3));
        assertDeployedOnEveryNode(deploy("first-in"), nodes.length);
        for (String node : nodes) assertEquals("served by " + node, want, search(node, "first-in", "product_id", "crimson couch"));

        // 4. a register once the DELETE deleted the record, before it deletes the chunks: refused
        String u4 = fx.upload();
        inWindow.clear();
        setTestHook(second, once("delete:before-chunks-delete", () -> inWindow.add(outcome(() -> fx.register(first, "after-delete", u4)))));
        assertEquals("done", done(() -> second.deleteUpload(u4)));
        assertEquals(inWindow.toString(), 1, inWindow.size());
        assertEquals(inWindow.toString(), org.opensearch.core.rest.RestStatus.NOT_FOUND, statusOf(inWindow.get(0)));
        assertTrue(inWindow.toString(), ((Exception) inWindow.get(0)).getMessage().contains("upload [" + u4 + "] does not exist"));
        assertNull(MachModelsMetadata.of(clusterService().state()).models().get("after-delete"));
        assertFalse("nothing stored", store.holdsAnything(u4));
        setTestHook(first, phase -> {});
        setTestHook(second, phase -> {});

        // 5. a claim whose node is gone (it died mid-register) blocks nothing: the upload can be deleted
        String u5 = fx.upload();
        BundleStore.UploadRecord record = store.readUpload(u5);
        assertNotNull(store.writeClaim(record, "lost", "no-such-node", System.currentTimeMillis()));
        assertEquals("done", done(() -> second.deleteUpload(u5)));
        assertFalse("nothing stored", store.holdsAnything(u5));

        // 6. a path registration's storage is claimed the same way: a DELETE of it before the commit is refused
        inWindow.clear();
        setTestHook(first, once("register:before-commit", () -> {
            for (BundleStore.Stored st : store.list()) {
                if (st.storageId().startsWith("path-")) inWindow.add(st.storageId());
            }
            inWindow.add(done(() -> second.deleteUpload((String) inWindow.get(0))));
        }));
        assertEquals("registered", register(first, "by-path", ModelLifecycleService.Source.path("tiny")).get("state"));
        setTestHook(first, phase -> {});
        assertEquals(inWindow.toString(), 2, inWindow.size());
        String pathStorage = (String) inWindow.get(0);
        assertEquals(inWindow.toString(), org.opensearch.core.rest.RestStatus.CONFLICT, statusOf(inWindow.get(1)));
        assertTrue(inWindow.toString(), ((Exception) inWindow.get(1)).getMessage().contains("upload [" + pathStorage + "] belongs to model [by-path]"));
        assertEquals(pathStorage, MachModelsMetadata.of(clusterService().state()).models().get("by-path").storageId());
        assertDeployedOnEveryNode(deploy("by-path"), nodes.length);
        for (String node : nodes) assertEquals("served by " + node, want, search(node, "by-path", "product_id", "crimson couch"));

        // 7. what a path registration whose node died leaves (its claim stale) is listed as an orphan, and deleted
        byte[] some = java.util.Arrays.copyOf(fx.zip(), 1000);
        store.createUpload("path-leftover-1", "lost", "no-such-node", System.currentTimeMillis());
        store.putChunk("path-leftover-1", 0, ChunkBytes.of(some), BundleStore.sha256(some));
        JsonNode listed = null;
        for (JsonNode u : rest("GET", "/_plugins/_mach/uploads", null, 200).get("uploads")) {
            if (u.get("upload_id").asText().equals("path-leftover-1")) listed = u;
        }
        assertNotNull(listed);
        assertTrue(listed.toString(), listed.get("orphan").asBoolean());
        rest("DELETE", "/_plugins/_mach/uploads/path-leftover-1", null, 200);
        assertFalse("nothing stored", store.holdsAnything("path-leftover-1"));
        assertEquals(java.util.Set.of("claimed", "first-in", "by-path"), MachModelsMetadata.of(clusterService().state()).models().keySet());
    }

    /**
     * A claim older than mach.models.claim_expiry whose model is not registered is stale even while its node
     * is in the cluster (what a failed release leaves); the clocks are moved, no sleeps. A leaked claim of a live
     * node just past the bound does not block a DELETE; one just under it, or fresh, does. A register whose
     * claim expired during its read and was taken over (by a DELETE, by another register, or its path storage
     * by a DELETE) is a 409 at its commit, with nothing registered, and leaves what the other call made alone.
     */
    public void testAnExpiredClaimIsTakenOver() throws Exception {
        indexProducts(INDEX, 1, 0);
        Fixture fx = Fixture.of(bundleDir());
        String[] nodes = internalCluster().getNodeNames();
        ModelLifecycleService first = internalCluster().getInstance(ModelLifecycleService.class, nodes[0]);
        ModelLifecycleService second = internalCluster().getInstance(ModelLifecycleService.class, nodes[1]);
        String firstNode = internalCluster().clusterService(nodes[0]).localNode().getEphemeralId();
        long expiry = org.opensearch.mach.MachPlugin.CLAIM_EXPIRY.get(org.opensearch.common.settings.Settings.EMPTY).millis();
        assertEquals("the default", TimeValue.timeValueHours(1).millis(), expiry);
        BundleStore store = new BundleStore(client());
        List<String> want = expected("crimson couch");
        long now = System.currentTimeMillis();

        // 1. a claim of a live node whose release failed: fresh or just under the bound it blocks a DELETE, past it not
        String leaked = fx.upload();
        for (long age : new long[] { 0, expiry - 60_000 }) {
            assertNotNull(store.writeClaim(store.readUpload(leaked), "leaked", firstNode, now - age));
            Object refused = done(() -> second.deleteUpload(leaked));
            assertEquals("age " + age + ": " + refused, org.opensearch.core.rest.RestStatus.CONFLICT, statusOf(refused));
            assertTrue(refused.toString(), ((Exception) refused).getMessage().contains("upload [" + leaked + "] belongs to model [leaked]"));
            assertEquals("kept", fx.chunks(), store.countChunks(leaked));
        }
        assertNotNull(store.writeClaim(store.readUpload(leaked), "leaked", firstNode, now - expiry - 60_000));
        assertEquals("done", done(() -> second.deleteUpload(leaked)));
        assertFalse("nothing stored", store.holdsAnything(leaked));
        assertNull(store.readUpload(leaked));

        // 2. a register whose claim expired before its commit, the upload deleted meanwhile: 409, nothing registered
        String u1 = fx.upload();
        List<Object> inWindow = new CopyOnWriteArrayList<>();
        setTestHook(first, expiredDeleteAt("register:before-commit", second, u1, inWindow));
        try {
            Object refused = outcome(() -> fx.register(first, "expired", u1));
            assertEquals(List.of("done"), inWindow);
            assertEquals(String.valueOf(refused), org.opensearch.core.rest.RestStatus.CONFLICT, statusOf(refused));
            assertTrue(refused.toString(), ((Exception) refused).getMessage().contains("upload [" + u1 + "] was taken over"));
            assertNull(MachModelsMetadata.of(clusterService().state()).models().get("expired"));
            assertFalse("nothing stored", store.holdsAnything(u1));
        } finally {
            setTestHook(first, phase -> {});
            setClock(second, System::currentTimeMillis);
        }

        // 3. a register whose claim expired before its commit, another register took the upload over: the other
        // registers with the whole bundle and serves, this one is a 409 and touches neither its claim nor its chunks
        String u2 = fx.upload();
        inWindow.clear();
        setTestHook(first, once("register:before-commit", () -> {
            setClock(second, () -> System.currentTimeMillis() + expiry + 60_000);
            inWindow.add(outcome(() -> fx.register(second, "taker", u2)));
        }));
        try {
            Object refused = outcome(() -> fx.register(first, "overtaken", u2));
            assertEquals(inWindow.toString(), 1, inWindow.size());
            assertTrue(inWindow.toString(), inWindow.get(0) instanceof Map);
            assertEquals(String.valueOf(refused), org.opensearch.core.rest.RestStatus.CONFLICT, statusOf(refused));
            assertTrue(refused.toString(), ((Exception) refused).getMessage().contains("upload [" + u2 + "] was taken over"));
        } finally {
            setTestHook(first, phase -> {});
            setClock(second, System::currentTimeMillis);
        }
        assertNull(MachModelsMetadata.of(clusterService().state()).models().get("overtaken"));
        assertEquals(u2, MachModelsMetadata.of(clusterService().state()).models().get("taker").storageId());
        assertEquals("the bundle is whole", fx.chunks(), store.countChunks(u2));
        assertEquals("the taker's claim stays", "taker", store.readUpload(u2).model());
        assertDeployedOnEveryNode(deploy("taker"), nodes.length);
        for (String node : nodes) assertEquals("served by " + node, want, search(node, "taker", "product_id", "crimson couch"));
        // an old claim of a registered model is no expired claim: its upload stays the model's
        setClock(second, () -> System.currentTimeMillis() + expiry + 60_000);
        try {
            Object refused = done(() -> second.deleteUpload(u2));
            assertEquals(String.valueOf(refused), org.opensearch.core.rest.RestStatus.CONFLICT, statusOf(refused));
        } finally {
            setClock(second, System::currentTimeMillis);
        }
        assertEquals(fx.chunks(), store.countChunks(u2));

        // 4. a path registration whose claim expired before its commit, its storage deleted meanwhile: 409, nothing left
        inWindow.clear();
        setTestHook(first, once("register:before-commit", () -> {
            for (BundleStore.Stored st : store.list()) {
                if (st.storageId().startsWith("path-")) inWindow.add(st.storageId());
            }
            setClock(second, () -> System.currentTimeMillis() + expiry + 60_000);
            inWindow.add(done(() -> second.deleteUpload((String) inWindow.get(0))));
        }));
        try {
            Object refused = outcome(() -> register(first, "late-path", ModelLifecycleService.Source.path("tiny")));
            assertEquals(inWindow.toString(), List.of(inWindow.get(0), "done"), inWindow);
            assertEquals(String.valueOf(refused), org.opensearch.core.rest.RestStatus.CONFLICT, statusOf(refused));
            assertTrue(refused.toString(), ((Exception) refused).getMessage().contains("was taken over"));
            assertFalse("nothing stored", store.holdsAnything((String) inWindow.get(0)));
        } finally {
            setTestHook(first, phase -> {});
            setClock(second, System::currentTimeMillis);
        }
        assertEquals(java.util.Set.of("taker"), MachModelsMetadata.of(clusterService().state()).models().keySet());
    }

    /**
     * A DELETE that takes an upload over while its register reads the chunks (the register's claim expired; the
     * DELETE's clock is moved, no sleeps): the register then finds chunks missing, which is the DELETE's doing,
     * not a bad upload: a 409 naming upload and model ("deleted while registering"), not the 400 of an
     * incomplete bundle; nothing registered, nothing stored, no claim written back, no temporary file left.
     */
    public void testADeleteWhileItsRegisterReadsTheChunksIsAConflict() throws Exception {
        Fixture fx = Fixture.of(bundleDir());
        String[] nodes = internalCluster().getNodeNames();
        ModelLifecycleService first = internalCluster().getInstance(ModelLifecycleService.class, nodes[0]);
        ModelLifecycleService second = internalCluster().getInstance(ModelLifecycleService.class, nodes[1]);
        BundleStore store = new BundleStore(client());
        String u = fx.upload();
        List<Object> inWindow = new CopyOnWriteArrayList<>();
        setTestHook(first, expiredDeleteAt("register:before-read", second, u, inWindow));
        try {
            Object refused = outcome(() -> fx.register(first, "read-away", u));
            assertEquals("the DELETE ran inside the read and won", List.of("done"), inWindow);
            assertEquals(String.valueOf(refused), org.opensearch.core.rest.RestStatus.CONFLICT, statusOf(refused));
            String message = ((Exception) refused).getMessage();
            assertTrue(message, message.contains("upload [" + u + "] was taken over: deleted while registering model [read-away]"));
            assertTrue(message, message.contains("model [read-away] is not registered"));
        } finally {
            setTestHook(first, phase -> {});
            setClock(second, System::currentTimeMillis);
        }
        assertNull(MachModelsMetadata.of(clusterService().state()).models().get("read-away"));
        assertFalse("nothing stored", store.holdsAnything(u));
        assertNull("the failed register wrote no claim back", store.readUpload(u));
        for (String node : nodes) assertEquals(node, List.of(), filesUnder(tmpDir(node)));
    }

    /**
     * A test hook that, the first time {@code phase} is reached, moves {@code deleter}'s clock past the default
     * claim expiry and DELETEs {@code uploadId} through it; the DELETE's outcome goes to {@code outcomes}.
     */
    private static java.util.function.Consumer<String> expiredDeleteAt(
        String phase, ModelLifecycleService deleter, String uploadId, List<Object> outcomes
    ) {
        long expiry = org.opensearch.mach.MachPlugin.CLAIM_EXPIRY.get(Settings.EMPTY).millis();
        return once(phase, () -> {
            setClock(deleter, () -> System.currentTimeMillis() + expiry + 60_000);
            outcomes.add(done(() -> deleter.deleteUpload(uploadId)));
        });
    }

    /** What a call returned ("done" for a void one), or the exception it threw. */
    private static Object outcome(java.util.concurrent.Callable<Object> call) {
        try {
            Object r = call.call();
            return r == null ? "done" : r;
        } catch (Exception e) {
            return e;
        }
    }

    interface Call {
        void run() throws Exception;
    }

    /** "done", or the exception the call threw. */
    private static Object done(Call call) {
        return outcome(() -> {
            call.run();
            return "done";
        });
    }

    /** A test hook that runs {@code action} the first time {@code phase} is reached. */
    private static java.util.function.Consumer<String> once(String phase, Runnable action) {
        AtomicBoolean ran = new AtomicBoolean();
        return p -> {
            if (p.equals(phase) && ran.compareAndSet(false, true)) action.run();
        };
    }
}
