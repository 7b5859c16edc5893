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
import org.opensearch.plugins.Plugin;
import org.opensearch.test.OpenSearchIntegTestCase;
import org.opensearch.transport.Netty4ModulePlugin;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/** In-JVM clusters with the plugin and real HTTP; the tiny fixture's products and a REST helper. */
public abstract class MachClusterTestCase extends OpenSearchIntegTestCase {
    static final String INDEX = "products";
    static final ObjectMapper JSON = new ObjectMapper();

    @Override
    protected Collection<Class<? extends Plugin>> nodePlugins() {
        return List.of(MachPlugin.class, Netty4ModulePlugin.class);
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
