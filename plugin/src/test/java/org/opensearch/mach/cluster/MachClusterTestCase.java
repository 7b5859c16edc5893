package org.opensearch.mach.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.opensearch.client.Request;
import org.opensearch.client.Response;
import org.opensearch.client.ResponseException;
import org.opensearch.common.settings.Settings;
import org.opensearch.mach.MachPlugin;
import org.opensearch.mach.TestPaths;
import org.opensearch.mach.model.BundleLoader;
import org.opensearch.mach.model.MachModel;
import org.opensearch.plugins.Plugin;
import org.opensearch.test.OpenSearchIntegTestCase;
import org.opensearch.transport.Netty4ModulePlugin;
import org.junit.AfterClass;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;

/**
 * In-JVM clusters with the plugin and real HTTP; the tiny fixture's products, its bundle (served by the nodes
 * where a suite asks, and loaded in the test JVM as the reference) and a REST helper.
 */
public abstract class MachClusterTestCase extends OpenSearchIntegTestCase {
    static final String INDEX = "products";
    /** The id the nodes serve the tiny fixture's bundle under, where {@link #servesTinyModel} says so. */
    static final String MODEL = "tiny";
    static final ObjectMapper JSON = new ObjectMapper();

    private static Path modelsDir;
    private static MachModel tinyModel;

    @Override
    protected Collection<Class<? extends Plugin>> nodePlugins() {
        return List.of(MachPlugin.class, Netty4ModulePlugin.class);
    }

    /** Whether the nodes serve models from mach.models.dir: the tiny bundle as {@link #MODEL}, and what {@link #addModels} adds. */
    protected boolean servesTinyModel() {
        return false;
    }

    /** More models for the nodes, beside the tiny bundle ({@code tiny}: its folder). */
    protected void addModels(Path tiny) throws IOException {}

    @Override
    protected Settings nodeSettings(int nodeOrdinal) {
        Settings settings = super.nodeSettings(nodeOrdinal);
        if (servesTinyModel() == false) return settings;
        return Settings.builder().put(settings).put("mach.models.dir", modelsDir().toString()).build();
    }

    /** The suite's mach.models.dir, made once: a copy of the tiny bundle, then {@link #addModels}. */
    private Path modelsDir() {
        synchronized (MachClusterTestCase.class) {
            if (modelsDir == null) {
                try {
                    Path dir = createTempDir().resolve("mach-models");
                    Path target = dir.resolve(MODEL);
                    Files.createDirectories(target);
                    try (DirectoryStream<Path> files = Files.newDirectoryStream(TestPaths.tinyFixture().resolve("bundle"))) {
                        for (Path f : files) Files.copy(f, target.resolve(f.getFileName().toString()));
                    }
                    addModels(target);
                    modelsDir = dir;
                } catch (IOException e) {
                    throw new AssertionError(e);
                }
            }
            return modelsDir;
        }
    }

    /** The tiny bundle loaded in the test JVM: the reference decoding the cluster's answers are checked against. */
    static synchronized MachModel tinyModel() {
        if (tinyModel == null) {
            try {
                tinyModel = BundleLoader.load(MODEL, TestPaths.tinyFixture().resolve("bundle"), false);
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        }
        return tinyModel;
    }

    @AfterClass
    public static synchronized void forgetTinyModel() {
        if (tinyModel != null) tinyModel.close();
        tinyModel = null;
        modelsDir = null; // the suite's temp dirs are gone
    }

    @Override
    protected boolean addMockHttpTransport() {
        return false; // real HTTP for status codes
    }

    static List<String[]> tsv(String name) throws IOException {
        List<String> lines = Files.readAllLines(TestPaths.tinyFixture().resolve(name), StandardCharsets.UTF_8);
        List<String[]> rows = new ArrayList<>();
        for (String l : lines.subList(1, lines.size())) {
            if (!l.isBlank()) rows.add(l.split("\t", -1));
        }
        return rows;
    }

    /** The fixture's 300 products (product_id keyword, title text, price) in {@code index}, once. */
    void indexProducts(String index, int shards, int replicas) throws IOException {
        if (indexExists(index)) return;
        prepareCreate(index).setSettings(Settings.builder().put("index.number_of_shards", shards).put("index.number_of_replicas", replicas))
            .setMapping("product_id", "type=keyword", "title", "type=text", "price", "type=float")
            .get();
        int i = 0;
        var bulk = client().prepareBulk();
        for (String[] p : tsv("products.tsv")) {
            bulk.add(client().prepareIndex(index).setId(p[0]).setSource("product_id", p[0], "title", p[1], "price", i++ % 100));
        }
        assertFalse(bulk.get().hasFailures());
        refresh(index);
        ensureGreen(index);
    }

    /**
     * The fixture's products in {@code index} through HTTP (bulk, refreshed), {@code shards} shards and a replica, with a
     * {@code mach_buckets} field "buckets" of {@code family} filled by copy_to from product_id; {@code settings}: more
     * index settings as JSON after a comma (or ""). Once per index.
     */
    void indexBucketedProducts(String index, int shards, String family, String settings) throws IOException {
        if (indexExists(index)) return;
        rest("PUT", "/" + index, "{\"settings\": {\"number_of_shards\": " + shards + ", \"number_of_replicas\": 1" + settings
            + "}, \"mappings\": {\"properties\": {"
            + "\"product_id\": {\"type\": \"keyword\", \"copy_to\": \"buckets\"}, \"title\": {\"type\": \"text\"},"
            + "\"buckets\": {\"type\": \"mach_buckets\", \"hash_family\": \"" + family + "\"}}}}", 200);
        StringBuilder bulk = new StringBuilder();
        for (String[] p : tsv("products.tsv")) {
            bulk.append("{\"index\": {\"_id\": \"").append(p[0]).append("\"}}\n");
            bulk.append(JSON.writeValueAsString(Map.of("product_id", p[0], "title", p[1]))).append('\n');
        }
        JsonNode r = rest("POST", "/" + index + "/_bulk?refresh=true", bulk.toString(), 200);
        assertFalse(r.toString(), r.path("errors").asBoolean());
        ensureGreen(index);
    }

    /** A REST call through real HTTP; asserts the status and returns the JSON body. */
    static JsonNode rest(String method, String path, String body, int expectedStatus) throws IOException {
        Request req = new Request(method, path);
        if (body != null) req.setJsonEntity(body);
        Response resp;
        try {
            resp = getRestClient().performRequest(req);
        } catch (ResponseException e) {
            resp = e.getResponse();
        }
        String text;
        try {
            text = EntityUtils.toString(resp.getEntity());
        } catch (org.apache.hc.core5.http.ParseException e) {
            throw new IOException(e);
        }
        assertEquals(method + " " + path + " " + body + " -> " + text, expectedStatus, resp.getStatusLine().getStatusCode());
        return JSON.readTree(text);
    }
}
