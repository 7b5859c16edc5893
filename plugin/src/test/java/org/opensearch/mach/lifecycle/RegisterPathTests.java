package org.opensearch.mach.lifecycle;

import org.opensearch.test.OpenSearchTestCase;

import java.nio.file.Path;

/** {@code _register {"path": ...}}: the checks on the path that come before the file system is read. */
public class RegisterPathTests extends OpenSearchTestCase {

    private void assertRefused(String path, String message) {
        Path dir = createTempDir();
        ModelLifecycleService service = new ModelLifecycleService(null, null, null, null, dir, createTempDir());
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class, () -> service.copyFromPath(path, dir.resolve("out.zip")));
        assertTrue(path + ": " + e.getMessage(), e.getMessage().startsWith(message));
    }

    public void testPathRefusalsNameThePath() {
        assertRefused("a\u0000b.zip", "[path] is not a valid path");
        assertRefused(" ", "[path] must name a bundle zip or directory");
        assertRefused("../elsewhere.zip", "[path] must be inside the registration directory");
        assertRefused("/etc/passwd", "[path] must be inside the registration directory");
    }
}
