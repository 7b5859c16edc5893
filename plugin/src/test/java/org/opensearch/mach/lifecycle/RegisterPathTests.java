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

    /**
     * A bundle directory inside the registration directory whose card is a link to a file outside it:
     * the link is not followed (the file's first token came back in the "not valid JSON" message).
     */
    public void testACardThatLinksOutsideIsNotRead() throws Exception {
        Path dir = Path.of(createTempDir().toString()); // the default file system: the test one has no links
        Path outside = Path.of(createTempDir().toString()).resolve("secret.txt");
        java.nio.file.Files.writeString(outside, "topsecret:x:0:0\n");
        java.nio.file.Files.createDirectories(dir.resolve("evil"));
        java.nio.file.Files.createSymbolicLink(dir.resolve("evil").resolve("mach.json"), outside);
        ModelLifecycleService service = new ModelLifecycleService(null, null, null, null, dir, createTempDir());
        Exception e = expectThrows(Exception.class, () -> service.copyFromPath("evil", Path.of(createTempDir().toString()).resolve("out.zip")));
        assertEquals(e.toString(), org.opensearch.core.rest.RestStatus.BAD_REQUEST, org.opensearch.ExceptionsHelper.status(e));
        assertTrue(e.getMessage(), e.getMessage().startsWith("[evil] is not a valid bundle: no mach.json"));
        assertFalse(e.getMessage(), e.getMessage().contains("topsecret"));
    }
}
