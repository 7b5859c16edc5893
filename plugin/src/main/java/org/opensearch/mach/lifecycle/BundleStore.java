package org.opensearch.mach.lifecycle;

import org.opensearch.OpenSearchStatusException;
import org.opensearch.ResourceAlreadyExistsException;
import org.opensearch.action.admin.indices.create.CreateIndexRequest;
import org.opensearch.action.bulk.BulkRequest;
import org.opensearch.action.delete.DeleteRequest;
import org.opensearch.action.get.GetResponse;
import org.opensearch.action.index.IndexRequest;
import org.opensearch.action.search.SearchResponse;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.util.concurrent.ThreadContext;
import org.opensearch.common.xcontent.XContentType;
import org.opensearch.core.common.bytes.BytesReference;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.index.query.QueryBuilders;
import org.opensearch.search.SearchHit;
import org.opensearch.search.builder.SearchSourceBuilder;
import org.opensearch.transport.client.Client;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;

/**
 * Bundles in the system index {@value #INDEX}, as chunks: document {@code <storage id>#<n>} records
 * chunk n (its SHA-256, size and number of parts) and documents {@code <storage id>#<n>.<sha256
 * prefix>.<p>} hold its bytes, {@link ChunkBytes#PART_BYTES} per part (base64 in a binary field, not
 * indexed; small documents, so storing and reading them makes no humongous heap allocation). Chunks
 * stored before parts existed hold their bytes in the chunk document and are read as well. Every node reads the same
 * chunks, so a node that restarts or joins later gets the bundle without a file on its disk.
 * An upload is created before its chunks ({@code <upload id>#upload}, with its creation time), and
 * chunks are written once: a stored chunk is never replaced, so the bytes a model was validated
 * against stay its bytes whatever a client sends later.
 * All calls block: run them on a generic or inference thread, never a transport thread.
 */
public final class BundleStore {
    public static final String INDEX = ".plugins-mach-bundles";
    /** Bundles are cut into chunks of this size when registered from a path. */
    public static final int CHUNK_BYTES = 4 << 20;
    /** An uploaded chunk may be at most this big (decoded). */
    public static final int MAX_CHUNK_BYTES = 16 << 20;
    /** Chunks per bundle: 10,000 x 16 MB = 160 GB, far above any sane bundle. */
    public static final int MAX_CHUNKS = 10_000;

    private static final String MAPPING = """
        {"dynamic": "strict", "properties": {
          "storage_id": {"type": "keyword"}, "chunk": {"type": "integer"},
          "sha256": {"type": "keyword", "index": false}, "size": {"type": "integer", "index": false},
          "created": {"type": "long"}, "data": {"type": "binary"},
          "parts": {"type": "integer", "index": false}, "part": {"type": "integer"},
          "model": {"type": "keyword", "index": false}, "claim_node": {"type": "keyword", "index": false},
          "claim_time": {"type": "long", "index": false}}}""";
    private static final String UPLOAD_DOC = "upload";

    private final Client client;
    /** Whether this node has brought an existing index's mapping up to date (fields are only ever added). */
    private volatile boolean mappingChecked;

    public BundleStore(Client client) {
        this.client = client;
    }

    /** System index access is internal: run with a clean thread context (no user headers). */
    private ThreadContext.StoredContext stash() {
        return client.threadPool().getThreadContext().stashContext();
    }

    private void ensureIndex() {
        try (ThreadContext.StoredContext ignored = stash()) {
            if (client.admin().indices().prepareExists(INDEX).get().isExists()) {
                if (!mappingChecked) {
                    client.admin().indices().preparePutMapping(INDEX).setSource(MAPPING, XContentType.JSON).get();
                    mappingChecked = true;
                }
                return;
            }
            Settings settings = Settings.builder()
                .put("index.number_of_shards", 1)
                .put("index.auto_expand_replicas", "0-1")
                .put("index.hidden", true)
                .build();
            client.admin().indices().create(new CreateIndexRequest(INDEX).settings(settings).mapping(MAPPING)).actionGet();
            client.admin().cluster().prepareHealth(INDEX).setWaitForYellowStatus().get();
        } catch (ResourceAlreadyExistsException e) {
            // another node created it meanwhile
        }
    }

    static String docId(String storageId, Object chunk) {
        return storageId + "#" + chunk;
    }

    /** Records a new, empty upload. */
    public void createUpload(String uploadId) {
        createUpload(uploadId, null, null, 0);
    }

    /**
     * Records a new, empty upload; with {@code model}, already claimed by that model's register on node
     * {@code node} (ephemeral id) at {@code claimTime} (epoch millis): a path registration's storage, which no
     * DELETE may drop while it is registered. Returns the record written.
     */
    public UploadRecord createUpload(String uploadId, String model, String node, long claimTime) {
        ensureIndex();
        return putRecord(uploadId, System.currentTimeMillis(), model, node, claimTime, null);
    }

    /** Whether {@link #createUpload} recorded this upload. */
    public boolean uploadExists(String uploadId) {
        try (ThreadContext.StoredContext ignored = stash()) {
            return client.prepareGet(INDEX, docId(uploadId, UPLOAD_DOC)).get().isExists();
        } catch (org.opensearch.index.IndexNotFoundException e) {
            return false;
        }
    }

    /**
     * An upload's record as read: the model that claimed it, the ephemeral id of the node whose register
     * claimed it (both null: unclaimed) and when (epoch millis of that node's clock; 0: unclaimed, or claimed
     * by an earlier build that did not record it), and the version a conditional write of it must still find.
     */
    public record UploadRecord(String uploadId, long created, String model, String claimNode, long claimTime, long seqNo, long primaryTerm) {}

    /** The upload's record (realtime), or null when there is none. */
    public UploadRecord readUpload(String uploadId) {
        GetResponse got;
        try (ThreadContext.StoredContext ignored = stash()) {
            got = client.prepareGet(INDEX, docId(uploadId, UPLOAD_DOC)).get();
        } catch (org.opensearch.index.IndexNotFoundException e) {
            return null;
        }
        if (got.isExists() == false) return null;
        Map<String, Object> source = got.getSourceAsMap();
        Object created = source.get("created");
        Object claimTime = source.get("claim_time");
        return new UploadRecord(
            uploadId, created instanceof Number n ? n.longValue() : 0, (String) source.get("model"), (String) source.get("claim_node"),
            claimTime instanceof Number t ? t.longValue() : 0, got.getSeqNo(), got.getPrimaryTerm()
        );
    }

    /**
     * Writes the record's claim ({@code model}, {@code node} and {@code claimTime}, epoch millis; model null:
     * released) if the record is still the version {@code read}; returns the record written, or null when it
     * changed or is gone meanwhile.
     */
    public UploadRecord writeClaim(UploadRecord read, String model, String node, long claimTime) {
        ensureIndex(); // an index made by an earlier build gets the claim_time field first (the mapping is strict)
        try {
            return putRecord(read.uploadId(), read.created(), model, node, claimTime, read);
        } catch (Exception e) {
            if (isConflict(e)) return null;
            throw e;
        }
    }

    /**
     * Writes an upload's record, claimed by {@code model} (null: unclaimed): a new one ({@code ifVersion} null: it
     * must not exist yet), or over {@code ifVersion}, which it must still be. Returns the record written.
     */
    private UploadRecord putRecord(String uploadId, long created, String model, String node, long claimTime, UploadRecord ifVersion) {
        Map<String, Object> source = new java.util.HashMap<>();
        source.put("storage_id", uploadId);
        source.put("created", created);
        if (model != null) {
            source.put("model", model);
            source.put("claim_node", node);
            source.put("claim_time", claimTime);
        }
        IndexRequest request = new IndexRequest(INDEX).id(docId(uploadId, UPLOAD_DOC)).source(source, XContentType.JSON);
        if (ifVersion == null) request.create(true);
        else request.setIfSeqNo(ifVersion.seqNo()).setIfPrimaryTerm(ifVersion.primaryTerm());
        try (ThreadContext.StoredContext ignored = stash()) {
            var r = client.index(request).actionGet();
            return new UploadRecord(uploadId, created, model, model == null ? null : node, model == null ? 0 : claimTime, r.getSeqNo(), r.getPrimaryTerm());
        }
    }

    /** Deletes the record if it is still the version {@code read}; false when it changed or is gone meanwhile. */
    public boolean deleteUploadRecord(UploadRecord read) {
        try (ThreadContext.StoredContext ignored = stash()) {
            var r = client.delete(
                new DeleteRequest(INDEX, docId(read.uploadId(), UPLOAD_DOC)).setIfSeqNo(read.seqNo()).setIfPrimaryTerm(read.primaryTerm())
            ).actionGet();
            return r.getResult() == org.opensearch.action.DocWriteResponse.Result.DELETED;
        } catch (Exception e) {
            if (isConflict(e)) return false;
            throw e;
        }
    }

    private static boolean isConflict(Exception e) {
        return org.opensearch.ExceptionsHelper.unwrapCause(e) instanceof org.opensearch.index.engine.VersionConflictEngineException;
    }

    /**
     * Stores one chunk, checked against {@code expectedSha256}. Write-once: sending a stored chunk again
     * with the same bytes is a no-op (a retry), with other bytes a 409. The bytes go to part documents
     * ({@link ChunkBytes#PART_BYTES} each, named after the chunk's checksum, so two different bodies never
     * share one) first; the chunk document, which names its checksum and part count, is written last:
     * a chunk exists once all its parts do.
     */
    public void putChunk(String storageId, int chunk, ChunkBytes data, String expectedSha256) {
        if (chunk < 0 || chunk >= MAX_CHUNKS) {
            throw new IllegalArgumentException("chunk number must be between 0 and " + (MAX_CHUNKS - 1) + ", got [" + chunk + "]");
        }
        if (data.length() == 0 || data.length() > MAX_CHUNK_BYTES) {
            throw new IllegalArgumentException("a chunk must hold 1 to " + MAX_CHUNK_BYTES + " bytes, got " + data.length());
        }
        String sha = data.sha256();
        if (!sha.equalsIgnoreCase(expectedSha256)) {
            throw new IllegalArgumentException(
                "chunk [" + chunk + "] is corrupt: its SHA-256 is " + sha + " but the request says " + expectedSha256 + "; send it again"
            );
        }
        ensureIndex();
        if (checkStored(storageId, chunk, sha)) return; // a retry of a stored chunk
        try (ThreadContext.StoredContext ignored = stash()) {
            BulkRequest parts = new BulkRequest();
            for (int p = 0; p < data.parts().size(); p++) {
                Map<String, Object> source = Map.of("storage_id", storageId, "part", p, "data", data.parts().get(p));
                // JSON whatever the default content type: readBundle streams the base64 text out of it
                parts.add(new IndexRequest(INDEX).id(partId(storageId, chunk, sha, p)).source(source, XContentType.JSON));
            }
            var response = client.bulk(parts).actionGet();
            if (response.hasFailures()) throw new IllegalStateException("storing chunk [" + chunk + "]: " + response.buildFailureMessage());
            Map<String, Object> source = Map.of(
                "storage_id", storageId, "chunk", chunk, "sha256", sha, "size", data.length(), "parts", data.parts().size(),
                "created", System.currentTimeMillis()
            );
            client.index(new IndexRequest(INDEX).id(docId(storageId, chunk)).source(source, XContentType.JSON).create(true)).actionGet();
        } catch (Exception e) {
            if (!(org.opensearch.ExceptionsHelper.unwrapCause(e) instanceof org.opensearch.index.engine.VersionConflictEngineException)) throw e;
            checkStored(storageId, chunk, sha); // the same chunk sent twice at once: fine if it was the same bytes
        }
    }

    /** Whether chunk n is stored with these bytes (true), not stored (false), or stored with others (409). */
    private boolean checkStored(String storageId, int chunk, String sha) {
        Object stored;
        try (ThreadContext.StoredContext ignored = stash()) {
            GetResponse got = client.prepareGet(INDEX, docId(storageId, chunk)).setFetchSource("sha256", null).get();
            if (got.isExists() == false) return false;
            stored = got.getSource().get("sha256");
        }
        if (!sha.equals(stored)) {
            throw new OpenSearchStatusException(
                "chunk [" + chunk + "] of upload [" + storageId + "] is already stored with other bytes (SHA-256 " + stored
                    + "); chunks are written once: DELETE the upload and start a new one",
                RestStatus.CONFLICT
            );
        }
        return true;
    }

    static String partId(String storageId, int chunk, String sha, int part) {
        return docId(storageId, chunk) + "." + sha.substring(0, 16) + "." + part;
    }

    /** Cuts a bundle zip into chunks; returns their number. */
    public int putBundle(String storageId, Path zip) throws IOException {
        int n = 0;
        try (InputStream in = Files.newInputStream(zip)) {
            for (ChunkBytes chunk; (chunk = ChunkBytes.read(in, CHUNK_BYTES)).length() > 0; n++) {
                putChunk(storageId, n, chunk, chunk.sha256());
            }
        }
        return n;
    }

    /**
     * Writes chunks 0..chunks-1 to {@code out} in order and checks each chunk's and the whole file's
     * SHA-256; a missing chunk or a mismatch is a 400 that says which. The base64 text is decoded
     * straight from each stored source into the file, 64 KB at a time, one part (a few hundred KB) at a
     * time: the heap never holds a chunk, a decoded copy, a Java string or a map of it, so deploying a
     * large model while queries run stays clear of the circuit breakers. Chunks stored whole (before
     * parts) are read too.
     */
    public void readBundle(String storageId, int chunks, String expectedSha256, Path out) throws IOException {
        MessageDigest whole = digest();
        long bytes = 0;
        try (
            OutputStream file = new BufferedOutputStream(Files.newOutputStream(out), 1 << 16);
            ThreadContext.StoredContext ignored = stash()
        ) {
            OutputStream toFile = new DigestOutputStream(file, whole);
            for (int n = 0; n < chunks; n++) {
                GetResponse got = client.prepareGet(INDEX, docId(storageId, n)).get();
                if (got.isExists() == false) {
                    throw new OpenSearchStatusException(
                        "the bundle is incomplete: chunk [" + n + "] of " + chunks + " is missing (upload [" + storageId + "])",
                        RestStatus.BAD_REQUEST
                    );
                }
                MessageDigest chunkDigest = digest();
                OutputStream chunkOut = new DigestOutputStream(toFile, chunkDigest);
                StoredChunk stored = readFields(got.getSourceAsBytesRef(), chunkOut, n, storageId);
                long copied = stored.bytes();
                if (stored.parts() >= 0) {
                    copied = 0;
                    for (int p = 0; p < stored.parts(); p++) {
                        GetResponse part = client.prepareGet(INDEX, partId(storageId, n, stored.sha256(), p)).get();
                        if (part.isExists() == false) {
                            throw new OpenSearchStatusException(
                                "stored chunk [" + n + "] of [" + storageId + "] misses part [" + p + "]", RestStatus.INTERNAL_SERVER_ERROR
                            );
                        }
                        copied += readFields(part.getSourceAsBytesRef(), chunkOut, n, storageId).bytes();
                    }
                }
                if (stored.sha256() == null || copied < 0 || !HexFormat.of().formatHex(chunkDigest.digest()).equals(stored.sha256())) {
                    throw new OpenSearchStatusException(
                        "stored chunk [" + n + "] of [" + storageId + "] does not match its checksum", RestStatus.INTERNAL_SERVER_ERROR
                    );
                }
                bytes += copied;
            }
        } catch (org.opensearch.index.IndexNotFoundException e) {
            throw new OpenSearchStatusException("no chunks were uploaded for [" + storageId + "]", RestStatus.BAD_REQUEST);
        }
        String sha = HexFormat.of().formatHex(whole.digest());
        if (!sha.equalsIgnoreCase(expectedSha256)) {
            throw new OpenSearchStatusException(
                "checksum mismatch: the " + chunks + " chunks (" + bytes + " bytes) have SHA-256 " + sha + ", expected " + expectedSha256,
                RestStatus.BAD_REQUEST
            );
        }
    }

    private static final JsonFactory JSON = JsonFactory.builder()
        .streamReadConstraints(StreamReadConstraints.builder().maxStringLength(Integer.MAX_VALUE).build())
        .build();

    /** What one stored document held: its sha256 (chunk documents), part count (-1: none), data bytes copied (-1: none). */
    private record StoredChunk(String sha256, int parts, long bytes) {}

    /**
     * Streams the decoded {@code data} field of a stored JSON source (always JSON: {@link #putChunk}) to
     * {@code out} and reads its {@code sha256} and {@code parts}.
     */
    private static StoredChunk readFields(BytesReference source, OutputStream out, int n, String storageId) {
        String sha = null;
        int parts = -1;
        long copied = -1;
        try (JsonParser p = JSON.createParser(source.streamInput())) {
            if (p.nextToken() != JsonToken.START_OBJECT) throw new IOException("not a JSON object");
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                p.nextToken();
                switch (field) {
                    case "data" -> copied = p.readBinaryValue(out);
                    case "sha256" -> sha = p.getText();
                    case "parts" -> parts = p.getIntValue();
                    default -> p.skipChildren();
                }
            }
        } catch (IOException e) {
            throw new OpenSearchStatusException(
                "stored chunk [" + n + "] of [" + storageId + "] cannot be read: " + e.getMessage(), RestStatus.INTERNAL_SERVER_ERROR, e
            );
        }
        if (copied < 0 && parts < 0) {
            throw new OpenSearchStatusException("stored chunk [" + n + "] of [" + storageId + "] has no data", RestStatus.INTERNAL_SERVER_ERROR);
        }
        return new StoredChunk(sha, parts, copied);
    }

    /** Number of chunks stored under an id (0 when none). */
    public long countChunks(String storageId) {
        try (ThreadContext.StoredContext ignored = stash()) {
            client.admin().indices().prepareRefresh(INDEX).get();
            return client.prepareSearch(INDEX).setSize(0).setQuery(chunksOf(storageId)).get().getHits().getTotalHits().value();
        } catch (org.opensearch.index.IndexNotFoundException e) {
            return 0;
        }
    }

    /** Whether anything (upload record, chunk, part) is stored under an id. */
    public boolean holdsAnything(String storageId) {
        try (ThreadContext.StoredContext ignored = stash()) {
            client.admin().indices().prepareRefresh(INDEX).get();
            return client.prepareSearch(INDEX).setSize(0).setQuery(QueryBuilders.termQuery("storage_id", storageId)).get()
                .getHits().getTotalHits().value() > 0;
        } catch (org.opensearch.index.IndexNotFoundException e) {
            return false;
        }
    }

    private static org.opensearch.index.query.QueryBuilder chunksOf(String storageId) {
        return QueryBuilders.boolQuery().filter(QueryBuilders.termQuery("storage_id", storageId)).filter(QueryBuilders.existsQuery("chunk"));
    }

    /** What one storage id holds: chunks, their bytes, first and last write; {@code upload} when it was created as an upload. */
    public record Stored(String storageId, long chunks, long bytes, long firstWrite, long lastWrite, boolean upload) {}

    /** Every storage id in the index (uploads, registered models' bundles, and what a crash left). */
    public java.util.List<Stored> list() {
        var terms = org.opensearch.search.aggregations.AggregationBuilders.terms("ids").field("storage_id").size(10_000)
            .subAggregation(org.opensearch.search.aggregations.AggregationBuilders.count("chunks").field("chunk"))
            .subAggregation(org.opensearch.search.aggregations.AggregationBuilders.count("parts").field("part"))
            .subAggregation(org.opensearch.search.aggregations.AggregationBuilders.sum("bytes").field("size"))
            .subAggregation(org.opensearch.search.aggregations.AggregationBuilders.min("first").field("created"))
            .subAggregation(org.opensearch.search.aggregations.AggregationBuilders.max("last").field("created"));
        SearchResponse r;
        try (ThreadContext.StoredContext ignored = stash()) {
            client.admin().indices().prepareRefresh(INDEX).get();
            r = client.prepareSearch(INDEX).setSize(0).addAggregation(terms).get();
        } catch (org.opensearch.index.IndexNotFoundException e) {
            return java.util.List.of();
        }
        java.util.List<Stored> out = new java.util.ArrayList<>();
        org.opensearch.search.aggregations.bucket.terms.Terms ids = r.getAggregations().get("ids");
        for (var b : ids.getBuckets()) {
            var a = b.getAggregations();
            long chunks = ((org.opensearch.search.aggregations.metrics.ValueCount) a.get("chunks")).getValue();
            long bytes = (long) ((org.opensearch.search.aggregations.metrics.Sum) a.get("bytes")).getValue();
            double first = ((org.opensearch.search.aggregations.metrics.Min) a.get("first")).getValue();
            double last = ((org.opensearch.search.aggregations.metrics.Max) a.get("last")).getValue();
            long parts = ((org.opensearch.search.aggregations.metrics.ValueCount) a.get("parts")).getValue();
            // an upload's record is the one document of its id that is neither a chunk nor a part
            boolean upload = b.getDocCount() > chunks + parts;
            out.add(new Stored(b.getKeyAsString(), chunks, bytes, Double.isFinite(first) ? (long) first : 0, Double.isFinite(last) ? (long) last : 0, upload));
        }
        return out;
    }

    /** Deletes every chunk stored under an id. */
    public void delete(String storageId) {
        try (ThreadContext.StoredContext ignored = stash()) {
            client.admin().indices().prepareRefresh(INDEX).get();
            while (true) {
                SearchResponse r = client.prepareSearch(INDEX)
                    .setSource(new SearchSourceBuilder().query(QueryBuilders.termQuery("storage_id", storageId)).size(1000).fetchSource(false))
                    .get();
                if (r.getHits().getHits().length == 0) return;
                BulkRequest bulk = new BulkRequest().setRefreshPolicy(org.opensearch.action.support.WriteRequest.RefreshPolicy.IMMEDIATE);
                for (SearchHit h : r.getHits().getHits()) bulk.add(new DeleteRequest(INDEX, h.getId()));
                client.bulk(bulk).actionGet();
            }
        } catch (org.opensearch.index.IndexNotFoundException e) {
            // nothing stored
        }
    }

    static MessageDigest digest() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    public static String sha256(byte[] data) {
        return HexFormat.of().formatHex(digest().digest(data));
    }
}
