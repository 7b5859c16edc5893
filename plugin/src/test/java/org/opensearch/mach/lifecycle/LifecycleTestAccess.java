package org.opensearch.mach.lifecycle;

import java.util.function.Consumer;
import java.util.function.LongSupplier;

/** Lets cluster tests in other packages drive a node's {@link ModelLifecycleService} hooks, which are not public. */
public final class LifecycleTestAccess {
    private LifecycleTestAccess() {}

    /** Runs {@code hook} with each named phase of register and DELETE (see the service's testHook). */
    public static void setTestHook(ModelLifecycleService service, Consumer<String> hook) {
        service.setTestHook(hook);
    }

    /** Moves the clock the service takes, renews and judges claims by. */
    public static void setClock(ModelLifecycleService service, LongSupplier clock) {
        service.setClock(clock);
    }
}
