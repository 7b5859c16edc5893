package org.opensearch.mach.query;

import org.apache.lucene.search.MatchNoDocsQuery;
import org.apache.lucene.search.Query;
import org.opensearch.core.common.ParsingException;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.index.query.QueryShardException;
import org.opensearch.mach.MachPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.test.AbstractQueryTestCase;
import org.opensearch.test.TestGeoShapeFieldMapperPlugin;

import java.io.IOException;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

public class MachProductsQueryBuilderTests extends AbstractQueryTestCase<MachProductsQueryBuilder> {

    @Override
    protected Collection<Class<? extends Plugin>> getPlugins() {
        return List.of(MachPlugin.class, TestGeoShapeFieldMapperPlugin.class);
    }

    @Override
    protected MachProductsQueryBuilder doCreateTestQueryBuilder() {
        int n = randomIntBetween(0, 20);
        Set<String> ids = new LinkedHashSet<>();
        while (ids.size() < n) {
            ids.add(randomAlphaOfLengthBetween(1, 12));
        }
        float[] scores = new float[n];
        for (int i = 0; i < n; i++) {
            scores[i] = randomFloat();
        }
        return new MachProductsQueryBuilder(KEYWORD_FIELD_NAME, ids.toArray(new String[0]), scores);
    }

    @Override
    protected void doAssertLuceneQuery(MachProductsQueryBuilder builder, Query query, QueryShardContext context) throws IOException {
        if (builder.ids().length == 0) {
            assertTrue(query.toString(), query instanceof MatchNoDocsQuery);
        } else {
            assertEquals(new MachProductsQuery(KEYWORD_FIELD_NAME, builder.ids(), builder.scores()), query);
        }
    }

    public void testParse() throws IOException {
        String json = """
            {"mach_products": {"field": "mapped_string_2", "ids": ["P1", "P2"], "scores": [0.5, 0.25], "boost": 2.0, "_name": "m"}}""";
        MachProductsQueryBuilder parsed = (MachProductsQueryBuilder) parseQuery(json);
        assertEquals("mapped_string_2", parsed.field());
        assertArrayEquals(new String[] { "P1", "P2" }, parsed.ids());
        assertArrayEquals(new float[] { 0.5f, 0.25f }, parsed.scores(), 0f);
        assertEquals(2.0f, parsed.boost(), 0f);
        assertEquals("m", parsed.queryName());
    }

    public void testBadInput() {
        ParsingException e = expectThrows(ParsingException.class, () -> parseQuery("""
            {"mach_products": {"field": "f", "ids": ["P1", "P2"], "scores": [0.5]}}"""));
        assertTrue(e.getMessage(), e.getMessage().contains("same length"));
        e = expectThrows(ParsingException.class, () -> parseQuery("""
            {"mach_products": {"field": "f", "ids": ["P1", "P1"], "scores": [0.5, 0.1]}}"""));
        assertTrue(e.getMessage(), e.getMessage().contains("duplicate product id [P1]"));
        e = expectThrows(ParsingException.class, () -> parseQuery("""
            {"mach_products": {"field": "f", "ids": ["P1"], "scores": [-1]}}"""));
        assertTrue(e.getMessage(), e.getMessage().contains(">= 0"));
        e = expectThrows(ParsingException.class, () -> parseQuery("""
            {"mach_products": {"ids": ["P1"], "scores": [1]}}"""));
        assertTrue(e.getMessage(), e.getMessage().contains("[field]"));
    }

    /** The strict parser's rules: null, a wrong type, an unknown field are a 400 naming the field, nothing is coerced. */
    public void testStrictParsing() {
        String ok = "\"ids\": [\"P1\"], \"scores\": [0.5]";
        for (String[] bad : new String[][] {
            { "{\"mach_products\": {\"field\": null, " + ok + "}}", "[field] must be a string, got null" },
            { "{\"mach_products\": {\"field\": 5, " + ok + "}}", "[field] must be a string, got a number [5]" },
            { "{\"mach_products\": {\"field\": {\"a\": 1}, " + ok + "}}", "[field] must be a string, got an object" },
            { "{\"mach_products\": {\"field\": \"f\", " + ok + ", \"boost\": \"2\"}}", "[boost] must be a number, got a string [2]" },
            { "{\"mach_products\": {\"field\": \"f\", " + ok + ", \"boost\": null}}", "[boost] must be a number, got null" },
            { "{\"mach_products\": {\"field\": \"f\", " + ok + ", \"boost\": true}}", "[boost] must be a number, got a boolean [true]" },
            { "{\"mach_products\": {\"field\": \"f\", " + ok + ", \"_name\": 3}}", "[_name] must be a string, got a number [3]" },
            { "{\"mach_products\": {\"field\": \"f\", \"ids\": \"P1\", \"scores\": [0.5]}}", "[ids] must be an array, got a string [P1]" },
            { "{\"mach_products\": {\"field\": \"f\", \"ids\": [null], \"scores\": [0.5]}}", "[ids] must be a string, got null" },
            { "{\"mach_products\": {\"field\": \"f\", \"ids\": [\"P1\"], \"scores\": null}}", "[scores] must be an array, got null" },
            { "{\"mach_products\": {\"field\": \"f\", \"ids\": [\"P1\"], \"scores\": [\"0.5\"]}}", "[scores] must be a number, got a string [0.5]" },
            { "{\"mach_products\": {\"field\": \"f\", \"ids\": [\"P1\"], \"scores\": [1e39]}}", "[scores] must be a finite number" },
            { "{\"mach_products\": {\"field\": \"f\", " + ok + ", \"weight\": 2}}", "unknown parameter [weight]" },
            { "{\"mach_products\": {\"field\": \"f\", \"scores\": [0.5]}}", "requires [ids] and [scores]" } }) {
            ParsingException e = expectThrows(ParsingException.class, () -> parseQuery(bad[0]));
            String msg = e.getMessage() + (e.getCause() != null ? " / " + e.getCause().getMessage() : "");
            assertTrue(bad[0] + ": " + msg, msg.contains("[mach_products] " + bad[1]) || msg.contains(bad[1]) && bad[1].startsWith("unknown"));
        }
    }

    public void testFieldMustBeKeyword() {
        QueryShardContext context = createShardContext();
        QueryShardException e = expectThrows(
            QueryShardException.class,
            () -> new MachProductsQueryBuilder(TEXT_FIELD_NAME, new String[] { "a" }, new float[] { 1 }).toQuery(context)
        );
        assertTrue(e.getMessage(), e.getMessage().contains("must be a keyword field, but it is [text]"));
        e = expectThrows(
            QueryShardException.class,
            () -> new MachProductsQueryBuilder("no_such_field", new String[] { "a" }, new float[] { 1 }).toQuery(context)
        );
        assertTrue(e.getMessage(), e.getMessage().contains("[no_such_field] does not exist"));
    }
}
