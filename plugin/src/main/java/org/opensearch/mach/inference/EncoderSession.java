package org.opensearch.mach.inference;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

import java.io.Closeable;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A lease on the ONNX Runtime session of a sentence encoder. Models whose encoder file has the same
 * sha256 (opened with the same options) share one session: the encoder is most of a format 2
 * model's weights (23 MB int8, 90 MB fp32) and many models are trained on the same one. The session
 * closes when the last lease does.
 */
public final class EncoderSession implements Closeable {
    private record Key(String sha256, boolean tryCuda, int intraOpThreads) {}

    private static final class Shared {
        final OrtSessions.Opened opened;
        int leases;

        Shared(OrtSessions.Opened opened) {
            this.opened = opened;
        }
    }

    private static final Map<Key, Shared> SHARED = new HashMap<>();

    private final Key key;
    private final Shared shared;
    private final AtomicBoolean closed = new AtomicBoolean();

    private EncoderSession(Key key, Shared shared) {
        this.key = key;
        this.shared = shared;
    }

    /** @param sha256 the file's verified checksum: the identity under which the session is shared */
    public static EncoderSession acquire(OrtEnvironment env, Path file, String sha256, boolean tryCuda, int intraOpThreads, String modelId)
        throws OrtException {
        Key key = new Key(sha256, tryCuda, intraOpThreads);
        synchronized (SHARED) { // opening an encoder takes ~1 s and happens only when a model loads
            Shared shared = SHARED.get(key);
            if (shared == null) {
                shared = new Shared(OrtSessions.open(env, file, tryCuda, intraOpThreads, modelId));
                SHARED.put(key, shared);
            }
            shared.leases++;
            return new EncoderSession(key, shared);
        }
    }

    public OrtSession session() {
        return shared.opened.session();
    }

    public String device() {
        return shared.opened.device();
    }

    /** Encoder sessions open in this JVM (for tests). */
    static int openSessions() {
        synchronized (SHARED) {
            return SHARED.size();
        }
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true) == false) return;
        synchronized (SHARED) {
            if (--shared.leases == 0) {
                SHARED.remove(key);
                OrtSessions.closeQuietly(shared.opened.session());
            }
        }
    }
}
