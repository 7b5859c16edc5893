package org.opensearch.mach.query;

import org.apache.lucene.search.Query;
import org.opensearch.core.common.ParsingException;
import org.opensearch.index.query.MatchNoneQueryBuilder;
import org.opensearch.index.query.QueryBuilder;
import org.opensearch.index.query.QueryShardContext;
import org.opensearch.index.query.TermQueryBuilder;
import org.opensearch.mach.MachPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.test.AbstractQueryTestCase;
import org.opensearch.test.TestGeoShapeFieldMapperPlugin;

import java.io.IOException;
import java.util.Collection;
import java.util.List;

public class AffineScoreQueryBuilderTests extends AbstractQueryTestCase<AffineScoreQueryBuilder> {

    @Override
    protected Collection<Class<? extends Plugin>> getPlugins() {
        return List.of(MachPlugin.class, TestGeoShapeFieldMapperPlugin.class);
    }

    @Override
    protected AffineScoreQueryBuilder doCreateTestQueryBuilder() {
        QueryBuilder inner = new TermQueryBuilder(TEXT_FIELD_NAME, randomAlphaOfLengthBetween(1, 8));
        return new AffineScoreQueryBuilder(inner, randomFloat() * 10, randomFloat() * 4 - 2);
    }

    @Override
    protected void doAssertLuceneQuery(AffineScoreQueryBuilder builder, Query query, QueryShardContext context) throws IOException {
        assertEquals(new AffineScoreQuery(builder.query().toQuery(context), builder.scale(), builder.offset()), query);
    }

    public void testParse() throws IOException {
        AffineScoreQueryBuilder parsed = (AffineScoreQueryBuilder) parseQuery("""
            {"mach_affine": {"query": {"term": {"mapped_string": "x"}}, "scale": 0.125, "offset": -0.25, "boost": 0.75, "_name": "lex"}}""");
        assertEquals(new TermQueryBuilder("mapped_string", "x"), parsed.query());
        assertEquals(0.125f, parsed.scale(), 0f);
        assertEquals(-0.25f, parsed.offset(), 0f);
        assertEquals(0.75f, parsed.boost(), 0f);
        assertEquals("lex", parsed.queryName());
    }

    public void testBadInput() {
        for (String[] bad : new String[][] {
            { "{\"mach_affine\": {\"scale\": 1, \"offset\": 0}}", "requires [query], [scale] and [offset]" },
            { "{\"mach_affine\": {\"query\": {\"match_all\": {}}, \"offset\": 0}}", "requires [query], [scale] and [offset]" },
            { "{\"mach_affine\": {\"query\": {\"match_all\": {}}, \"scale\": -1, \"offset\": 0}}", "[scale] must be a finite number >= 0" },
            { "{\"mach_affine\": {\"query\": {\"match_all\": {}}, \"scale\": \"1\", \"offset\": 0}}", "[scale] must be a number" },
            { "{\"mach_affine\": {\"query\": 1, \"scale\": 1, \"offset\": 0}}", "[query] must be a query object" },
            { "{\"mach_affine\": {\"query\": {\"match_all\": {}}, \"scale\": 1, \"offset\": 0, \"shift\": 2}}", "unknown parameter [shift]" } }) {
            ParsingException e = expectThrows(ParsingException.class, () -> parseQuery(bad[0]));
            String msg = e.getMessage() + (e.getCause() != null ? " / " + e.getCause().getMessage() : "");
            assertTrue(bad[0] + ": " + msg, msg.contains(bad[1]));
        }
    }

    public void testRewritesItsQuery() throws IOException {
        AffineScoreQueryBuilder none = new AffineScoreQueryBuilder(new MatchNoneQueryBuilder(), 1, 0);
        assertEquals(new MatchNoneQueryBuilder(), none.rewrite(createShardContext()));
    }
}
