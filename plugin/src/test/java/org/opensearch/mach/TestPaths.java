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

    /** plugin/src/test/resources/fixtures/tiny: bundle/, products.tsv, queries.tsv. */
    public static Path tinyFixture() {
        return projectRoot().resolve("plugin/src/test/resources/fixtures/tiny");
    }
}
