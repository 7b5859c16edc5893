package org.opensearch.mach.inference;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

import java.nio.file.Path;

/** Opens ONNX Runtime sessions: on CUDA when asked and available, else on the CPU. */
public final class OrtSessions {
    private static final Logger logger = LogManager.getLogger(OrtSessions.class);

    private OrtSessions() {}

    public record Opened(OrtSession session, String device) {}

    /**
     * From the file's path, not its bytes: a session made from bytes cannot resolve external data
     * files (models over 2 GB).
     */
    public static Opened open(OrtEnvironment env, Path file, boolean tryCuda, int intraOpThreads, String modelId) throws OrtException {
        if (tryCuda) {
            try (OrtSession.SessionOptions opts = new OrtSession.SessionOptions()) {
                opts.setIntraOpNumThreads(intraOpThreads);
                opts.addCUDA(0);
                return new Opened(env.createSession(file.toString(), opts), "cuda");
            } catch (OrtException | RuntimeException | LinkageError e) {
                logger.warn("mach model [{}]: CUDA not available ({}), falling back to CPU", modelId, e.getMessage());
            }
        }
        try (OrtSession.SessionOptions opts = new OrtSession.SessionOptions()) {
            opts.setIntraOpNumThreads(intraOpThreads);
            // ORT's helper threads otherwise spin between operators, taking the cores the shard's search needs
            if (intraOpThreads > 1) opts.addConfigEntry("session.intra_op.allow_spinning", "0");
            return new Opened(env.createSession(file.toString(), opts), "cpu");
        }
    }

    public static void closeQuietly(OrtSession session) {
        if (session == null) return;
        try {
            session.close();
        } catch (OrtException e) {
            // nothing useful to do on close; the native session is gone with the process anyway
        }
    }
}
