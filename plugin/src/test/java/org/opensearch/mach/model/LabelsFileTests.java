package org.opensearch.mach.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.opensearch.common.hash.MurmurHash3;
import org.opensearch.mach.TestPaths;
import org.opensearch.test.OpenSearchTestCase;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;

/**
 * The streamed labels check (registration) and the catalog load refuse the same files with the same
 * messages, the first refusal in file order, and the catalog's admitted heap is what it takes.
 */
public class LabelsFileTests extends OpenSearchTestCase {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private static List<String> fixtureIds() throws Exception {
        return List.of(Files.readString(TestPaths.tinyFixture().resolve("bundle/labels.txt")).split("\n"));
    }

    /** The fixture's card with labels.count {@code count} and the sha256 of {@code content}. */
    private static ModelCard card(byte[] content, int count) throws Exception {
        ObjectNode card = (ObjectNode) MAPPER.readTree(TestPaths.tinyFixture().resolve("bundle/mach.json").toFile());
        ((ObjectNode) card.get("labels")).put("count", count);
        String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(content));
        ((ObjectNode) card.get("files")).put(card.get("labels").get("file").asText(), sha);
        return ModelCard.parse(MAPPER.writeValueAsBytes(card));
    }

    private Path write(byte[] content) throws Exception {
        Path p = createTempDir().resolve("labels.txt");
        Files.write(p, content);
        return p;
    }

    private static byte[] lines(List<String> ids) {
        return (String.join("\n", ids) + "\n").getBytes(StandardCharsets.UTF_8);
    }

    /** The refusal of the streamed check, asserted equal to the catalog load's. */
    private String refusal(byte[] content, int count) throws Exception {
        Path p = write(content);
        ModelCard card = card(content, count);
        String checked = expectThrows(MachBundleException.class, () -> LabelsFile.check(p, card)).getMessage();
        String loaded = expectThrows(MachBundleException.class, () -> ProductCatalog.read(p, card)).getMessage();
        assertEquals(checked, loaded);
        return checked;
    }

    public void testValidFileAndTheCatalogsHeapIsTheAdmittedFigure() throws Exception {
        List<String> ids = fixtureIds();
        byte[] content = lines(ids);
        Path p = write(content);
        ModelCard card = card(content, ids.size());
        LabelsFile.Summary s = LabelsFile.check(p, card);
        assertEquals(ids.size(), s.count());
        assertEquals(content.length - ids.size(), s.idBytes());
        ProductCatalog catalog = ProductCatalog.read(p, card);
        for (int k = 0; k < ids.size(); k++) assertEquals(ids.get(k), catalog.labels().get(k));
        assertEquals(ProductCatalog.heapBytes(p, card), catalog.heapBytes());
    }

    public void testNonAsciiIdsAndLinesLongerThanTheCarryBuffer() throws Exception {
        List<String> ids = new ArrayList<>(List.of("é-ü-漢字", "x".repeat(70_000), "y".repeat(300), "p1"));
        byte[] content = lines(ids);
        Path p = write(content);
        ModelCard card = card(content, ids.size());
        assertEquals(ids.size(), LabelsFile.check(p, card).count());
        ProductCatalog catalog = ProductCatalog.read(p, card);
        for (int k = 0; k < ids.size(); k++) assertEquals(ids.get(k), catalog.labels().get(k));
        assertEquals(ProductCatalog.heapBytes(p, card), catalog.heapBytes());
    }

    public void testDuplicateIsReportedAtItsSecondLine() throws Exception {
        List<String> ids = new ArrayList<>(fixtureIds());
        int first = randomIntBetween(0, 100), second = randomIntBetween(150, ids.size() - 1);
        ids.set(second, ids.get(first));
        String msg = refusal(lines(ids), ids.size());
        assertEquals("[labels.txt] line " + (second + 1) + ": duplicate product id [" + ids.get(first) + "]", msg);
    }

    public void testMalformedLines() throws Exception {
        List<String> ids = fixtureIds();
        for (String bad : List.of("", "id\r", "\r")) {
            List<String> edited = new ArrayList<>(ids);
            int at = randomIntBetween(0, ids.size() - 1);
            edited.set(at, bad);
            assertEquals(
                "[labels.txt] line " + (at + 1) + ": product ids must be non-empty without \\r",
                refusal(lines(edited), ids.size())
            );
        }
        byte[] content = lines(ids);
        int second = String.join("\n", ids.subList(0, 1)).length() + 1;
        content[second] = (byte) 0xC3; // a lead byte without its continuation
        content[second + 1] = (byte) 'x';
        assertEquals("[labels.txt] line 2: product ids must be valid UTF-8", refusal(content, ids.size()));
    }

    /** The first refusal in file order wins, as when the file was read into a set. */
    public void testFirstRefusalInFileOrder() throws Exception {
        List<String> ids = new ArrayList<>(fixtureIds());
        List<String> dupFirst = new ArrayList<>(ids);
        dupFirst.set(5, ids.get(0));
        dupFirst.set(10, "");
        assertEquals("[labels.txt] line 6: duplicate product id [" + ids.get(0) + "]", refusal(lines(dupFirst), ids.size()));
        List<String> emptyFirst = new ArrayList<>(ids);
        emptyFirst.set(3, "");
        emptyFirst.set(10, ids.get(0));
        assertEquals("[labels.txt] line 4: product ids must be non-empty without \\r", refusal(lines(emptyFirst), ids.size()));
    }

    public void testCountAndFinalNewline() throws Exception {
        List<String> ids = fixtureIds();
        byte[] content = lines(ids);
        assertEquals("[labels.txt] has 300 labels, mach.json labels.count says 301", refusal(content, 301));
        // more lines than the card says: the hashes grow past the count, a duplicate there is still found
        assertEquals("[labels.txt] has 300 labels, mach.json labels.count says 299", refusal(content, 299));
        List<String> more = new ArrayList<>(ids);
        more.add(ids.get(7));
        assertEquals("[labels.txt] line 301: duplicate product id [" + ids.get(7) + "]", refusal(lines(more), 299));
        byte[] noFinal = Arrays.copyOf(content, content.length - 1);
        assertEquals("[labels.txt]: every line must end with \\n (the last one does not)", refusal(noFinal, ids.size()));
    }

    public void testShaMismatchAndMissingFile() throws Exception {
        byte[] content = lines(fixtureIds());
        Path p = write(content);
        ModelCard card = card(lines(fixtureIds().subList(1, 300)), 300);
        String msg = expectThrows(MachBundleException.class, () -> LabelsFile.check(p, card)).getMessage();
        assertTrue(msg, msg.startsWith("sha256 mismatch for [labels.txt]"));
        Files.delete(p);
        msg = expectThrows(MachBundleException.class, () -> LabelsFile.check(p, card)).getMessage();
        assertTrue(msg, msg.startsWith("missing file [labels.txt]"));
    }

    /** Equal hashes are only candidates: distinct ids that share one are not a duplicate. */
    public void testEqualHashesOfDistinctIdsAreNoDuplicate() throws Exception {
        List<String> ids = fixtureIds();
        byte[] content = lines(ids);
        Path p = write(content);
        ModelCard card = card(content, ids.size());
        MurmurHash3.Hash128 scratch = new MurmurHash3.Hash128();
        long[] hashes = new long[ids.size()];
        for (int k = 0; k < ids.size(); k++) {
            byte[] b = ids.get(k).getBytes(StandardCharsets.UTF_8);
            hashes[k] = LabelsFile.hash(b, 0, b.length, scratch);
        }
        hashes[42] = hashes[7]; // as if ids 8 and 43 collided
        LabelsFile.checkUnique(p, card, hashes.clone(), hashes.length);
        // the same collision with equal ids is a duplicate, found by the exact comparison
        List<String> dup = new ArrayList<>(ids);
        dup.set(42, ids.get(7));
        Path d = write(lines(dup));
        String msg = expectThrows(MachBundleException.class, () -> LabelsFile.checkUnique(d, card, hashes.clone(), hashes.length)).getMessage();
        assertEquals("[labels.txt] line 43: duplicate product id [" + ids.get(7) + "]", msg);
    }
}
