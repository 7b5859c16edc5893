package org.opensearch.mach.model;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.opensearch.OpenSearchStatusException;
import org.opensearch.ResourceNotFoundException;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.secure_sm.AccessController;

import java.io.Closeable;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

/**
 * The models of one node. Model id {@code X} is the bundle directory {@code <mach.models.dir>/X}
 * (or, when there is no such directory, the zipped bundle {@code <mach.models.dir>/X.zip}),
 * loaded (and validated) on first use, then cached until the node closes. A bundle that fails to
 * load is not cached: fixing the files on disk is enough for the next request to pick it up.
 *
 * <p>Each bundle is admitted against the node's {@code mach.models.memory_limit} like a deployed
 * model ({@link NodeModelMemory}): its network when it is loaded (a bundle over the limit is a 400
 * naming the model and the limit, and nothing stays loaded), its catalog when a request first needs it.
 */
public final class ModelRegistry implements Closeable {
    private static final Logger logger = LogManager.getLogger(ModelRegistry.class);
    private static final String ZIP = ".zip";
    private static final Pattern MODEL_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");

    /** Model ids and aliases: {@code [A-Za-z0-9][A-Za-z0-9._-]{0,127}}. */
    public static boolean validName(String name) {
        return name != null && MODEL_ID.matcher(name).matches();
    }

    private final Path modelsDir;
    private final boolean tryCuda;
    private final int intraOpThreads;
    /** Where zipped bundles are extracted to be loaded. */
    private final Path tmpRoot;
    private final NodeModelMemory memory;
    private final Map<String, MachModel> loaded = new ConcurrentHashMap<>();
    private final Map<String, NodeModelMemory.CatalogAdmission> catalogs = new ConcurrentHashMap<>();
    private volatile boolean closed;

    public ModelRegistry(Path modelsDir, boolean tryCuda) {
        this(modelsDir, tryCuda, 1, BundleZip.tmpRoot(), NodeModelMemory.unlimited());
    }

    public ModelRegistry(Path modelsDir, boolean tryCuda, NodeModelMemory memory) {
        this(modelsDir, tryCuda, 1, BundleZip.tmpRoot(), memory);
    }

    public ModelRegistry(Path modelsDir, boolean tryCuda, int intraOpThreads, Path tmpRoot, NodeModelMemory memory) {
        this.memory = memory;
        this.modelsDir = modelsDir.toAbsolutePath().normalize();
        this.tmpRoot = tmpRoot;
        this.tryCuda = tryCuda;
        this.intraOpThreads = intraOpThreads;
    }

    public Path modelsDir() {
        return modelsDir;
    }

    /** The loaded model, loading it first if needed. Errors carry a 4xx status and say how to fix them. */
    public MachModel get(String modelId) {
        if (modelId == null || !MODEL_ID.matcher(modelId).matches()) {
            throw new IllegalArgumentException(
                "invalid model_id [" + modelId + "]: use the name of a bundle directory under " + modelsDir + " ([A-Za-z0-9._-], max 128)"
            );
        }
        MachModel model = loaded.get(modelId);
        if (model != null) return model;
        synchronized (this) { // one load at a time per node: loading is heavy and rare
            if (closed) throw new IllegalStateException("the mach model registry is closed (node shutting down)");
            model = loaded.get(modelId);
            if (model != null) return model;
            Path dir = modelsDir.resolve(modelId);
            Path zip = modelsDir.resolve(modelId + ZIP);
            // Privileged: the policy grants reading any file, but only to frames of this plugin's
            // code; without it a models dir outside config/ is denied on a real node (the REST
            // handler's frames are on the stack).
            try {
                model = AccessController.doPrivilegedChecked(() -> {
                    if (!Files.isDirectory(dir) && !Files.isRegularFile(zip)) {
                        throw new ResourceNotFoundException(
                            "model [" + modelId + "] not found under " + modelsDir + "; available: " + available()
                        );
                    }
                    return Files.isDirectory(dir)
                        ? BundleLoader.load(modelId, dir, tryCuda, intraOpThreads)
                        : BundleLoader.loadZip(modelId, zip, tmpRoot, tryCuda, intraOpThreads);
                });
            } catch (MachBundleException e) {
                throw new OpenSearchStatusException("model [" + modelId + "] cannot be loaded: " + e.getMessage(), RestStatus.BAD_REQUEST);
            }
            MachModel admitted = model;
            try {
                memory.admit(admitted, model.networkBytes(), (bytes, used, limit) -> NodeModelMemory.networkRefusal(
                    "model [" + modelId + "] (a bundle of mach.models.dir)", bytes, used, limit
                ));
            } catch (RuntimeException refused) {
                model.close();
                throw refused;
            }
            NodeModelMemory.CatalogAdmission catalog = memory.catalogAdmission(modelId);
            model.admitCatalogWith(catalog);
            catalogs.put(modelId, catalog);
            logger.info(
                "loaded mach model [{}] from [{}]: R={} B={} products={} device={} in {} ms",
                modelId, dir, model.card().repetitions, model.card().buckets, model.productCount(), model.device(), model.loadMillis()
            );
            loaded.put(modelId, model);
            return model;
        }
    }

    /** The model if it is already loaded on this node, else null (never loads). */
    public MachModel loadedModel(String modelId) {
        return modelId == null ? null : loaded.get(modelId);
    }

    /** Bundle directories (holding a mach.json) and X.zip files under the models directory, as model ids, sorted. */
    public List<String> available() {
        return AccessController.doPrivileged(this::listAvailable);
    }

    private List<String> listAvailable() {
        List<String> ids = new ArrayList<>();
        if (!Files.isDirectory(modelsDir)) return ids;
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(modelsDir)) {
            for (Path p : dirs) {
                String name = p.getFileName().toString();
                if (MODEL_ID.matcher(name).matches() && Files.isRegularFile(p.resolve(ModelCard.CARD_FILE))) {
                    ids.add(name);
                } else if (name.endsWith(ZIP) && Files.isRegularFile(p)) {
                    String id = name.substring(0, name.length() - ZIP.length());
                    if (MODEL_ID.matcher(id).matches() && !Files.isDirectory(modelsDir.resolve(id))) ids.add(id);
                }
            }
        } catch (IOException e) {
            logger.warn("cannot list mach models directory [{}]: {}", modelsDir, e.getMessage());
        }
        Collections.sort(ids);
        return ids;
    }

    /** The models loaded on this node, by id. */
    public Map<String, MachModel> loaded() {
        return Collections.unmodifiableMap(new TreeMap<>(loaded));
    }

    @Override
    public synchronized void close() {
        closed = true;
        for (MachModel m : loaded.values()) {
            m.close();
            memory.release(m);
        }
        for (NodeModelMemory.CatalogAdmission c : catalogs.values()) c.close();
        loaded.clear();
        catalogs.clear();
    }
}
