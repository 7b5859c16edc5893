package org.opensearch.mach.inference;

import org.opensearch.OpenSearchStatusException;
import org.opensearch.core.rest.RestStatus;

/** The model was released (undeployed, replaced) between looking it up and running it; looking it up again finds the current one. */
public final class ModelRetiredException extends OpenSearchStatusException {
    public ModelRetiredException(String modelId) {
        super("model [" + modelId + "] was undeployed or replaced while the query was running; retry", RestStatus.SERVICE_UNAVAILABLE);
    }
}
