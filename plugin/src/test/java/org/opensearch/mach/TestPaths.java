package org.opensearch.mach;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/** Where the shared spec and the test fixture live, from the build's system properties. */
public final class TestPaths {
    private TestPaths() {}

    /** The repository root (the parent of plugin/). */
    public static Path projectRoot() {
        String prop = System.getProperty("mach.project.root");
        Path start = prop != null ? Paths.get(prop) : Paths.get("").toAbsolutePath();
        for (Path p = start.toAbsolutePath().normalize(); p != null; p = p.getParent()) {
            if (Files.isRegularFile(p.resolve("spec/test-vectors.json"))) {
                return p;
            }
        }
        throw new IllegalStateException("cannot find spec/test-vectors.json above " + start);
    }

    public static Path testVectors() {
        return projectRoot().resolve("spec/test-vectors.json");
    }

    /**
     * An encoder directory (encoder.onnx + HF tokenizer.json) that the build unpacks before the tests:
     * {@code all-minilm-l6-v2-q} (int8) or {@code all-minilm-l6-v2} (fp32).
     */
    public static Path encoderDir(String name) {
        String prop = System.getProperty("mach.encoders.dir");
        Path dir = (prop != null ? Paths.get(prop) : projectRoot().resolve("plugin/target/encoders")).resolve(name);
        if (!Files.isRegularFile(dir.resolve("encoder.onnx"))) {
            throw new IllegalStateException("no encoder.onnx in [" + dir + "]: run the tests through Maven (it unpacks the encoders first)");
        }
        return dir;
    }

    /** plugin/src/test/resources/fixtures/tiny: bundle/, products.tsv, queries.tsv. */
    public static Path tinyFixture() {
        return projectRoot().resolve("plugin/src/test/resources/fixtures/tiny");
    }
}
