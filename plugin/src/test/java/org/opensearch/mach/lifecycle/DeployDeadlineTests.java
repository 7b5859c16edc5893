package org.opensearch.mach.lifecycle;

import org.opensearch.common.unit.TimeValue;
import org.opensearch.test.OpenSearchTestCase;

/** How long _deploy waits for every node: its {@code timeout} from now, whatever the value and System.nanoTime's origin. */
public class DeployDeadlineTests extends OpenSearchTestCase {

    public void testTimeoutsOfAnySize() {
        for (long now : new long[] { System.nanoTime(), 0, -5, Long.MAX_VALUE - 1000, Long.MIN_VALUE + 7, randomLong() }) {
            long twoMinutes = ModelLifecycleService.deadline(now, TimeValue.timeValueMinutes(2));
            assertFalse(ModelLifecycleService.passed(now, twoMinutes));
            assertFalse(ModelLifecycleService.passed(now + TimeValue.timeValueSeconds(119).nanos(), twoMinutes));
            assertTrue(ModelLifecycleService.passed(now + TimeValue.timeValueSeconds(121).nanos(), twoMinutes));
            // longer than nanoTime arithmetic holds: still far away, never already passed
            for (TimeValue huge : new TimeValue[] { new TimeValue(365_000, java.util.concurrent.TimeUnit.DAYS), TimeValue.timeValueDays(106_751), new TimeValue(Long.MAX_VALUE, java.util.concurrent.TimeUnit.DAYS) }) {
                long d = ModelLifecycleService.deadline(now, huge);
                assertFalse(huge + " from " + now, ModelLifecycleService.passed(now + TimeValue.timeValueDays(365).nanos(), d));
            }
            // 0 and OpenSearch's -1: no wait
            assertTrue(ModelLifecycleService.passed(now + 1, ModelLifecycleService.deadline(now, TimeValue.ZERO)));
            assertTrue(ModelLifecycleService.passed(now + 1, ModelLifecycleService.deadline(now, TimeValue.MINUS_ONE)));
        }
    }
}
