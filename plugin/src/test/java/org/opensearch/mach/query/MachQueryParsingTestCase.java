package org.opensearch.mach.query;

import org.opensearch.common.io.stream.BytesStreamOutput;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.xcontent.json.JsonXContent;
import org.opensearch.core.common.ParsingException;
import org.opensearch.core.common.io.stream.NamedWriteableAwareStreamInput;
import org.opensearch.core.common.io.stream.NamedWriteableRegistry;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.query.AbstractQueryBuilder;
import org.opensearch.index.query.QueryBuilder;
import org.opensearch.mach.MachPlugin;
import org.opensearch.search.SearchModule;
import org.opensearch.test.OpenSearchTestCase;

import java.io.IOException;
import java.util.List;

/** The plugin's queries parsed as a search request parses them (no model, no index), and their JSON and wire round trips. */
public abstract class MachQueryParsingTestCase extends OpenSearchTestCase {
    private final SearchModule searchModule = new SearchModule(Settings.EMPTY, List.of(new MachPlugin()));

    @Override
    protected NamedXContentRegistry xContentRegistry() {
        return new NamedXContentRegistry(searchModule.getNamedXContents());
    }

    @Override
    protected NamedWriteableRegistry writableRegistry() {
        return new NamedWriteableRegistry(searchModule.getNamedWriteables());
    }

    QueryBuilder parse(String json) throws IOException {
        try (XContentParser parser = createParser(JsonXContent.jsonXContent, json)) {
            return AbstractQueryBuilder.parseInnerQueryBuilder(parser);
        }
    }

    /** The message of the 400 a query gets, with its cause's. */
    String parseError(String json) {
        ParsingException e = expectThrows(ParsingException.class, () -> parse(json));
        return e.getMessage() + (e.getCause() != null ? " / " + e.getCause().getMessage() : "");
    }

    /** The query survives its JSON form and the wire, equal and with the same hash. */
    void assertRoundTrips(QueryBuilder q) throws IOException {
        assertEquals(q, parse(q.toString()));
        try (BytesStreamOutput out = new BytesStreamOutput()) {
            out.writeNamedWriteable(q);
            try (StreamInput in = new NamedWriteableAwareStreamInput(out.bytes().streamInput(), writableRegistry())) {
                QueryBuilder read = in.readNamedWriteable(QueryBuilder.class);
                assertEquals(q, read);
                assertEquals(q.hashCode(), read.hashCode());
            }
        }
    }
}
