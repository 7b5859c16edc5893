package org.opensearch.mach.model;

import org.opensearch.OpenSearchStatusException;
import org.opensearch.core.rest.RestStatus;
import org.opensearch.test.OpenSearchTestCase;

import java.util.concurrent.atomic.AtomicLong;

/** The node's one account of model memory: admissions, refusals that change nothing, catalogs. */
public class NodeModelMemoryTests extends OpenSearchTestCase {

    public void testAdmitRefuseSetRelease() {
        AtomicLong limit = new AtomicLong(100);
        NodeModelMemory memory = new NodeModelMemory(limit::get);
        Object a = new Object(), b = new Object();
        memory.admit(a, 60, (bytes, used, lim) -> new IllegalStateException("refused"));
        OpenSearchStatusException e = expectThrows(
            OpenSearchStatusException.class,
            () -> memory.admit(b, 41, (bytes, used, lim) -> NodeModelMemory.networkRefusal("model [b]", bytes, used, lim))
        );
        assertEquals(RestStatus.BAD_REQUEST, e.status());
        assertTrue(e.getMessage(), e.getMessage().contains("model [b] needs 41b") && e.getMessage().contains("use 60b")
            && e.getMessage().contains("mach.models.memory_limit is 100b"));
        assertEquals("a refusal changes nothing", 60, memory.used());
        assertEquals(0, memory.held(b));
        memory.admit(b, 40, (bytes, used, lim) -> new IllegalStateException("refused"));
        assertEquals(100, memory.used());
        // a holder's new figure replaces its old one (an estimate replaced by what was measured)
        memory.admit(a, 50, (bytes, used, lim) -> new IllegalStateException("refused"));
        memory.set(b, 10);
        assertEquals(60, memory.used());
        memory.release(a);
        memory.release(a);
        assertEquals(10, memory.used());
        limit.set(5); // lowered below what is held: nothing is evicted, new admissions are refused
        expectThrows(OpenSearchStatusException.class, () -> memory.admit(a, 1, (bytes, used, lim) -> NodeModelMemory.networkRefusal("a", bytes, used, lim)));
        assertEquals(10, memory.used());
    }

    public void testCatalogAdmission() {
        AtomicLong limit = new AtomicLong(100);
        NodeModelMemory memory = new NodeModelMemory(limit::get);
        Object network = new Object();
        memory.admit(network, 70, (bytes, used, lim) -> new IllegalStateException("refused"));
        NodeModelMemory.CatalogAdmission catalog = memory.catalogAdmission("m");
        OpenSearchStatusException e = expectThrows(OpenSearchStatusException.class, () -> catalog.admit(null, 31));
        assertEquals(RestStatus.BAD_REQUEST, e.status());
        assertTrue(e.getMessage(), e.getMessage().contains("model [m]: its product catalog") && e.getMessage().contains("needs 31b")
            && e.getMessage().contains("use 70b") && e.getMessage().contains("mach.models.memory_limit is 100b"));
        assertEquals(0, catalog.held());
        catalog.admit(null, 30);
        assertEquals(30, catalog.held());
        assertEquals(100, memory.used());
        catalog.release(null, 30); // a read that failed gives it back
        assertEquals(70, memory.used());
        catalog.admit(null, 30);
        catalog.close(); // its model released
        assertEquals(70, memory.used());
        catalog.admit(null, 30); // a query still running on the released model: held by no account
        assertEquals(70, memory.used());
        assertEquals(0, catalog.held());
    }
}
