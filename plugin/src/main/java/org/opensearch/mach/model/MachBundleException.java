package org.opensearch.mach.model;

/** A model bundle that cannot be used; the message names the file or field, what was expected and what was found. */
public class MachBundleException extends Exception {
    public MachBundleException(String message) {
        super(message);
    }

    public MachBundleException(String message, Throwable cause) {
        super(message, cause);
    }
}
