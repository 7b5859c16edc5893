package org.opensearch.mach.lifecycle;

import org.opensearch.OpenSearchStatusException;
import org.opensearch.ResourceNotFoundException;
import org.opensearch.common.io.stream.BytesStreamOutput;
import org.opensearch.common.xcontent.json.JsonXContent;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.core.xcontent.ToXContent;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.test.OpenSearchTestCase;


/** The cluster-state rules of the model lifecycle, and the metadata's wire and JSON round trips. */
public class UpdateModelsTests extends OpenSearchTestCase {
    private static final long GB = 1L << 30;

    private static ModelEntry entry(String id, long memory) {
        return new ModelEntry(id, "s-" + id, "ab".repeat(32), 1000, 1, memory, 300, 4, 64, "tiny", 1L, false, true);
    }

    private static MachModelsMetadata apply(MachModelsMetadata m, UpdateModelsRequest r) {
        return TransportUpdateModelsAction.apply(m, r, GB);
    }

    private static RestStatus status(MachModelsMetadata m, UpdateModelsRequest r) {
        Exception e = expectThrows(Exception.class, () -> apply(m, r));
        if (e instanceof OpenSearchStatusException s) return s.status();
        if (e instanceof ResourceNotFoundException) return RestStatus.NOT_FOUND;
        throw new AssertionError(e);
    }

    public void testOneUploadBacksOneModel() {
        MachModelsMetadata m = apply(MachModelsMetadata.EMPTY, UpdateModelsRequest.register(entry("a", 100)));
        ModelEntry sameChunks = new ModelEntry("b", "s-a", "ab".repeat(32), 1000, 1, 100, 300, 4, 64, "tiny", 1L, false, true);
        Exception e = expectThrows(OpenSearchStatusException.class, () -> apply(m, UpdateModelsRequest.register(sameChunks)));
        assertTrue(e.getMessage(), e.getMessage().contains("already registered as model [a]"));
        assertEquals(RestStatus.CONFLICT, status(m, UpdateModelsRequest.register(sameChunks)));
    }

    public void testRegisterDeployAliasUndeployDelete() {
        MachModelsMetadata m = apply(MachModelsMetadata.EMPTY, UpdateModelsRequest.register(entry("a", 100).withDeployed(true)));
        assertFalse("registering never deploys", m.models().get("a").deployed());
        assertEquals(RestStatus.CONFLICT, status(m, UpdateModelsRequest.register(entry("a", 100))));
        assertEquals(RestStatus.CONFLICT, status(m, UpdateModelsRequest.putAlias("live", "a"))); // not deployed yet
        m = apply(m, UpdateModelsRequest.deploy("a"));
        assertTrue(m.models().get("a").deployed());
        m = apply(m, UpdateModelsRequest.putAlias("live", "a"));
        assertEquals("a", m.resolve("live"));
        assertEquals("a", m.model("live").id());
        assertEquals(RestStatus.CONFLICT, status(m, UpdateModelsRequest.undeploy("a")));
        assertEquals(RestStatus.CONFLICT, status(m, UpdateModelsRequest.delete("a")));
        assertEquals(RestStatus.CONFLICT, status(m, UpdateModelsRequest.register(entry("live", 1))));
        assertEquals(RestStatus.CONFLICT, status(m, UpdateModelsRequest.putAlias("a", "a")));
        // swap: one change
        m = apply(m, UpdateModelsRequest.register(entry("b", 100)));
        m = apply(m, UpdateModelsRequest.deploy("b"));
        m = apply(m, UpdateModelsRequest.putAlias("live", "b"));
        assertEquals("b", m.resolve("live"));
        m = apply(m, UpdateModelsRequest.undeploy("a"));
        assertFalse(m.models().get("a").deployed());
        m = apply(m, UpdateModelsRequest.delete("a"));
        assertFalse(m.models().containsKey("a"));
        m = apply(m, UpdateModelsRequest.deleteAlias("live"));
        assertTrue(m.aliases().isEmpty());
        assertEquals(RestStatus.NOT_FOUND, status(m, UpdateModelsRequest.deleteAlias("live")));
        assertEquals(RestStatus.NOT_FOUND, status(m, UpdateModelsRequest.deploy("nope")));
        assertEquals(RestStatus.NOT_FOUND, status(m, UpdateModelsRequest.putAlias("x", "nope")));
    }

    public void testDeployOverTheMemoryLimitNamesTheFigures() {
        MachModelsMetadata m = MachModelsMetadata.EMPTY;
        m = apply(m, UpdateModelsRequest.register(entry("a", 700L << 20)));
        m = apply(m, UpdateModelsRequest.register(entry("b", 400L << 20)));
        m = apply(m, UpdateModelsRequest.deploy("a"));
        MachModelsMetadata before = m;
        OpenSearchStatusException e = expectThrows(OpenSearchStatusException.class, () -> apply(before, UpdateModelsRequest.deploy("b")));
        assertEquals(RestStatus.BAD_REQUEST, e.status());
        assertTrue(e.getMessage(), e.getMessage().contains("needs 400mb") && e.getMessage().contains("use 700mb [a (700mb)]")
            && e.getMessage().contains("mach.models.memory_limit is 1gb"));
        m = apply(m, UpdateModelsRequest.undeploy("a"));
        assertTrue(apply(m, UpdateModelsRequest.deploy("b")).models().get("b").deployed());
    }

    public void testWireAndJsonRoundTrips() throws Exception {
        MachModelsMetadata m = MachModelsMetadata.EMPTY.withModel(entry("a", 123).withDeployed(true)).withModel(entry("b", 5))
            .withAlias("live", "a");
        BytesStreamOutput out = new BytesStreamOutput();
        m.writeTo(out);
        try (StreamInput in = out.bytes().streamInput()) {
            assertEquals(m, new MachModelsMetadata(in));
        }
        XContentBuilder b = JsonXContent.contentBuilder().startObject();
        m.toXContent(b, ToXContent.EMPTY_PARAMS);
        b.endObject();
        try (XContentParser p = createParser(JsonXContent.jsonXContent, org.opensearch.core.common.bytes.BytesReference.bytes(b))) {
            p.nextToken();
            assertEquals(m, MachModelsMetadata.fromXContent(p));
        }
        // every kind of request, every field (the master applies what a non-master node forwarded)
        ModelEntry c = entry("c", 9);
        assertRequestRoundTrips(UpdateModelsRequest.register(c), UpdateModelsRequest.Op.REGISTER, "c", null, c);
        assertRequestRoundTrips(UpdateModelsRequest.deploy("d"), UpdateModelsRequest.Op.DEPLOY, "d", null, null);
        assertRequestRoundTrips(UpdateModelsRequest.undeploy("u"), UpdateModelsRequest.Op.UNDEPLOY, "u", null, null);
        assertRequestRoundTrips(UpdateModelsRequest.delete("x"), UpdateModelsRequest.Op.DELETE, "x", null, null);
        assertRequestRoundTrips(UpdateModelsRequest.putAlias("live", "b"), UpdateModelsRequest.Op.PUT_ALIAS, "b", "live", null);
        assertRequestRoundTrips(UpdateModelsRequest.deleteAlias("live"), UpdateModelsRequest.Op.DELETE_ALIAS, null, "live", null);
    }

    /**
     * The cluster state on disk as earlier builds wrote it: no {@code memory_network_only}, and a
     * {@code memory_bytes} that may count the catalog. It still reads, as not network-only (a node then
     * counts the network it measures from the bundle); what this build writes reads back as network-only.
     */
    public void testAnEntryOfAnEarlierBuildReadsAsNotNetworkOnly() throws Exception {
        String old = "{\"models\": {\"hd\": {\"storage_id\": \"u1\", \"sha256\": \"" + "ab".repeat(32) + "\", \"size_bytes\": 1000, "
            + "\"chunks\": 1, \"memory_bytes\": 900000000, \"products\": 5000000, \"repetitions\": 16, \"buckets\": 4096, "
            + "\"name\": \"hd\", \"registered_at\": 7, \"deployed\": true}}, \"aliases\": {\"live\": \"hd\"}}";
        MachModelsMetadata m;
        try (XContentParser p = createParser(JsonXContent.jsonXContent, old)) {
            p.nextToken();
            m = MachModelsMetadata.fromXContent(p);
        }
        ModelEntry e = m.model("live");
        assertEquals(new ModelEntry("hd", "u1", "ab".repeat(32), 1000, 1, 900000000L, 5000000, 16, 4096, "hd", 7L, true, false), e);
        assertFalse(e.networkOnly());
        // both kinds survive the wire and the JSON of the cluster state
        MachModelsMetadata both = m.withModel(entry("new", 100).withDeployed(true));
        assertTrue(both.model("new").networkOnly());
        BytesStreamOutput out = new BytesStreamOutput();
        both.writeTo(out);
        try (StreamInput in = out.bytes().streamInput()) {
            assertEquals(both, new MachModelsMetadata(in));
        }
        XContentBuilder b = JsonXContent.contentBuilder().startObject();
        both.toXContent(b, ToXContent.EMPTY_PARAMS);
        b.endObject();
        try (XContentParser p = createParser(JsonXContent.jsonXContent, org.opensearch.core.common.bytes.BytesReference.bytes(b))) {
            p.nextToken();
            MachModelsMetadata back = MachModelsMetadata.fromXContent(p);
            assertEquals(both, back);
            assertFalse(back.model("hd").networkOnly());
            assertTrue(back.model("new").networkOnly());
        }
    }

    /**
     * A node that measured the network of a model recorded by an earlier build records it: that entry
     * (same stored bundle, not yet network-only) takes the measured figure and is network-only from
     * then on, so the deploy check counts the network alone; anything else is left as it is.
     */
    public void testAMeasuredNetworkReplacesTheFigureOfAnEarlierBuild() throws Exception {
        ModelEntry old = new ModelEntry("a", "s-a", "ab".repeat(32), 1000, 1, 900L << 20, 300, 4, 64, "tiny", 1L, false, false);
        MachModelsMetadata m = MachModelsMetadata.EMPTY.withModel(old).withModel(entry("b", 200L << 20));
        m = apply(m, UpdateModelsRequest.deploy("a"));
        MachModelsMetadata before = m;
        // network + catalog of [a] as recorded: [b] does not fit next to it
        expectThrows(OpenSearchStatusException.class, () -> apply(before, UpdateModelsRequest.deploy("b")));
        ModelEntry measured = new ModelEntry("a", "s-a", "ab".repeat(32), 1000, 1, 300L << 20, 300, 4, 64, "tiny", 1L, true, true);
        assertRequestRoundTrips(UpdateModelsRequest.measuredNetwork(measured), UpdateModelsRequest.Op.MEASURED_NETWORK, "a", null, measured);
        m = apply(m, UpdateModelsRequest.measuredNetwork(measured));
        assertEquals(measured, m.models().get("a"));
        assertTrue(apply(m, UpdateModelsRequest.deploy("b")).models().get("b").deployed());
        // only once, only for that bundle, only for a model that exists
        ModelEntry again = new ModelEntry("a", "s-a", "ab".repeat(32), 1000, 1, 1, 300, 4, 64, "tiny", 1L, true, true);
        assertSame(m, apply(m, UpdateModelsRequest.measuredNetwork(again)));
        MachModelsMetadata withOld = before;
        ModelEntry otherBundle = new ModelEntry("a", "s-x", "ab".repeat(32), 1000, 1, 1, 300, 4, 64, "tiny", 1L, true, true);
        assertSame(withOld, apply(withOld, UpdateModelsRequest.measuredNetwork(otherBundle)));
        ModelEntry gone = new ModelEntry("c", "s-c", "ab".repeat(32), 1000, 1, 1, 300, 4, 64, "tiny", 1L, true, true);
        assertSame(withOld, apply(withOld, UpdateModelsRequest.measuredNetwork(gone)));
        ModelEntry current = entry("b", 200L << 20);
        assertSame(withOld, apply(withOld, UpdateModelsRequest.measuredNetwork(new ModelEntry("b", "s-b", "ab".repeat(32), 1000, 1, 1, 300, 4,
            64, "tiny", 1L, false, true))));
        assertEquals(current, withOld.models().get("b"));
    }

    private static void assertRequestRoundTrips(UpdateModelsRequest r, UpdateModelsRequest.Op op, String modelId, String alias, ModelEntry entry)
        throws Exception {
        BytesStreamOutput out = new BytesStreamOutput();
        r.writeTo(out);
        try (StreamInput in = out.bytes().streamInput()) {
            UpdateModelsRequest back = new UpdateModelsRequest(in);
            assertEquals(op, back.op);
            assertEquals(op + " model id", modelId, back.modelId);
            assertEquals(op + " alias", alias, back.alias);
            assertEquals(op + " entry", entry, back.entry);
        }
    }
}
