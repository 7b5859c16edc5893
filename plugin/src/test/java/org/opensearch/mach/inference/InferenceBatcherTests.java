package org.opensearch.mach.inference;

import org.opensearch.test.OpenSearchTestCase;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/** A request alone is answered on the thread that ran its batch; a batch's other follow-ups still go to a second worker. */
public class InferenceBatcherTests extends OpenSearchTestCase {

    public void testARequestAloneIsAnsweredOnTheThreadThatRanItsBatch() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            AtomicInteger started = new AtomicInteger();
            AtomicReference<Thread> ranBatch = new AtomicReference<>(), answered = new AtomicReference<>();
            CountDownLatch done = new CountDownLatch(1);
            InferenceBatcher<String> batcher = new InferenceBatcher<>(null, 2, 8, task -> {
                started.incrementAndGet();
                pool.execute(task);
                return true;
            }, batch -> {
                ranBatch.set(Thread.currentThread());
                return List.of(() -> {
                    answered.set(Thread.currentThread());
                    done.countDown();
                });
            }, rejected -> fail("rejected " + rejected));
            batcher.submit("one");
            assertTrue(done.await(10, TimeUnit.SECONDS));
            assertSame(ranBatch.get(), answered.get());
            assertEquals("no second worker woken for the follow-up", 1, started.get());
        } finally {
            pool.shutdown();
        }
    }

    public void testEveryFollowUpOfABatchRuns() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            int n = 5;
            CountDownLatch done = new CountDownLatch(n);
            List<String> answers = java.util.Collections.synchronizedList(new ArrayList<>());
            CountDownLatch release = new CountDownLatch(1);
            InferenceBatcher<String> batcher = new InferenceBatcher<>(null, 1, 8, task -> {
                pool.execute(task);
                return true;
            }, batch -> {
                try {
                    release.await(10, TimeUnit.SECONDS); // the first batch holds the only worker while the rest queue
                } catch (InterruptedException e) {
                    throw new AssertionError(e);
                }
                List<Runnable> followUps = new ArrayList<>();
                for (String t : batch) followUps.add(() -> {
                    answers.add(t);
                    done.countDown();
                });
                return followUps;
            }, rejected -> fail("rejected " + rejected));
            for (int i = 0; i < n; i++) batcher.submit("q" + i);
            release.countDown();
            assertTrue(done.await(10, TimeUnit.SECONDS));
            assertEquals(n, answers.size());
            assertEquals(List.of("q0", "q1", "q2", "q3", "q4"), answers.stream().sorted().toList());
        } finally {
            pool.shutdown();
        }
    }
}
