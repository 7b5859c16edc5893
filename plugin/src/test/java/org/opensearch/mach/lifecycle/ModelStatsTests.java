package org.opensearch.mach.lifecycle;

import org.opensearch.test.OpenSearchTestCase;

import java.util.Map;

public class ModelStatsTests extends OpenSearchTestCase {

    public void testPercentilesOverTheLastWindow() {
        ModelStats s = new ModelStats();
        assertNull("nothing recorded yet", s.toMap().get("latency_p50_ms"));
        for (int i = 1; i <= 100; i++) s.recordSuccess(i * 1_000_000L); // 1..100 ms
        s.recordError();
        Map<String, Object> m = s.toMap();
        assertEquals(101L, m.get("queries"));
        assertEquals(1L, m.get("errors"));
        assertEquals(50.0, (Double) m.get("latency_p50_ms"), 0);
        assertEquals(99.0, (Double) m.get("latency_p99_ms"), 0);
        // only the last WINDOW inferences count: push 1 ms values until the old ones are gone
        for (int i = 0; i < ModelStats.WINDOW; i++) s.recordSuccess(1_000_000L);
        assertEquals(1.0, (Double) s.toMap().get("latency_p99_ms"), 0);
        assertEquals(ModelStats.WINDOW, s.toMap().get("latency_window"));
    }
}
