package org.opensearch.mach.lifecycle;

import org.opensearch.ExceptionsHelper;
import org.opensearch.OpenSearchStatusException;
import org.opensearch.ResourceNotFoundException;
import org.opensearch.action.support.clustermanager.AcknowledgedResponse;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.UUIDs;
import org.opensearch.common.unit.TimeValue;
import org.opensearch.core.action.ActionListener;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.BundleZip;
import org.opensearch.mach.model.MachBundleException;
import org.opensearch.mach.model.MachModel;
import org.opensearch.mach.model.ModelRegistry;
import org.opensearch.secure_sm.AccessController;
import org.opensearch.threadpool.ThreadPool;
import org.opensearch.transport.client.Client;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * The model lifecycle as the REST layer (and tests) drive it from any node: upload chunks, register
 * (validate the whole bundle, store it, then record it in the cluster state: the commit point, so a
 * failure before it leaves nothing registered and its chunks are deleted), deploy / undeploy (and
 * wait until every node serves), delete, aliases, per-node views.
 */
public final class ModelLifecycleService {
    private static final org.apache.logging.log4j.Logger logger = org.apache.logging.log4j.LogManager.getLogger(ModelLifecycleService.class);

    private static final Pattern UPLOAD_ID = Pattern.compile("[A-Za-z0-9_-]{8,64}");

    /** Where a bundle to register comes from: a zip or directory path on the node, or an upload's chunks. */
    public record Source(String path, String uploadId, int chunks, String sha256) {
        public static Source path(String path) {
            return new Source(path, null, 0, null);
        }

        public static Source upload(String uploadId, int chunks, String sha256) {
            return new Source(null, uploadId, chunks, sha256);
        }
    }

    private final Client client;
    private final ClusterService clusterService;
    private final ThreadPool threadPool;
    private final BundleStore store;
    /** The only directory {@code _register {"path": ...}} reads from (absolute, normalized). */
    private final Path registerDir;
    /** This node's directory for bundles being registered (assembled zip, extracted files). */
    private final Path tmpRoot;

    /** The node setting that names {@link #registerDir} (its default: mach.models.dir). */
    public static final String REGISTER_DIR_SETTING = "mach.models.register_dir";
    /** The node setting that bounds how long a claim of a model not registered holds (MachPlugin.CLAIM_EXPIRY). */
    public static final String CLAIM_EXPIRY_SETTING = "mach.models.claim_expiry";

    /** This node's clock for claims (epoch millis): when a claim is taken or renewed, and how old one is. Tests move it. */
    private volatile java.util.function.LongSupplier clock = System::currentTimeMillis;

    public ModelLifecycleService(
        Client client, ClusterService clusterService, ThreadPool threadPool, BundleStore store, Path registerDir, Path tmpRoot
    ) {
        this.registerDir = registerDir.toAbsolutePath().normalize();
        this.tmpRoot = tmpRoot;
        this.client = client;
        this.clusterService = clusterService;
        this.threadPool = threadPool;
        this.store = store;
    }

    public MachModelsMetadata metadata() {
        return MachModelsMetadata.of(clusterService.state());
    }

    static void checkUploadId(String uploadId) {
        if (uploadId == null || !UPLOAD_ID.matcher(uploadId).matches()) {
            throw new IllegalArgumentException("invalid upload_id [" + uploadId + "]: start an upload with POST _plugins/_mach/uploads");
        }
    }

    static void checkName(String kind, String name) {
        if (!ModelRegistry.validName(name)) {
            throw new IllegalArgumentException("invalid " + kind + " [" + name + "]: use [A-Za-z0-9][A-Za-z0-9._-], at most 128 characters");
        }
    }

    /** Starts an upload (blocking): its chunks can be sent from then on. */
    public String createUpload() {
        String id = UUIDs.randomBase64UUID();
        store.createUpload(id);
        return id;
    }

    /** The registered model whose bundle is stored under this id, or null. */
    private ModelEntry owner(String storageId) {
        for (ModelEntry e : metadata().models().values()) {
            if (e.storageId().equals(storageId)) return e;
        }
        return null;
    }

    /**
     * Test hook: called with "register:before-claim", "register:before-read", "register:before-commit",
     * "delete:before-record-delete" and "delete:before-chunks-delete" at those points of {@link #register}
     * and {@link #deleteUpload}.
     */
    private volatile java.util.function.Consumer<String> testHook = phase -> {};

    /** For tests only (through their helper in this package): run {@code hook} at the named phases. */
    void setTestHook(java.util.function.Consumer<String> hook) {
        this.testHook = hook;
    }

    /** For tests only: the clock claims are taken, renewed and judged by. */
    void setClock(java.util.function.LongSupplier clock) {
        this.clock = clock;
    }

    /**
     * An upload a client may still write, register or delete: not a model's storage (409), not claimed by a
     * register in progress (409), created before (404).
     */
    private void checkOpenUpload(String uploadId, String action) {
        checkUploadId(uploadId);
        ModelEntry owner = owner(uploadId);
        if (owner != null) {
            throw conflict("upload [" + uploadId + "] is the stored bundle of registered model [" + owner.id() + "]; it cannot " + action);
        }
        BundleStore.UploadRecord record = store.readUpload(uploadId);
        if (record == null) {
            throw new ResourceNotFoundException("upload [" + uploadId + "] does not exist: start one with POST _plugins/_mach/uploads");
        }
        String claim = liveClaim(record);
        if (claim != null) throw conflict("upload [" + uploadId + "] belongs to model [" + claim + "], which is being registered; it cannot " + action);
    }

    /*
     * Register and DELETE of one upload race on its record ({@code <upload id>#upload}), with optimistic
     * concurrency (if_seq_no / if_primary_term): register claims the record for its model (a conditional
     * write of model and node) before it reads the chunks and commits the model to the cluster state, and
     * releases the claim if it fails; DELETE deletes the record conditionally, and only then the chunks.
     * Whichever write lands second finds the record changed: a register that finds it gone is a 409 (was
     * deleted), a DELETE that finds it claimed is a 409 (belongs to the model), so the chunks of a model
     * are never deleted under it, and a DELETE that answered 200 leaves nothing to register. A path
     * registration creates its storage's record already claimed, so the same holds for it. A claim whose
     * node left the cluster (its ephemeral id is gone: the node died or restarted mid-register) and whose
     * model is not registered is stale: DELETE and register may take the upload over. So is a claim older
     * than mach.models.claim_expiry (by the judging node's clock) whose model is not registered: a claim whose
     * release failed while its node stays up blocks no longer than that. A register renews its claim (a
     * conditional write of a new claim time) right before it commits: if a DELETE or another register took
     * the upload over meanwhile the renewal finds the record changed and the register is a 409 that registers
     * nothing; if it succeeds, the claim is fresh, and the commit lands within the cluster manager's timeouts,
     * seconds, far below the bound (at least 5 minutes), so no DELETE finds it expired before the model is
     * registered. Reading and validating the bundle may take longer than the bound: only the renewal decides.
     */

    /**
     * The model a live claim names (registered, or claimed within mach.models.claim_expiry by a node still in the
     * cluster); null when none.
     */
    private String liveClaim(BundleStore.UploadRecord record) {
        if (record.model() == null) return null;
        ModelEntry owner = owner(record.uploadId());
        if (owner != null) return owner.id();
        if (expired(record)) return null;
        for (org.opensearch.cluster.node.DiscoveryNode n : clusterService.state().nodes()) {
            if (n.getEphemeralId().equals(record.claimNode())) return record.model();
        }
        return null;
    }

    /** Whether a claim is older than mach.models.claim_expiry (a claim without a time, from an earlier build, never is). */
    private boolean expired(BundleStore.UploadRecord record) {
        if (record.claimTime() <= 0) return false;
        long expiry = clusterService.getClusterSettings().get(org.opensearch.mach.MachPlugin.CLAIM_EXPIRY).millis();
        return clock.getAsLong() - record.claimTime() > expiry;
    }

    /** How a path registration's storage id starts (an upload's is a base64 UUID). */
    private static final String PATH_STORAGE = "path-";

    /** Whether the storage's record holds a claim that is not live (its node left and its model is not registered). */
    private boolean staleClaim(String storageId) {
        BundleStore.UploadRecord record = store.readUpload(storageId);
        return record != null && record.model() != null && liveClaim(record) == null;
    }

    /** Claims an upload for model {@code id} (blocking): 409 when it was deleted or another model holds it. */
    private BundleStore.UploadRecord claim(String uploadId, String id) {
        while (true) {
            BundleStore.UploadRecord record = store.readUpload(uploadId);
            if (record == null) throw conflict("upload [" + uploadId + "] was deleted; model [" + id + "] is not registered");
            String claim = liveClaim(record);
            if (claim != null) throw conflict("upload [" + uploadId + "] belongs to model [" + claim + "]; model [" + id + "] is not registered");
            testHook.accept("register:before-claim");
            BundleStore.UploadRecord claimed = store.writeClaim(record, id, clusterService.localNode().getEphemeralId(), clock.getAsLong());
            if (claimed != null) return claimed; // else it changed meanwhile: look again
        }
    }

    /**
     * Gives a claim back after a failed register (best effort: a claim left behind goes stale with its node,
     * or after mach.models.claim_expiry). Conditional: a claim taken over meanwhile is not touched.
     */
    private void release(BundleStore.UploadRecord claimed) {
        if (claimed == null || owner(claimed.uploadId()) != null) return; // (the model was committed after all)
        try {
            store.writeClaim(claimed, null, null, 0);
        } catch (Exception e) {
            logger.warn("mach upload [" + claimed.uploadId() + "]: cannot release its claim by model [" + claimed.model() + "]", e);
        }
    }

    /** Stores one uploaded chunk (blocking; call on a generic thread). */
    public void putChunk(String uploadId, int chunk, ChunkBytes data, String sha256) {
        checkOpenUpload(uploadId, "take chunks");
        store.putChunk(uploadId, chunk, data, sha256);
    }

    /**
     * Drops an upload's chunks (blocking). Also reclaims storage that no model owns and that was never
     * an upload (what a node killed during a path registration leaves). A model's storage cannot be dropped here.
     */
    public void deleteUpload(String uploadId) {
        checkUploadId(uploadId);
        while (true) {
            ModelEntry owner = owner(uploadId);
            if (owner != null) throw conflict("upload [" + uploadId + "] belongs to model [" + owner.id() + "]; delete the model");
            BundleStore.UploadRecord record = store.readUpload(uploadId);
            if (record == null) {
                // no record: storage that was never an upload, which no register can claim (or nothing at all)
                if (!store.holdsAnything(uploadId)) throw new ResourceNotFoundException("upload [" + uploadId + "] does not exist");
                break;
            }
            String claim = liveClaim(record);
            if (claim != null) throw conflict("upload [" + uploadId + "] belongs to model [" + claim + "], which is being registered");
            testHook.accept("delete:before-record-delete");
            if (store.deleteUploadRecord(record)) break; // else a register claimed it meanwhile: look again
        }
        // a register commits only after renewing its claim, which the record's delete made impossible; a model
        // owning the storage now would be a commit that outlived its expired claim: keep its chunks
        ModelEntry owner = owner(uploadId);
        if (owner != null) throw conflict("upload [" + uploadId + "] belongs to model [" + owner.id() + "]; delete the model");
        testHook.accept("delete:before-chunks-delete");
        store.delete(uploadId);
    }

    /** Uploads not registered (yet), and storage a crash left behind (blocking): id, chunks, bytes, age. */
    public java.util.List<Map<String, Object>> uploads() {
        long now = System.currentTimeMillis();
        java.util.List<Map<String, Object>> out = new java.util.ArrayList<>();
        for (BundleStore.Stored s : store.list()) {
            if (owner(s.storageId()) != null) continue;
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("upload_id", s.storageId());
            m.put("chunks", s.chunks());
            m.put("bytes", s.bytes());
            m.put("age_ms", s.firstWrite() == 0 ? null : now - s.firstWrite());
            m.put("idle_ms", s.lastWrite() == 0 ? null : now - s.lastWrite());
            // chunks of a registration that never committed (the node died); only deleting makes sense: no upload
            // record (earlier builds' path registrations), or a path registration's record whose claim is stale
            m.put("orphan", !s.upload() || (s.storageId().startsWith(PATH_STORAGE) && staleClaim(s.storageId())));
            out.add(m);
        }
        return out;
    }

    /**
     * Registers a model (on the generic pool); the listener gets what was registered. A failure leaves
     * an upload as it was (its chunks kept, so the client can fix the request and retry); chunks this
     * call stored itself (a path registration) are deleted.
     */
    public void register(String id, Source source, boolean deploy, ActionListener<Map<String, Object>> listener) {
        threadPool.generic().execute(() -> {
            String pathStorage = null;
            BundleStore.UploadRecord claimed = null;
            BundleStore.UploadRecord pathClaim = null;
            try {
                if (source.uploadId() != null) checkOpenUpload(source.uploadId(), "be registered again");
                checkName("model id", id);
                TransportUpdateModelsAction.checkRegistrable(metadata(), id); // early: the cluster manager checks again
                if (source.uploadId() != null) {
                    if (source.chunks() < 1 || source.chunks() > BundleStore.MAX_CHUNKS) {
                        throw new IllegalArgumentException("[chunks] must be between 1 and " + BundleStore.MAX_CHUNKS);
                    }
                    if (source.sha256() == null || !source.sha256().matches("[0-9a-fA-F]{64}")) {
                        throw new IllegalArgumentException("[sha256] must be the hex SHA-256 of the whole bundle zip");
                    }
                }
                if (source.uploadId() != null) claimed = claim(source.uploadId(), id); // released below if this call fails
                Path zip = AccessController.doPrivilegedChecked(() -> BundleZip.newTempZip(tmpRoot, id));
                try {
                    String sha, storageId;
                    int chunks;
                    if (source.uploadId() != null) {
                        storageId = source.uploadId();
                        long stored = store.countChunks(storageId);
                        if (stored > source.chunks()) {
                            throw new IllegalArgumentException(
                                "upload [" + storageId + "] holds " + stored + " chunks but [chunks] says " + source.chunks()
                            );
                        }
                        testHook.accept("register:before-read");
                        AccessController.doPrivilegedChecked(() -> {
                            store.readBundle(storageId, source.chunks(), source.sha256(), zip); // checks the whole sha256
                            return null;
                        });
                        sha = source.sha256().toLowerCase(Locale.ROOT);
                        chunks = source.chunks();
                    } else {
                        copyFromPath(source.path(), zip);
                        sha = AccessController.doPrivilegedChecked(() -> BundleLoader.sha256(zip));
                        long size = AccessController.doPrivilegedChecked(() -> Files.size(zip));
                        chunks = (int) ((size + BundleStore.CHUNK_BYTES - 1) / BundleStore.CHUNK_BYTES);
                        storageId = PATH_STORAGE + UUIDs.randomBase64UUID();
                    }
                    ModelEntry entry = validate(id, zip, storageId, sha, chunks);
                    if (source.uploadId() == null) {
                        pathStorage = storageId;
                        // its record, claimed: a DELETE of this storage while it is registered is a 409, as for an upload
                        pathClaim = store.createUpload(storageId, id, clusterService.localNode().getEphemeralId(), clock.getAsLong());
                        int stored = AccessController.doPrivilegedChecked(() -> store.putBundle(entry.storageId(), zip));
                        if (stored != entry.chunks()) throw new IllegalStateException("stored " + stored + " chunks, expected " + entry.chunks());
                    }
                    testHook.accept("register:before-commit");
                    // renew the claim: it may have expired during a long read, and a DELETE or another register taken
                    // the upload over; then the record changed and this register must not commit
                    BundleStore.UploadRecord held = claimed != null ? claimed : pathClaim;
                    BundleStore.UploadRecord renewed = store.writeClaim(held, id, held.claimNode(), clock.getAsLong());
                    if (renewed == null) throw takenOver(held.uploadId(), current(held), id);
                    String ownStorage = pathStorage;
                    BundleStore.UploadRecord ownClaim = claimed != null ? renewed : null;
                    claimed = null; // from here the commit's failure handler releases it
                    client.execute(UpdateModelsRequest.ACTION, UpdateModelsRequest.register(entry), ActionListener.wrap(ack -> {
                        Map<String, Object> out = describe(entry);
                        if (!deploy) {
                            out.put("state", "registered");
                            listener.onResponse(out);
                            return;
                        }
                        deploy(id, true, TimeValue.timeValueMinutes(2), ActionListener.wrap(d -> {
                            out.put("deployed", true); // describe(entry) shows the record as registered, before the deploy
                            out.putAll(d);
                            listener.onResponse(out);
                        }, e -> listener.onFailure(
                            new OpenSearchStatusException("model [" + id + "] is registered, but deploying it failed: " + ExceptionsHelper.unwrapCause(e).getMessage(),
                                ExceptionsHelper.status(e), e) // unwrapped: the cluster manager's refusal comes back wrapped, its message naming only the node
                        )));
                    }, e -> threadPool.generic().execute(() -> {
                        // the cluster manager refused (an id registered meanwhile): this may run on its update thread,
                        // where the blocking delete of the chunks this call stored must not run
                        if (ownStorage != null) deleteStorage(ownStorage);
                        release(ownClaim);
                        listener.onFailure(e);
                    })));
                } finally {
                    AccessController.doPrivilegedChecked(() -> Files.deleteIfExists(zip));
                }
            } catch (Exception e) {
                // a DELETE that took the upload over (the claim expired) makes the read fail on missing chunks:
                // that is the DELETE's doing, a 409, not the client's bad upload (400)
                BundleStore.UploadRecord now = claimed == null ? null : current(claimed);
                Exception failure = claimed != null && changed(claimed, now) ? takenOver(claimed.uploadId(), now, id) : asClientError(e);
                // nothing was committed: drop what this call stored (an upload's chunks stay for a retry)
                if (pathStorage != null) deleteStorage(pathStorage);
                release(claimed);
                listener.onFailure(failure);
            }
        });
    }

    /** The record of a claimed upload as it is now (null: deleted); {@code held} itself when it cannot be read (nothing known to have changed). */
    private BundleStore.UploadRecord current(BundleStore.UploadRecord held) {
        try {
            return store.readUpload(held.uploadId());
        } catch (Exception e) {
            return held;
        }
    }

    /** Whether the claim a register holds was taken over meanwhile: its record, {@code now}, deleted or written since. */
    private static boolean changed(BundleStore.UploadRecord held, BundleStore.UploadRecord now) {
        return now == null || now.seqNo() != held.seqNo() || now.primaryTerm() != held.primaryTerm();
    }

    /**
     * The 409 of a register of model {@code id} whose claim expired and was taken over: by a DELETE ({@code now},
     * the record as it is now, is null) or another register.
     */
    private OpenSearchStatusException takenOver(String uploadId, BundleStore.UploadRecord now, String id) {
        String how = now == null ? "deleted"
            : now.model() != null && !now.model().equals(id) ? "claimed by the register of model [" + now.model() + "]"
            : "deleted or claimed by another register";
        return conflict("upload [" + uploadId + "] was taken over: " + how + " while registering model [" + id
            + "], whose claim on it had expired (" + CLAIM_EXPIRY_SETTING + "); model [" + id + "] is not registered");
    }

    private void deleteStorage(String storageId) {
        try {
            store.delete(storageId);
        } catch (Exception ignored) {
            // best effort; an unreferenced upload wastes space but serves nothing
        }
    }

    /**
     * Copies a bundle from the registration directory: a path outside it (after resolving links) is
     * refused before the file system is touched, and errors name paths relative to it only, so the
     * endpoint tells nothing about the rest of the node's disk. The card is checked first (a zip's
     * sizes, a directory's file list), so nothing else is read from what is not a bundle.
     */
    void copyFromPath(String path, Path zip) throws Exception {
        if (path == null || path.isBlank()) throw new IllegalArgumentException("[path] must name a bundle zip or directory under the registration directory");
        Path p;
        try {
            p = registerDir.resolve(path).normalize(); // a relative path is relative to the registration directory
        } catch (java.nio.file.InvalidPathException e) {
            throw new IllegalArgumentException("[path] is not a valid path: " + e.getReason(), e);
        }
        String outside = "[path] must be inside the registration directory [" + registerDir + "] (node setting " + REGISTER_DIR_SETTING + ")";
        if (!p.startsWith(registerDir)) throw new IllegalArgumentException(outside);
        String shown = registerDir.relativize(p).toString();
        AccessController.doPrivilegedChecked(() -> {
            Path real;
            try {
                real = p.toRealPath();
                if (!real.startsWith(registerDir.toRealPath())) throw new IllegalArgumentException(outside); // a link out of it
            } catch (java.nio.file.NoSuchFileException e) {
                throw new ResourceNotFoundException(
                    "no bundle at [" + shown + "] in the registration directory of node [" + clusterService.localNode().getName() + "]"
                );
            }
            try {
                if (Files.isDirectory(real)) {
                    BundleZip.zipDirectory(real, zip);
                } else {
                    BundleZip.plan(real); // a zip whose card and sizes do not check out is not copied
                    Files.copy(real, zip, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                }
            } catch (MachBundleException e) {
                throw new OpenSearchStatusException("[" + shown + "] is not a valid bundle: " + e.getMessage(), RestStatus.BAD_REQUEST);
            }
            return null;
        });
    }

    /**
     * Loads the bundle's network once and streams its labels file through every check of the catalog
     * load (card vs ONNX graph, checksums, parity; each label line, uniqueness, count) and describes it,
     * without reading the catalog into the heap (~40 MB of hashes at K = 5M, where the catalog is ~540 MB).
     * Its memory figure is the network's: a deploy admits that against a node's mach.models.memory_limit,
     * and a node admits the catalog when a request first needs it there.
     */
    private ModelEntry validate(String id, Path zip, String storageId, String sha, int chunks) throws Exception {
        MachModel model;
        try {
            model = AccessController.doPrivilegedChecked(() -> BundleLoader.loadZip(id, zip, tmpRoot, false, 1));
        } catch (MachBundleException e) {
            throw new OpenSearchStatusException("model [" + id + "] is not a valid bundle: " + e.getMessage(), RestStatus.BAD_REQUEST);
        }
        try {
            try {
                model.checkLabels();
            } catch (MachBundleException e) {
                throw new OpenSearchStatusException("model [" + id + "] is not a valid bundle: " + e.getMessage(), RestStatus.BAD_REQUEST);
            }
            long size = AccessController.doPrivilegedChecked(() -> Files.size(zip));
            return new ModelEntry(
                id, storageId, sha, size, chunks, model.networkBytes(), model.productCount(), model.card().repetitions,
                model.card().buckets, model.card().name, System.currentTimeMillis(), false, true
            );
        } finally {
            model.close();
        }
    }

    public static Map<String, Object> describe(ModelEntry e) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("model_id", e.id());
        m.put("name", e.name());
        m.put("sha256", e.sha256());
        m.put("size_bytes", e.sizeBytes());
        m.put("chunks", e.chunks());
        m.put("memory_bytes", e.memoryBytes());
        m.put("products", e.products());
        m.put("repetitions", e.repetitions());
        m.put("buckets", e.buckets());
        m.put("deployed", e.deployed());
        return m;
    }

    /** Marks the model deployed; with {@code wait}, answers once every node serves it (or one failed), else at once. */
    public void deploy(String id, boolean wait, TimeValue timeout, ActionListener<Map<String, Object>> listener) {
        update(UpdateModelsRequest.deploy(id), ActionListener.wrap(ack -> {
            if (!wait) {
                listener.onResponse(new LinkedHashMap<>(Map.of("model_id", id, "state", "deploying")));
                return;
            }
            awaitNodes(id, deadline(System.nanoTime(), timeout), listener);
        }, listener::onFailure));
    }

    /**
     * When a wait of {@code timeout} from {@code now} ends, on {@link System#nanoTime}'s scale: at most ~73
     * years away, so that {@link #passed} stays right (a longer timeout overflowed the sum and answered at once).
     */
    static long deadline(long now, TimeValue timeout) {
        return now + Math.min(Math.max(timeout.nanos(), 0), Long.MAX_VALUE / 4);
    }

    /** Whether {@code now} is past {@code deadline} (a difference, as {@link System#nanoTime} values may wrap). */
    static boolean passed(long now, long deadline) {
        return now - deadline > 0;
    }

    private void awaitNodes(String id, long deadline, ActionListener<Map<String, Object>> listener) {
        nodes(ActionListener.wrap(r -> {
            Map<String, Object> states = new TreeMap<>();
            boolean allDeployed = r.failures().isEmpty();
            boolean anyFailed = false;
            for (NodesModelsAction.NodeResponse n : r.getNodes()) {
                @SuppressWarnings("unchecked")
                Map<String, Object> view = (Map<String, Object>) n.models().get(id);
                String state = view == null ? "pending" : (String) view.get("state");
                states.put(n.getNode().getName(), view == null ? Map.of("state", state) : view);
                allDeployed &= "deployed".equals(state);
                anyFailed |= "failed".equals(state);
            }
            boolean timedOut = passed(System.nanoTime(), deadline);
            if (anyFailed) {
                // the cluster state keeps the model deployed (a node retries when memory frees up); the caller must know it is not served
                listener.onFailure(new OpenSearchStatusException(
                    "deploying model [" + id + "] failed on " + failedNodes(states) + "; GET _plugins/_mach/models/" + id + " to follow, "
                        + "or _undeploy it", RestStatus.SERVICE_UNAVAILABLE
                ));
                return;
            }
            if (allDeployed || timedOut) {
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("model_id", id);
                out.put("state", allDeployed ? "deployed" : "deploying");
                if (!allDeployed) out.put("note", "not every node finished loading in time; GET the model to follow");
                out.put("nodes", states);
                listener.onResponse(out);
            } else {
                threadPool.schedule(() -> awaitNodes(id, deadline, listener), TimeValue.timeValueMillis(100), ThreadPool.Names.GENERIC);
            }
        }, listener::onFailure));
    }

    /** "node [n1]: error, node [n2]: error" for the nodes whose view says failed. */
    @SuppressWarnings("unchecked")
    private static String failedNodes(Map<String, Object> states) {
        java.util.List<String> failed = new java.util.ArrayList<>();
        states.forEach((node, view) -> {
            Map<String, Object> v = (Map<String, Object>) view;
            if ("failed".equals(v.get("state"))) failed.add("node [" + node + "]: " + v.get("error"));
        });
        return String.join(", ", failed);
    }

    public void undeploy(String id, ActionListener<AcknowledgedResponse> listener) {
        update(UpdateModelsRequest.undeploy(id), listener);
    }

    /**
     * Removes the model from the cluster state, then its stored bundle, and answers once both are gone
     * (answering first left the model's remaining chunks listed as an upload for a few seconds). A node
     * that dies in between leaves them listed by GET _plugins/_mach/uploads, where DELETE reclaims them.
     */
    public void delete(String id, ActionListener<AcknowledgedResponse> listener) {
        ModelEntry e = metadata().models().get(id);
        update(UpdateModelsRequest.delete(id), ActionListener.wrap(ack -> threadPool.generic().execute(() -> {
            if (e != null) deleteStorage(e.storageId());
            listener.onResponse(ack);
        }), listener::onFailure));
    }

    /** Points an alias to a model that at least one node serves (409 otherwise: every query through it would fail). */
    public void putAlias(String alias, String modelId, ActionListener<AcknowledgedResponse> listener) {
        checkName("alias", alias);
        ModelEntry target = metadata().models().get(modelId);
        if (target == null || !target.deployed()) { // the cluster manager gives the precise 404 / 409
            update(UpdateModelsRequest.putAlias(alias, modelId), listener);
            return;
        }
        nodes(ActionListener.wrap(r -> {
            Map<String, Object> states = new TreeMap<>();
            for (NodesModelsAction.NodeResponse n : r.getNodes()) {
                Object view = n.models().get(modelId);
                if (view instanceof Map<?, ?> v && "deployed".equals(v.get("state"))) {
                    update(UpdateModelsRequest.putAlias(alias, modelId), listener);
                    return;
                }
                states.put(n.getNode().getName(), view == null ? "pending" : ((Map<?, ?>) view).get("state"));
            }
            listener.onFailure(conflict(
                "no node serves model [" + modelId + "] (" + states + "); alias [" + alias + "] is left as it was: wait for the deploy or fix it"
            ));
        }, listener::onFailure));
    }

    public void deleteAlias(String alias, ActionListener<AcknowledgedResponse> listener) {
        update(UpdateModelsRequest.deleteAlias(alias), listener);
    }

    public void nodes(ActionListener<NodesModelsAction.Response> listener) {
        client.execute(NodesModelsAction.ACTION, new NodesModelsAction.Request(), listener);
    }

    /**
     * Records in the cluster state the network a node measured for a model registered by an earlier
     * build (its record counted the catalog too). Best effort: on failure the next load of the model
     * records it.
     */
    public void recordMeasuredNetwork(ModelEntry measured) {
        update(UpdateModelsRequest.measuredNetwork(measured), ActionListener.wrap(
            ack -> logger.info("mach model [{}]: recorded its network, {} bytes, as measured from its bundle", measured.id(), measured.memoryBytes()),
            e -> logger.warn("mach model [" + measured.id() + "]: cannot record its measured network yet", e)
        ));
    }

    private void update(UpdateModelsRequest request, ActionListener<AcknowledgedResponse> listener) {
        client.execute(UpdateModelsRequest.ACTION, request, listener);
    }

    private static OpenSearchStatusException conflict(String message) {
        return new OpenSearchStatusException(message, RestStatus.CONFLICT);
    }

    /** Bad input found while reading or validating a bundle is the client's error, never a 500. */
    private static Exception asClientError(Exception e) {
        if (e instanceof java.io.IOException io) {
            return new OpenSearchStatusException("cannot read the bundle: " + io.getMessage(), RestStatus.BAD_REQUEST, io);
        }
        return e;
    }
}
