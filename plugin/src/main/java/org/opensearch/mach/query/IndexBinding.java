package org.opensearch.mach.query;

import org.opensearch.action.IndicesRequest;
import org.opensearch.cluster.ClusterState;
import org.opensearch.cluster.metadata.IndexMetadata;
import org.opensearch.cluster.metadata.IndexNameExpressionResolver;
import org.opensearch.common.settings.Setting;

import java.util.Map;
import java.util.TreeMap;

/**
 * The model (id or alias) and product-id field an index binds through its dynamic settings
 * {@code index.mach.model} and {@code index.mach.product_id_field}, so that
 * {@code {"mach": {"query_text": "..."}}} works on it. Re-pointing an index to another model is a
 * settings update: the index holds product ids, not model output, so nothing is reindexed.
 *
 * {@code index.mach.bucket_field} binds instead a {@code mach_buckets} field (index-side MACH: the
 * shards score from the indexed buckets); an index binds one of the two fields, never both.
 *
 * @param model          the bound model, or null when no searched index sets one
 * @param productIdField the bound product-id field, or null
 * @param bucketField    the bound mach_buckets field, or null
 * @param indices        the concrete indices searched, with their values (for error messages)
 */
public record IndexBinding(String model, String productIdField, String bucketField, Map<String, String> indices) {
    /** Validated when set, so an index cannot bind a name that no model or alias can ever have. */
    public static final Setting<String> MODEL = Setting.simpleString("index.mach.model", value -> {
        if (!value.isEmpty() && !org.opensearch.mach.model.ModelRegistry.validName(value)) {
            throw new IllegalArgumentException(
                "[index.mach.model] must be a model id or alias ([A-Za-z0-9][A-Za-z0-9._-], at most 128 characters), got [" + value + "]"
            );
        }
    }, Setting.Property.IndexScope, Setting.Property.Dynamic);
    public static final Setting<String> PRODUCT_ID_FIELD = Setting.simpleString(
        "index.mach.product_id_field", Setting.Property.IndexScope, Setting.Property.Dynamic
    );
    public static final Setting<String> BUCKET_FIELD = Setting.simpleString(
        "index.mach.bucket_field", Setting.Property.IndexScope, Setting.Property.Dynamic
    );

    /** The binding of the indices a search request targets; all must agree (an index that sets nothing disagrees with one that does). */
    public static IndexBinding resolve(ClusterState state, IndexNameExpressionResolver resolver, IndicesRequest request) {
        String[] names = resolver.concreteIndexNames(state, request);
        Map<String, String> models = new TreeMap<>();
        Map<String, String> fields = new TreeMap<>();
        Map<String, String> bucketFields = new TreeMap<>();
        for (String name : names) {
            IndexMetadata index = state.metadata().index(name);
            if (index == null) continue;
            models.put(name, MODEL.get(index.getSettings()));
            fields.put(name, PRODUCT_ID_FIELD.get(index.getSettings()));
            bucketFields.put(name, BUCKET_FIELD.get(index.getSettings()));
        }
        return new IndexBinding(single(models, MODEL), single(fields, PRODUCT_ID_FIELD), single(bucketFields, BUCKET_FIELD), models);
    }

    private static String single(Map<String, String> values, Setting<String> setting) {
        if (values.values().stream().distinct().count() > 1) {
            throw new IllegalArgumentException(
                "[mach] the searched indices disagree on " + setting.getKey() + " " + values + "; give the value in the query or search them apart"
            );
        }
        String v = values.isEmpty() ? "" : values.values().iterator().next();
        return v.isEmpty() ? null : v;
    }

    /**
     * The bucket field when the indices bind exactly one of the two fields: null for the product-id
     * field, the bucket field's name for it; a 400 when they bind both or neither.
     */
    String requireOneField() {
        if (productIdField != null && bucketField != null) {
            throw new IllegalArgumentException(
                "[mach] the searched indices " + indices.keySet() + " set both " + PRODUCT_ID_FIELD.getKey() + " [" + productIdField + "] and "
                    + BUCKET_FIELD.getKey() + " [" + bucketField + "]; a query uses one: give [product_id_field] or [bucket_field] in the query"
            );
        }
        if (productIdField == null && bucketField == null) {
            throw new IllegalArgumentException(
                "[mach] requires [product_id_field] or [bucket_field]: give one in the query, or set " + PRODUCT_ID_FIELD.getKey() + " or "
                    + BUCKET_FIELD.getKey() + " on the searched indices " + indices.keySet()
            );
        }
        return bucketField;
    }

    /** The value, or an error naming the query parameter and the index setting that could give it. */
    String require(String value, Setting<String> setting, String parameter) {
        if (value == null) {
            throw new IllegalArgumentException(
                "[mach] requires [" + parameter + "]: give it in the query, or set " + setting.getKey() + " on the searched indices "
                    + indices.keySet()
            );
        }
        return value;
    }
}
