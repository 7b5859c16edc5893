package org.opensearch.mach.it;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.FixMethodOrder;
import org.junit.Test;
import org.junit.runners.MethodSorters;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

/**
 * The model lifecycle on the real node: a bundle uploaded in checksummed chunks (by Java here, and
 * by {@code python3 -m mach_tools deploy}), one registered from a path on the node, deploy, queries
 * by id, by alias and through an index binding, an alias swap, stats, the 4xx answers to bad
 * uploads, undeploy and delete.
 */
@FixMethodOrder(MethodSorters.NAME_ASCENDING)
public class LifecycleRestIT {
    static final String INDEX = "mach-it-lifecycle";
    static final int CHUNK = 64 << 10;

    static Rest rest;
    static Path nodeDir;
    static Path bundleDir;
    static byte[] zip;
    static String url;

    @BeforeClass
    public static void setUp() throws Exception {
        nodeDir = Paths.get(MachRestIT.requiredProperty("mach.it.node.dir"));
        Path fixture = Paths.get(MachRestIT.requiredProperty("mach.it.fixture.dir"));
        bundleDir = fixture.resolve("bundle");
        url = "http://127.0.0.1:" + Files.readString(nodeDir.resolve("http.port")).trim();
        rest = new Rest(url);
        assertEquals(200, rest.get("/_cluster/health?wait_for_status=yellow&timeout=60s").status());
        zip = zipOf(bundleDir);
        MachRestIT.indexProducts(rest, INDEX, 1, MachRestIT.readTsv(fixture.resolve("products.tsv")));
    }

    @AfterClass
    public static void cleanUp() throws IOException {
        if (rest == null) return;
        rest.delete("/_plugins/_mach/aliases/it-live");
        for (String id : List.of("it-up", "it-path", "it-py", "it-idle")) {
            rest.post("/_plugins/_mach/models/" + id + "/_undeploy", null);
            rest.delete("/_plugins/_mach/models/" + id);
        }
        rest.put("/_cluster/settings", Map.of("persistent", Map.of()));
    }

    static byte[] zipOf(Path dir) throws IOException {
        var bytes = new java.io.ByteArrayOutputStream();
        try (ZipOutputStream out = new ZipOutputStream(bytes); Stream<Path> files = Files.list(dir)) {
            for (Path f : files.sorted().toList()) {
                out.putNextEntry(new ZipEntry(f.getFileName().toString()));
                Files.copy(f, out);
                out.closeEntry();
            }
        }
        return bytes.toByteArray();
    }

    static String sha256(byte[] data) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    }

    /** Uploads {@code data} in chunks; chunk {@code corrupt} (if >= 0) is sent damaged (expects 400), chunk {@code skip} not at all. */
    static String upload(byte[] data, int corrupt, int skip) throws Exception {
        return upload(rest, data, CHUNK, corrupt, skip);
    }

    /** {@link #upload(byte[], int, int)} to the node of {@code rest}, in chunks of {@code size} bytes. */
    static String upload(Rest rest, byte[] data, int size, int corrupt, int skip) throws Exception {
        Rest.Response start = rest.post("/_plugins/_mach/uploads", null);
        assertEquals(start.toString(), 200, start.status());
        String id = start.json().get("upload_id").asText();
        for (int i = 0; (long) i * size < data.length; i++) {
            if (i == skip) continue;
            byte[] chunk = Arrays.copyOfRange(data, i * size, Math.min(data.length, (i + 1) * size));
            String sha = sha256(chunk);
            if (i == corrupt) chunk[chunk.length / 2] ^= 0x40;
            Rest.Response r = rest.put("/_plugins/_mach/uploads/" + id + "/" + i,
                Map.of("data", Base64.getEncoder().encodeToString(chunk), "sha256", sha));
            if (i == corrupt) MachRestIT.assertClientError(r, "is corrupt");
            else assertEquals(r.toString(), 200, r.status());
        }
        return id;
    }

    static int chunks(byte[] data) {
        return (data.length + CHUNK - 1) / CHUNK;
    }

    static Rest.Response register(String id, Map<String, ?> body) throws IOException {
        return rest.post("/_plugins/_mach/models/" + id + "/_register", body);
    }

    static List<String> hits(Map<String, Object> mach) throws IOException {
        Rest.Response r = rest.post("/" + INDEX + "/_search", Map.of("query", Map.of("mach", mach), "size", 10));
        assertEquals(r.toString(), 200, r.status());
        List<String> ids = new ArrayList<>();
        for (JsonNode h : r.json().path("hits").path("hits")) ids.add(h.path("_id").asText());
        return ids;
    }

    static List<String> predicted(String model, String text) throws IOException {
        Rest.Response r = rest.post("/_plugins/_mach/models/" + model + "/_predict", Map.of("query_text", text, "top_n", 10));
        assertEquals(r.toString(), 200, r.status());
        List<String> ids = new ArrayList<>();
        for (JsonNode p : r.json().path("products")) ids.add(p.path("product_id").asText());
        return ids;
    }

    static Map<String, Object> machQuery(String model, String text) {
        Map<String, Object> q = new LinkedHashMap<>();
        if (model != null) q.put("model_id", model);
        q.put("query_text", text);
        if (model != null) q.put("product_id_field", "product_id");
        q.put("top_n", 10);
        return q;
    }

    @Test
    public void a_badUploadsAreRefusedAndLeaveNothing() throws Exception {
        int n = chunks(zip);
        assertTrue("the fixture spans several chunks", n >= 3);
        upload(zip, 1, -1);
        String truncated = upload(zip, -1, n - 1);
        MachRestIT.assertClientError(register("it-bad", Map.of("upload_id", truncated, "chunks", n, "sha256", sha256(zip))),
            "chunk [" + (n - 1) + "] of " + n + " is missing");
        String wrong = upload(zip, -1, -1);
        MachRestIT.assertClientError(register("it-bad", Map.of("upload_id", wrong, "chunks", n, "sha256", "0".repeat(64))),
            "checksum mismatch");
        // a failed register keeps the chunks (listed, for a retry) until the upload is deleted
        boolean listed = false;
        for (JsonNode u : rest.get("/_plugins/_mach/uploads").json().path("uploads")) {
            listed |= u.path("upload_id").asText().equals(wrong) && u.path("chunks").asInt() == n && u.path("bytes").asLong() == zip.length;
        }
        assertTrue("the upload is listed with its chunks", listed);
        assertEquals(200, rest.delete("/_plugins/_mach/uploads/" + wrong).status());
        assertEquals(404, rest.delete("/_plugins/_mach/uploads/" + wrong).status());
        byte[] one = { 1 };
        assertEquals(404, rest.put("/_plugins/_mach/uploads/NeverCreated0123456789/0",
            Map.of("data", Base64.getEncoder().encodeToString(one), "sha256", sha256(one))).status());
        MachRestIT.assertClientError(register("it-bad", Map.of("path", "no/such/bundle")), "no bundle at [no/such/bundle]");
        MachRestIT.assertClientError(register("bad/id", Map.of("path", "/x")), null);
        assertEquals("nothing registered", 404, rest.get("/_plugins/_mach/models/it-bad").status());
        assertFalse(rest.get("/_plugins/_mach/models").body().contains("it-bad"));
    }

    @Test
    public void b_chunkedUploadRegistersDeploysAndServes() throws Exception {
        String upload = upload(zip, -1, -1);
        Rest.Response r = register("it-up", Map.of("upload_id", upload, "chunks", chunks(zip), "sha256", sha256(zip), "deploy", true));
        assertEquals(r.toString(), 201, r.status());
        assertEquals(r.body(), "deployed", r.json().path("state").asText());
        assertEquals(sha256(zip), r.json().path("sha256").asText());
        String text = "crimson couch";
        List<String> want = predicted("it-up", text);
        assertEquals(10, want.size());
        assertEquals(want, hits(machQuery("it-up", text)));
        // duplicate id: 409, the model keeps serving
        MachRestIT.assertClientError(
            register("it-up", Map.of("upload_id", upload(zip, -1, -1), "chunks", chunks(zip), "sha256", sha256(zip))), "already registered");
        assertEquals(want, hits(machQuery("it-up", text)));
    }

    @Test
    public void c_pathRegistrationAliasSwapAndIndexBinding() throws Exception {
        // the registration directory is mach.models.dir by default; the node gets the real path (target/node may be
        // a link to a home under /tmp when the checkout is closed to the node's user) and can read what is there
        Path dir = MachRestIT.readableByNode(Files.createDirectories(nodeDir.toRealPath().resolve("models").resolve("registered")));
        Path onNode = MachRestIT.readableByNode(Files.write(dir.resolve("tiny.zip"), zip));
        MachRestIT.assertClientError(register("it-outside", Map.of("path", "/etc/passwd")), "must be inside the registration directory");
        Rest.Response r = register("it-path", Map.of("path", onNode.toString(), "deploy", true));
        assertEquals(r.toString(), 201, r.status());
        assertEquals("the same bytes as the upload", sha256(zip), r.json().path("sha256").asText());

        assertEquals(200, rest.put("/_plugins/_mach/aliases/it-live", Map.of("model_id", "it-up")).status());
        Rest.Response bind = rest.put("/" + INDEX + "/_settings", Map.of("index.mach.model", "it-live", "index.mach.product_id_field", "product_id"));
        assertEquals(bind.toString(), 200, bind.status());
        String text = "vertex sweater";
        List<String> want = predicted("it-up", text);
        assertEquals("the index binding supplies model and field", want, hits(machQuery(null, text)));
        assertEquals(200, rest.put("/_plugins/_mach/aliases/it-live", Map.of("model_id", "it-path")).status());
        assertEquals("it-path", rest.get("/_plugins/_mach/aliases").json().path("aliases").path("it-live").asText());
        assertEquals("after the swap", want, hits(machQuery(null, text)));
        MachRestIT.assertClientError(rest.post("/_plugins/_mach/models/it-path/_undeploy", null), "alias [it-live] points to it");

        // stats of the aliased model on the node
        JsonNode m = rest.get("/_plugins/_mach/models/it-live").json();
        assertEquals(m.toString(), "it-path", m.path("model_id").asText());
        JsonNode node = m.path("nodes").elements().next();
        assertEquals(m.toString(), "deployed", node.path("state").asText());
        assertTrue(m.toString(), node.path("queries").asLong() >= 1 && node.path("latency_p50_ms").isNumber());
    }

    @Test
    public void d_memoryLimitUndeployAndDelete() throws Exception {
        assertEquals(200, rest.post("/_plugins/_mach/models/it-up/_undeploy", null).status());
        MachRestIT.assertClientError(rest.post("/" + INDEX + "/_search", Map.of("query", Map.of("mach", machQuery("it-up", "sofa")))),
            "not deployed");
        assertEquals(200, rest.put("/_cluster/settings", Map.of("persistent", Map.of("mach.models.memory_limit", "1kb"))).status());
        try {
            MachRestIT.assertClientError(rest.post("/_plugins/_mach/models/it-up/_deploy", null), "mach.models.memory_limit is 1kb");
        } finally {
            rest.send("PUT", "/_cluster/settings", "{\"persistent\": {\"mach.models.memory_limit\": null}}", "application/json");
        }
        assertEquals(200, rest.delete("/_plugins/_mach/models/it-up").status());
        assertEquals(404, rest.get("/_plugins/_mach/models/it-up").status());
        MachRestIT.assertClientError(rest.post("/_plugins/_mach/models/it-up/_deploy", null), "not registered");
        MachRestIT.assertClientError(rest.delete("/_plugins/_mach/aliases/no-such-alias"), "does not exist");
    }

    @Test
    public void e_pythonDeployToolUploadsInChunks() throws Exception {
        Path root = Paths.get(MachRestIT.requiredProperty("mach.it.fixture.dir")).toAbsolutePath();
        while (root != null && !Files.isDirectory(root.resolve("model-tools"))) root = root.getParent();
        assertTrue("repository root not found", root != null);
        Process p = new ProcessBuilder("/usr/bin/python3", "-m", "mach_tools", "deploy", "--url", url, "--bundle", bundleDir.toString(),
            "--id", "it-py", "--chunk-mb", "0.05", "--no-progress").directory(root.resolve("model-tools").toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(out, 0, p.waitFor());
        JsonNode reply = Rest.JSON.readTree(out.strip().lines().reduce((a, b) -> b).orElseThrow());
        assertEquals(out, "deployed", reply.path("state").asText());
        assertTrue(out, reply.path("chunks").asInt() >= 3);
        assertEquals(predicted("it-path", "amber trainers"), hits(machQuery("it-py", "amber trainers")));
    }

    /** The registered models (records, deployed flags), the aliases, and the uploads with their chunks and bytes. */
    static String lifecycleState() throws IOException {
        JsonNode all = rest.get("/_plugins/_mach/models").json();
        List<String> uploads = new ArrayList<>();
        for (JsonNode u : rest.get("/_plugins/_mach/uploads").json().path("uploads")) {
            uploads.add(u.path("upload_id").asText() + " " + u.path("chunks") + " " + u.path("bytes") + " " + u.path("orphan"));
        }
        java.util.Collections.sort(uploads);
        return "registered " + all.path("registered") + "\naliases " + all.path("aliases") + "\nuploads " + uploads;
    }

    @Test
    public void f_refusedCallsChangeNothingAndNoOpsAnswer() throws Exception {
        String text = "vertex sweater";
        List<String> want = predicted("it-path", text);
        String open = upload(zip, -1, -1);
        int n = chunks(zip);
        String sha = sha256(zip);
        String before = lifecycleState();
        byte[] one = { 7 };
        String chunk = "/_plugins/_mach/uploads/" + open + "/";
        Map<String, Object> other = Map.of("data", Base64.getEncoder().encodeToString(one), "sha256", sha256(one));
        Object[][] refused = {
            { register("it-path", Map.of("path", "anything")), "model [it-path] is already registered" },
            { register("it-live", Map.of("upload_id", open, "chunks", n, "sha256", sha)), "[it-live] is an alias" },
            { register("it-new", Map.of("upload_id", open, "chunks", n - 1, "sha256", sha)), "holds " + n + " chunks but [chunks] says " + (n - 1) },
            { register("it-new", Map.of("upload_id", open, "chunks", n, "sha256", sha, "deploy", "yes")), "[_register] [deploy] must be true or false" },
            { rest.post("/_plugins/_mach/models/it-path/_undeploy", null), "alias [it-live] points to it" },
            { rest.delete("/_plugins/_mach/models/it-path"), "alias [it-live] points to it" },
            { rest.post("/_plugins/_mach/models/it-live/_undeploy", null), "model [it-live] is not registered" },
            { rest.put("/_plugins/_mach/aliases/it-live", Map.of("model_id", "nope")), "model [nope] is not registered" },
            { rest.put(chunk + "0", other), "already stored with other bytes" },
            { rest.put(chunk + "10000", other), "chunk number must be between 0 and 9999" },
            { rest.send("PUT", chunk + n, "{\"data\": \"!!!!\", \"sha256\": \"" + sha + "\"}", "application/json"), "[chunk] [data] is not valid base64" },
            { rest.send("PUT", chunk + n, "{\"data\": \"AAAA\", \"data\": \"AAAB\", \"sha256\": \"" + sha + "\"}", "application/json"),
                "Duplicate field 'data'" } };
        for (Object[] r : refused) {
            MachRestIT.assertClientError((Rest.Response) r[0], (String) r[1]);
            assertEquals("after " + r[1], before, lifecycleState());
        }
        assertEquals("the aliased model serves as before", want, hits(machQuery(null, text)));

        // no-ops: a deployed model deployed again, a registered one undeployed
        Rest.Response again = rest.post("/_plugins/_mach/models/it-path/_deploy", null);
        assertEquals(again.toString(), 200, again.status());
        assertEquals(again.body(), "deployed", again.json().path("state").asText());
        Rest.Response idle = register("it-idle", Map.of("upload_id", open, "chunks", n, "sha256", sha));
        assertEquals(idle.toString(), 201, idle.status());
        Rest.Response undeployed = rest.post("/_plugins/_mach/models/it-idle/_undeploy", null);
        assertEquals(undeployed.toString(), 200, undeployed.status());
        assertFalse(undeployed.body(), undeployed.json().path("deployed").asBoolean(true));
        assertFalse(rest.get("/_plugins/_mach/models/it-idle").json().path("deployed").asBoolean(true));

        // a deployed model without an alias can be deleted; the others keep serving
        assertEquals(200, rest.delete("/_plugins/_mach/models/it-py").status());
        MachRestIT.assertClientError(rest.post("/_plugins/_mach/models/it-py/_predict", Map.of("query_text", text)), "model [it-py] not found");
        assertEquals(want, hits(machQuery(null, text)));
    }
}
