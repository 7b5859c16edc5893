package org.opensearch.mach.lifecycle;

import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.common.io.stream.Writeable;
import org.opensearch.core.xcontent.ToXContentObject;
import org.opensearch.core.xcontent.XContentBuilder;

import java.io.IOException;
import java.util.Map;

/**
 * One registered model as the cluster state records it (small: the bundle itself lives in the
 * {@link BundleStore} system index under {@code storageId}).
 *
 * @param id           model id
 * @param storageId    key of the bundle's chunks in the system index (the upload id)
 * @param sha256       hex SHA-256 of the whole bundle zip
 * @param sizeBytes    bundle zip bytes
 * @param chunks       number of chunks
 * @param memoryBytes  memory per node once deployed, what a deploy admits: the network (ONNX weights,
 *                     tokenizer), when {@code networkOnly}. The catalog (labels + product index) is admitted on
 *                     the node that first loads it.
 * @param products     K
 * @param repetitions  R
 * @param buckets      B
 * @param name         the card's name
 * @param registeredAt epoch millis
 * @param deployed     whether every node should serve it
 * @param networkOnly  whether {@code memoryBytes} is the network alone. False for entries recorded by builds
 *                     whose figure also counted the catalog (their cluster state has no
 *                     {@code memory_network_only}): a node that loads such a model counts the network it
 *                     measures from the bundle instead, and its catalog once loaded, so nothing is counted twice
 */
public record ModelEntry(
    String id,
    String storageId,
    String sha256,
    long sizeBytes,
    int chunks,
    long memoryBytes,
    int products,
    int repetitions,
    int buckets,
    String name,
    long registeredAt,
    boolean deployed,
    boolean networkOnly
) implements Writeable, ToXContentObject {

    public ModelEntry(StreamInput in) throws IOException {
        this(
            in.readString(),
            in.readString(),
            in.readString(),
            in.readVLong(),
            in.readVInt(),
            in.readVLong(),
            in.readVInt(),
            in.readVInt(),
            in.readVInt(),
            in.readString(),
            in.readLong(),
            in.readBoolean(),
            in.readBoolean()
        );
    }

    @Override
    public void writeTo(StreamOutput out) throws IOException {
        out.writeString(id);
        out.writeString(storageId);
        out.writeString(sha256);
        out.writeVLong(sizeBytes);
        out.writeVInt(chunks);
        out.writeVLong(memoryBytes);
        out.writeVInt(products);
        out.writeVInt(repetitions);
        out.writeVInt(buckets);
        out.writeString(name);
        out.writeLong(registeredAt);
        out.writeBoolean(deployed);
        out.writeBoolean(networkOnly);
    }

    public ModelEntry withDeployed(boolean value) {
        return new ModelEntry(id, storageId, sha256, sizeBytes, chunks, memoryBytes, products, repetitions, buckets, name, registeredAt, value, networkOnly);
    }

    /** The entry with a node's measured network as its memory, network-only from then on (an entry of an earlier build counted the catalog). */
    public ModelEntry withMeasuredNetwork(long networkBytes) {
        return new ModelEntry(id, storageId, sha256, sizeBytes, chunks, networkBytes, products, repetitions, buckets, name, registeredAt, deployed, true);
    }

    @Override
    public XContentBuilder toXContent(XContentBuilder b, Params params) throws IOException {
        b.startObject();
        b.field("storage_id", storageId);
        b.field("sha256", sha256);
        b.field("size_bytes", sizeBytes);
        b.field("chunks", chunks);
        b.field("memory_bytes", memoryBytes);
        b.field("products", products);
        b.field("repetitions", repetitions);
        b.field("buckets", buckets);
        b.field("name", name);
        b.field("registered_at", registeredAt);
        b.field("deployed", deployed);
        b.field("memory_network_only", networkOnly);
        return b.endObject();
    }

    /**
     * Reads what {@link #toXContent} wrote (the cluster state on disk). An entry without
     * {@code memory_network_only} was recorded by an earlier build, whose {@code memory_bytes} may count
     * the catalog too: it reads as not network-only.
     */
    static ModelEntry fromMap(String id, Map<String, Object> m) {
        return new ModelEntry(
            id,
            (String) m.get("storage_id"),
            (String) m.get("sha256"),
            ((Number) m.get("size_bytes")).longValue(),
            ((Number) m.get("chunks")).intValue(),
            ((Number) m.get("memory_bytes")).longValue(),
            ((Number) m.get("products")).intValue(),
            ((Number) m.get("repetitions")).intValue(),
            ((Number) m.get("buckets")).intValue(),
            (String) m.get("name"),
            ((Number) m.get("registered_at")).longValue(),
            (Boolean) m.get("deployed"),
            Boolean.TRUE.equals(m.get("memory_network_only"))
        );
    }
}
