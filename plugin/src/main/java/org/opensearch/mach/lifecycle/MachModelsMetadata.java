package org.opensearch.mach.lifecycle;

import org.opensearch.Version;
import org.opensearch.cluster.AbstractNamedDiffable;
import org.opensearch.cluster.ClusterState;
import org.opensearch.cluster.NamedDiff;
import org.opensearch.cluster.metadata.Metadata;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;

import java.io.IOException;
import java.util.Collections;
import java.util.EnumSet;
import java.util.Map;
import java.util.TreeMap;

/**
 * The cluster's MACH models and aliases, in the cluster state (persisted with it: a restarted
 * cluster keeps them). Immutable; the {@code with...} methods return changed copies, applied by
 * {@link TransportUpdateModelsAction} on the cluster manager, so every change (an alias swap above
 * all) reaches every node at once, atomically.
 */
public final class MachModelsMetadata extends AbstractNamedDiffable<Metadata.Custom> implements Metadata.Custom {
    public static final String TYPE = "mach_models";
    public static final MachModelsMetadata EMPTY = new MachModelsMetadata(Map.of(), Map.of());

    private final Map<String, ModelEntry> models;
    private final Map<String, String> aliases;

    public MachModelsMetadata(Map<String, ModelEntry> models, Map<String, String> aliases) {
        this.models = Collections.unmodifiableMap(new TreeMap<>(models));
        this.aliases = Collections.unmodifiableMap(new TreeMap<>(aliases));
    }

    public MachModelsMetadata(StreamInput in) throws IOException {
        this(in.readMap(StreamInput::readString, ModelEntry::new), in.readMap(StreamInput::readString, StreamInput::readString));
    }

    /** The metadata of a cluster state (EMPTY when none was ever written). */
    public static MachModelsMetadata of(ClusterState state) {
        MachModelsMetadata m = state.metadata().custom(TYPE);
        return m == null ? EMPTY : m;
    }

    public Map<String, ModelEntry> models() {
        return models;
    }

    public Map<String, String> aliases() {
        return aliases;
    }

    /** The model id a name stands for: an alias' target, else the name itself. */
    public String resolve(String nameOrAlias) {
        return aliases.getOrDefault(nameOrAlias, nameOrAlias);
    }

    public ModelEntry model(String nameOrAlias) {
        return models.get(resolve(nameOrAlias));
    }

    public MachModelsMetadata withModel(ModelEntry entry) {
        Map<String, ModelEntry> m = new TreeMap<>(models);
        m.put(entry.id(), entry);
        return new MachModelsMetadata(m, aliases);
    }

    public MachModelsMetadata withoutModel(String id) {
        Map<String, ModelEntry> m = new TreeMap<>(models);
        m.remove(id);
        return new MachModelsMetadata(m, aliases);
    }

    public MachModelsMetadata withAlias(String alias, String modelId) {
        Map<String, String> a = new TreeMap<>(aliases);
        if (modelId == null) a.remove(alias);
        else a.put(alias, modelId);
        return new MachModelsMetadata(models, a);
    }

    @Override
    public EnumSet<Metadata.XContentContext> context() {
        return Metadata.API_AND_GATEWAY;
    }

    @Override
    public String getWriteableName() {
        return TYPE;
    }

    @Override
    public Version getMinimalSupportedVersion() {
        return Version.CURRENT.minimumCompatibilityVersion();
    }

    @Override
    public void writeTo(StreamOutput out) throws IOException {
        out.writeMap(models, StreamOutput::writeString, (o, e) -> e.writeTo(o));
        out.writeMap(aliases, StreamOutput::writeString, StreamOutput::writeString);
    }

    public static NamedDiff<Metadata.Custom> readDiffFrom(StreamInput in) throws IOException {
        return readDiffFrom(Metadata.Custom.class, TYPE, in);
    }

    @Override
    public XContentBuilder toXContent(XContentBuilder b, Params params) throws IOException {
        b.startObject("models");
        for (ModelEntry e : models.values()) {
            b.field(e.id());
            e.toXContent(b, params);
        }
        b.endObject();
        b.field("aliases", aliases);
        return b;
    }

    @SuppressWarnings("unchecked")
    public static MachModelsMetadata fromXContent(XContentParser parser) throws IOException {
        Map<String, Object> map = parser.map();
        Map<String, ModelEntry> models = new TreeMap<>();
        Map<String, Object> rawModels = (Map<String, Object>) map.getOrDefault("models", Map.of());
        for (Map.Entry<String, Object> e : rawModels.entrySet()) {
            models.put(e.getKey(), ModelEntry.fromMap(e.getKey(), (Map<String, Object>) e.getValue()));
        }
        Map<String, String> aliases = new TreeMap<>();
        ((Map<String, Object>) map.getOrDefault("aliases", Map.of())).forEach((k, v) -> aliases.put(k, (String) v));
        return new MachModelsMetadata(models, aliases);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof MachModelsMetadata m && m.models.equals(models) && m.aliases.equals(aliases);
    }

    @Override
    public int hashCode() {
        return 31 * models.hashCode() + aliases.hashCode();
    }

    @Override
    public String toString() {
        return "MachModelsMetadata{models=" + models.keySet() + ", aliases=" + aliases + "}";
    }
}
