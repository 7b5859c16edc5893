package org.opensearch.mach.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.opensearch.OpenSearchStatusException;
import org.opensearch.ResourceNotFoundException;
import org.opensearch.mach.TestPaths;
import org.opensearch.mach.inference.Decoder;
import org.opensearch.mach.inference.MachInference;
import org.opensearch.test.OpenSearchTestCase;

import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/** Loading the real tiny fixture bundle, and every refusal of spec/bundle-format.md on broken copies of it. */
public class BundleLoaderTests extends OpenSearchTestCase {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private Path copyFixture() throws Exception {
        Path dir = createTempDir().resolve("bundle");
        Files.createDirectories(dir);
        try (DirectoryStream<Path> files = Files.newDirectoryStream(TestPaths.tinyFixture().resolve("bundle"))) {
            for (Path f : files) {
                Files.copy(f, dir.resolve(f.getFileName().toString()));
            }
        }
        return dir;
    }

    private static String sha256(Path p) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
    }

    private static void editCard(Path dir, Consumer<ObjectNode> edit) throws Exception {
        ObjectNode card = (ObjectNode) MAPPER.readTree(dir.resolve("mach.json").toFile());
        edit.accept(card);
        MAPPER.writeValue(dir.resolve("mach.json").toFile(), card);
    }

    /** Rewrites a file and its sha256 in the card, so that only the intended check can fail. */
    private static void replaceFile(Path dir, String name, byte[] content) throws Exception {
        Files.write(dir.resolve(name), content);
        String sha = sha256(dir.resolve(name));
        editCard(dir, c -> ((ObjectNode) c.get("files")).put(name, sha));
    }

    private String loadError(Path dir) {
        MachBundleException e = expectThrows(MachBundleException.class, () -> BundleLoader.load("t", dir, false).close());
        return e.getMessage();
    }

    /**
     * Labels are checked when the catalog is first read, not at load; registration's streamed check
     * ({@link MachModel#checkLabels}) refuses them with the same message and loads nothing.
     */
    private String catalogError(Path dir) throws Exception {
        try (MachModel model = BundleLoader.load("t", dir, false)) {
            assertFalse(model.catalogLoaded());
            MachBundleException checked = expectThrows(MachBundleException.class, model::checkLabels);
            assertFalse(model.catalogLoaded());
            MachBundleException e = expectThrows(MachBundleException.class, model::loadCatalog);
            assertFalse(model.catalogLoaded());
            assertEquals(e.getMessage(), checked.getMessage());
            return e.getMessage();
        }
    }

    /** An admission that refuses or counts what the catalog asks for. */
    private static final class Admission implements MachModel.CatalogAdmission {
        volatile boolean refuse;
        long admitted, released;

        @Override
        public void admit(MachModel model, long bytes) {
            if (refuse) throw new OpenSearchStatusException("model [" + model.id() + "]: over the limit", org.opensearch.core.rest.RestStatus.BAD_REQUEST);
            admitted += bytes;
        }

        @Override
        public void release(MachModel model, long bytes) {
            released += bytes;
        }
    }

    public void testCatalogIsAdmittedBeforeItIsRead() throws Exception {
        Path dir = copyFixture();
        try (MachModel model = BundleLoader.load("tiny", dir, false)) {
            model.checkLabels(); // a valid file: registration's check passes and loads nothing
            assertFalse(model.catalogLoaded());
            Admission admission = new Admission();
            model.admitCatalogWith(admission);
            admission.refuse = true;
            OpenSearchStatusException e = expectThrows(OpenSearchStatusException.class, model::catalog);
            assertEquals(org.opensearch.core.rest.RestStatus.BAD_REQUEST, e.status());
            assertTrue(e.getMessage(), e.getMessage().contains("model [tiny]: over the limit"));
            assertFalse("nothing half-loaded", model.catalogLoaded());
            assertEquals(0, model.catalogBytes());
            assertEquals(0, admission.admitted + admission.released);
            admission.refuse = false; // the limit raised: the next request loads it
            ProductCatalog catalog = model.catalog();
            assertEquals("the admitted figure is the catalog's heap", catalog.heapBytes(), admission.admitted);
            assertEquals(0, admission.released);
            model.catalog(); // loaded once, admitted once
            assertEquals(catalog.heapBytes(), admission.admitted);
        }
    }

    public void testAdmissionIsGivenBackWhenTheCatalogCannotBeRead() throws Exception {
        Path dir = copyFixture();
        editCard(dir, c -> ((ObjectNode) c.get("labels")).put("count", 301));
        try (MachModel model = BundleLoader.load("t", dir, false)) {
            Admission admission = new Admission();
            model.admitCatalogWith(admission);
            expectThrows(OpenSearchStatusException.class, model::catalog);
            assertFalse(model.catalogLoaded());
            assertTrue(admission.admitted > 0);
            assertEquals(admission.admitted, admission.released);
        }
    }

    public void testCatalogLoadsOnFirstUseOnce() throws Exception {
        Path dir = copyFixture();
        try (MachModel model = BundleLoader.load("tiny", dir, false)) {
            assertFalse(model.catalogLoaded());
            assertEquals(0, model.catalogBytes());
            long withoutCatalog = model.memoryBytes();
            assertEquals(300, model.productCount()); // from the card: no load
            assertFalse(model.catalogLoaded());
            int threads = 4;
            ProductCatalog[] seen = new ProductCatalog[threads];
            java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(threads);
            Thread[] ts = new Thread[threads];
            for (int i = 0; i < threads; i++) {
                int t = i;
                ts[i] = new Thread(() -> {
                    try {
                        start.await();
                        seen[t] = model.catalog();
                    } catch (Exception e) {
                        throw new AssertionError(e);
                    }
                });
                ts[i].start();
            }
            for (Thread t : ts) t.join();
            for (ProductCatalog c : seen) assertSame(seen[0], c);
            assertTrue(model.catalogLoaded());
            assertEquals(seen[0].heapBytes(), model.catalogBytes());
            assertTrue(model.catalogBytes() > 300 * 4);
            assertEquals(withoutCatalog + model.catalogBytes(), model.memoryBytes());
            assertEquals(withoutCatalog, model.networkBytes());
        }
    }

    public void testZipBundleKeepsItsLabelsUntilClosed() throws Exception {
        Path dir = copyFixture();
        Path zip = createTempDir().resolve("tiny.zip");
        BundleZip.zipDirectory(dir, zip);
        Path tmp = createTempDir();
        MachModel model = BundleLoader.loadZip("tiny", zip, tmp, false, 1);
        Path kept;
        try (var files = Files.list(tmp)) {
            // (the test framework's file system may add "extra*" files of its own)
            List<Path> left = files.filter(f -> !f.getFileName().toString().startsWith("extra")).toList();
            assertEquals(left.toString(), 1, left.size()); // the extracted bundle is gone, its labels kept
            kept = left.get(0);
            assertTrue(kept.getFileName().toString(), kept.getFileName().toString().endsWith(".labels.txt"));
        }
        assertFalse(model.catalogLoaded());
        assertEquals(Files.readString(dir.resolve("labels.txt")).split("\n")[5], model.label(5));
        model.close();
        assertFalse(Files.exists(kept));
    }

    public void testBundleWithoutLabelsServesOnlyTheNetwork() throws Exception {
        Path dir = copyFixture();
        Files.delete(dir.resolve("labels.txt"));
        editCard(dir, c -> {
            c.remove("labels");
            ((ObjectNode) c.get("files")).remove("labels.txt");
        });
        try (MachModel model = BundleLoader.load("nolabels", dir, false)) { // the parity check still runs
            assertFalse(model.hasCatalog());
            assertEquals(0, model.productCount());
            assertEquals("murmur3_x86_32-r4-b64-s1296122696", model.card().hashFamily.name());
            assertEquals(4, MachInference.probabilities(model, "crimson couch").length);
            OpenSearchStatusException e = expectThrows(OpenSearchStatusException.class, model::catalog);
            assertEquals(org.opensearch.core.rest.RestStatus.BAD_REQUEST, e.status());
            assertTrue(e.getMessage(), e.getMessage().contains("model [nolabels]") && e.getMessage().contains("bucket_field"));
            Decoder.Options top10 = new Decoder.Options(10, Decoder.Strategy.EXACT, 10, 1, Decoder.ScoreMode.MEAN);
            e = expectThrows(OpenSearchStatusException.class, () -> org.opensearch.mach.inference.MachInferenceService.predict(model, "crimson couch", top10));
            assertEquals(org.opensearch.core.rest.RestStatus.BAD_REQUEST, e.status());
            assertFalse(model.catalogLoaded());
        }
        // without a family, a card must have its labels
        editCard(dir, c -> ((ObjectNode) c.get("product_hash")).putArray("seeds").add(1).add(2).add(3).add(4));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("missing [labels]; only a model whose product_hash is a hash family may leave it out"));
    }

    public void testLoadsFixtureAndDecodesLikeItsOwnParity() throws Exception {
        Path dir = copyFixture();
        try (MachModel model = BundleLoader.load("tiny", dir, false)) {
            ModelCard card = model.card();
            assertEquals(4, card.repetitions);
            assertEquals(64, card.buckets);
            assertEquals(card.labelCount, model.productCount());
            assertEquals("cpu", model.device());
            // the product index agrees with the card's hash
            for (int k = 0; k < model.productCount(); k += 37) {
                int[] b = card.productHash().bucketsOf(model.label(k));
                for (int r = 0; r < b.length; r++) {
                    assertEquals(b[r], model.index().bucket(r, k));
                }
            }
            JsonNode parity = MAPPER.readTree(dir.resolve("parity.json").toFile());
            JsonNode first = parity.get("cases").get(0);
            float[][] probs = MachInference.probabilities(model, first.get("text").asText());
            assertEquals(4, probs.length);
            assertEquals(64, probs[0].length);
            for (int r = 0; r < 4; r++) {
                double sum = 0;
                for (float p : probs[r]) sum += p;
                assertEquals("softmax per repetition", 1.0, sum, 1e-4);
                assertEquals(first.get("top_buckets").get(r).get(0).asInt(), Decoder.topBuckets(probs[r], 1)[0]);
            }
        }
    }

    public void testMissingFile() throws Exception {
        Path dir = copyFixture();
        Files.delete(dir.resolve("model.onnx"));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("missing file [model.onnx]"));
    }

    public void testMissingParity() throws Exception {
        Path dir = copyFixture();
        Files.delete(dir.resolve("parity.json"));
        editCard(dir, c -> ((ObjectNode) c.get("files")).remove("parity.json"));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("missing file [parity.json]"));
    }

    public void testMissingCard() throws Exception {
        Path dir = copyFixture();
        Files.delete(dir.resolve("mach.json"));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("missing file [mach.json]"));
    }

    public void testShaMismatch() throws Exception {
        Path dir = copyFixture();
        Files.writeString(dir.resolve("labels.txt"), "tampered\n", StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.APPEND);
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("sha256 mismatch for [labels.txt]"));
    }

    public void testUnknownFormatVersion() throws Exception {
        Path dir = copyFixture();
        editCard(dir, c -> c.put("format_version", 3));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("unknown format_version [3]; this plugin reads format_version 1 and 2"));
    }

    public void testMalformedCard() throws Exception {
        Path dir = copyFixture();
        Files.writeString(dir.resolve("mach.json"), "{\"format_version\": 1,");
        String msg = loadError(dir);
        assertTrue(msg, msg.startsWith("mach.json: not valid JSON"));
    }

    public void testSeedsNotR() throws Exception {
        Path dir = copyFixture();
        editCard(dir, c -> c.put("R", 5));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("product_hash.seeds has 4 seeds, expected R = 5"));
    }

    public void testBucketsNotB() throws Exception {
        Path dir = copyFixture();
        editCard(dir, c -> ((ObjectNode) c.get("product_hash")).put("buckets", 32));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("product_hash.buckets [32] must equal B [64]"));
    }

    public void testUnknownFeaturizer() throws Exception {
        Path dir = copyFixture();
        editCard(dir, c -> ((ObjectNode) c.get("featurizer")).put("hash", "xxhash64"));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("featurizer.hash") && msg.contains("xxhash64"));
    }

    public void testCardShapeDisagreesWithItself() throws Exception {
        Path dir = copyFixture();
        editCard(dir, c -> ((ArrayNode) c.get("onnx").get("output").get("shape")).set(2, 128));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("onnx.output.shape") && msg.contains("[-1, R, B]"));
    }

    public void testOnnxOutputShapeDisagreesWithCard() throws Exception {
        // a consistent card with R = 3 against a network with R = 4
        Path dir = copyFixture();
        editCard(dir, c -> {
            c.put("R", 3);
            ((ArrayNode) c.get("product_hash").get("seeds")).remove(3);
            ((ArrayNode) c.get("onnx").get("output").get("shape")).set(1, 3);
        });
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("output [probabilities] has shape [-1, 4, 64], mach.json expects [-1, 3, 64]"));
    }

    public void testOnnxInputShapeDisagreesWithCard() throws Exception {
        Path dir = copyFixture();
        editCard(dir, c -> {
            ((ObjectNode) c.get("featurizer")).put("max_features", 16);
            ((ArrayNode) c.get("onnx").get("input").get("shape")).set(1, 16);
        });
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("input [feature_ids] has shape [-1, 32], mach.json expects [-1, 16]"));
    }

    public void testOnnxInputNameDisagreesWithCard() throws Exception {
        Path dir = copyFixture();
        editCard(dir, c -> ((ObjectNode) c.get("onnx").get("input")).put("name", "ids"));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("inputs are [feature_ids], mach.json onnx.input.name expects exactly [ids]"));
    }

    public void testLabelCount() throws Exception {
        Path dir = copyFixture();
        editCard(dir, c -> ((ObjectNode) c.get("labels")).put("count", 301));
        String msg = catalogError(dir);
        assertTrue(msg, msg.contains("[labels.txt] has 300 labels, mach.json labels.count says 301"));
    }

    public void testDuplicateLabel() throws Exception {
        Path dir = copyFixture();
        String labels = Files.readString(dir.resolve("labels.txt"));
        String first = labels.substring(0, labels.indexOf('\n'));
        String second = labels.substring(labels.indexOf('\n') + 1);
        replaceFile(dir, "labels.txt", (first + "\n" + first + second.substring(second.indexOf('\n'))).getBytes(StandardCharsets.UTF_8));
        String msg = catalogError(dir);
        assertTrue(msg, msg.contains("duplicate product id [" + first + "]"));
    }

    public void testMalformedLabelLines() throws Exception {
        String[] lines = Files.readString(copyFixture().resolve("labels.txt")).split("\n");
        String noFinalNewline = String.join("\n", lines);
        String[] crlf = lines.clone();
        crlf[1] += "\r";
        String[] empty = lines.clone();
        empty[2] = "";
        String crlfSecondLine = String.join("\n", crlf) + "\n";
        String emptyThirdLine = String.join("\n", empty) + "\n";
        Map<String, String> expected = Map.of(
            noFinalNewline, "every line must end with \\n (the last one does not)",
            crlfSecondLine, "line 2: product ids must be non-empty without \\r",
            emptyThirdLine, "line 3: product ids must be non-empty without \\r"
        );
        for (Map.Entry<String, String> e : expected.entrySet()) {
            Path dir = copyFixture();
            replaceFile(dir, "labels.txt", e.getKey().getBytes(StandardCharsets.UTF_8));
            String msg = catalogError(dir);
            assertTrue(msg, msg.contains(e.getValue()));
        }
    }

    public void testParityMismatch() throws Exception {
        Path dir = copyFixture();
        ObjectNode parity = (ObjectNode) MAPPER.readTree(dir.resolve("parity.json").toFile());
        ArrayNode probs = (ArrayNode) parity.get("cases").get(0).get("top_probs").get(0);
        probs.set(0, probs.get(0).asDouble() + 0.01);
        replaceFile(dir, "parity.json", MAPPER.writeValueAsBytes(parity));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("parity.json case 0") && msg.contains("repetition 0"));
    }

    public void testParityFeaturizerMismatch() throws Exception {
        Path dir = copyFixture();
        ObjectNode parity = (ObjectNode) MAPPER.readTree(dir.resolve("parity.json").toFile());
        ((ArrayNode) parity.get("cases").get(0).get("feature_ids")).set(0, 1);
        replaceFile(dir, "parity.json", MAPPER.writeValueAsBytes(parity));
        String msg = loadError(dir);
        assertTrue(msg, msg.contains("featurizer mismatch"));
    }

    private static void zip(Path dir, Path zip, String prefix) throws Exception {
        try (
            java.util.zip.ZipOutputStream out = new java.util.zip.ZipOutputStream(Files.newOutputStream(zip));
            DirectoryStream<Path> files = Files.newDirectoryStream(dir)
        ) {
            for (Path f : files) {
                out.putNextEntry(new java.util.zip.ZipEntry(prefix + f.getFileName().toString()));
                out.write(Files.readAllBytes(f));
                out.closeEntry();
            }
        }
    }

    public void testZippedBundle() throws Exception {
        Path models = createTempDir();
        // from the fixture itself: the test file system may add extra files to fresh temp directories
        Path fixture = TestPaths.tinyFixture().resolve("bundle");
        zip(fixture, models.resolve("zipped.zip"), "");
        zip(fixture, models.resolve("foldered.zip"), "bundle/");
        Path tmpRoot = Path.of(System.getProperty("java.io.tmpdir"), "mach-bundles");
        try (ModelRegistry registry = new ModelRegistry(models, false)) {
            assertEquals(java.util.List.of("foldered", "zipped"), registry.available());
            MachModel m = registry.get("zipped");
            assertEquals(300, m.productCount());
            assertTrue(m.directory().toString(), m.directory().toString().endsWith("zipped.zip"));
            assertEquals(4, MachInference.probabilities(m, "red sofa").length); // the session outlives the extracted files
            OpenSearchStatusException e = expectThrows(OpenSearchStatusException.class, () -> registry.get("foldered"));
            assertTrue(e.getMessage(), e.getMessage().contains("entry [bundle/") && e.getMessage().contains("not a plain file name"));
        }
        try (java.util.stream.Stream<Path> left = Files.list(tmpRoot)) {
            assertEquals("extracted bundles are deleted after loading", 0, left.count());
        }
    }

    public void testRegistry() throws Exception {
        Path models = createTempDir();
        Path bundle = copyFixture();
        Files.move(bundle, models.resolve("tiny"));
        try (ModelRegistry registry = new ModelRegistry(models, false)) {
            assertEquals(java.util.List.of("tiny"), registry.available());
            assertTrue(registry.loaded().isEmpty());
            MachModel m = registry.get("tiny");
            assertSame(m, registry.get("tiny"));
            assertEquals(java.util.Set.of("tiny"), registry.loaded().keySet());
            ResourceNotFoundException nf = expectThrows(ResourceNotFoundException.class, () -> registry.get("nope"));
            assertTrue(nf.getMessage(), nf.getMessage().contains("model [nope] not found under " + models.toAbsolutePath().normalize()));
            assertTrue(nf.getMessage(), nf.getMessage().contains("available: [tiny]"));
            expectThrows(IllegalArgumentException.class, () -> registry.get("../etc"));
            // a broken bundle is a 400 naming the problem
            Files.createDirectories(models.resolve("broken"));
            OpenSearchStatusException broken = expectThrows(OpenSearchStatusException.class, () -> registry.get("broken"));
            assertEquals(org.opensearch.core.rest.RestStatus.BAD_REQUEST, broken.status());
            assertTrue(broken.getMessage(), broken.getMessage().contains("missing file [mach.json]"));
        }
    }

    /**
     * Bundles of mach.models.dir count against mach.models.memory_limit like deployed models, in the
     * node's one account: the network when the bundle is loaded (over the limit: a 400 naming the model
     * and the limit, nothing left loaded or held), the catalog when a request first needs it.
     */
    public void testRegistryAdmitsItsBundlesAgainstTheMemoryLimit() throws Exception {
        Path models = createTempDir();
        Files.move(copyFixture(), models.resolve("tiny"));
        long network;
        long catalog;
        try (MachModel probe = BundleLoader.load("probe", models.resolve("tiny"), false)) {
            network = probe.networkBytes();
            catalog = probe.catalog().heapBytes();
        }
        java.util.concurrent.atomic.AtomicLong limit = new java.util.concurrent.atomic.AtomicLong(network - 1);
        NodeModelMemory memory = new NodeModelMemory(limit::get);
        try (ModelRegistry registry = new ModelRegistry(models, false, memory)) {
            OpenSearchStatusException e = expectThrows(OpenSearchStatusException.class, () -> registry.get("tiny"));
            assertEquals(org.opensearch.core.rest.RestStatus.BAD_REQUEST, e.status());
            assertTrue(e.getMessage(), e.getMessage().contains("model [tiny] (a bundle of mach.models.dir) needs")
                && e.getMessage().contains("mach.models.memory_limit is " + new org.opensearch.core.common.unit.ByteSizeValue(network - 1)));
            assertTrue(registry.loaded().isEmpty());
            assertEquals(0, memory.used());
            // what else the node holds (a deployed model) counts too
            Object deployed = new Object();
            memory.set(deployed, 1);
            limit.set(network);
            e = expectThrows(OpenSearchStatusException.class, () -> registry.get("tiny"));
            assertTrue(e.getMessage(), e.getMessage().contains("models loaded on this node use 1b"));
            memory.release(deployed);

            limit.set(network + catalog - 1);
            MachModel m = registry.get("tiny");
            assertEquals(network, memory.used());
            assertFalse(m.catalogLoaded());
            OpenSearchStatusException refused = expectThrows(OpenSearchStatusException.class, m::catalog);
            assertEquals(org.opensearch.core.rest.RestStatus.BAD_REQUEST, refused.status());
            assertTrue(refused.getMessage(), refused.getMessage().contains("model [tiny]: its product catalog")
                && refused.getMessage().contains("mach.models.memory_limit is"));
            assertFalse(m.catalogLoaded());
            assertEquals(network, memory.used());
            limit.set(network + catalog);
            assertEquals(300, m.catalog().labels().size());
            assertEquals(network + catalog, memory.used());
        }
        assertEquals("a closed registry holds nothing", 0, memory.used());
    }
}
