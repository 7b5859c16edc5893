package org.opensearch.mach.query;

import org.opensearch.core.common.ParsingException;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentLocation;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.query.AbstractQueryBuilder;
import org.opensearch.index.query.MatchNoneQueryBuilder;
import org.opensearch.index.query.QueryBuilder;
import org.opensearch.index.query.QueryRewriteContext;
import org.opensearch.mach.rest.StrictJson;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * A query builder of this plugin, named once: its JSON is {@code {NAME: {its own fields, boost, _name}}}.
 * Subclasses write only their own fields ({@link #fieldsToXContent}); the statics give them the strict
 * reading of that JSON ({@link StrictJson}, with {@code boost} and {@code _name} read here and every
 * {@link IllegalArgumentException} of the build a 400 at the query's start), an inner query parameter,
 * and the rewrite of a builder that wraps a query.
 */
abstract class NamedQueryBuilder<B extends NamedQueryBuilder<B>> extends AbstractQueryBuilder<B> {
    private final String name;

    NamedQueryBuilder(String name) {
        this.name = name;
    }

    NamedQueryBuilder(String name, StreamInput in) throws IOException {
        super(in);
        this.name = name;
    }

    @Override
    public final String getWriteableName() {
        return name;
    }

    @Override
    protected final void doXContent(XContentBuilder builder, Params params) throws IOException {
        builder.startObject(name);
        fieldsToXContent(builder);
        printBoostAndQueryName(builder);
        builder.endObject();
    }

    /** This query's own fields, in the object {@link #doXContent} opens. */
    protected abstract void fieldsToXContent(XContentBuilder builder) throws IOException;

    /** The parameters a builder accepts: its own, then each shared group, then {@code boost} and {@code _name}. */
    @SafeVarargs
    static List<String> parameters(List<String> own, List<String>... shared) {
        List<String> names = new ArrayList<>(own);
        for (List<String> group : shared) names.addAll(group);
        names.addAll(List.of("boost", "_name"));
        return List.copyOf(names);
    }

    /**
     * Reads a builder's JSON object strictly: {@code fields} reads every parameter in {@code known} but boost and _name,
     * then {@code build} makes the builder; an {@link IllegalArgumentException} becomes a {@link ParsingException}.
     */
    static <B extends NamedQueryBuilder<B>> B parseStrictly(
        XContentParser parser,
        String what,
        List<String> known,
        StrictJson.FieldReader fields,
        Supplier<B> build
    ) throws IOException {
        XContentLocation start = parser.getTokenLocation();
        float[] boost = { AbstractQueryBuilder.DEFAULT_BOOST };
        String[] queryName = { null };
        StrictJson.readObject(parser, what, known, (field, p) -> {
            switch (field) {
                case "boost" -> boost[0] = StrictJson.number(p, what, field);
                case "_name" -> queryName[0] = StrictJson.text(p, what, field);
                default -> fields.read(field, p);
            }
        });
        try {
            return build.get().boost(boost[0]).queryName(queryName[0]);
        } catch (IllegalArgumentException e) {
            throw new ParsingException(start, e.getMessage(), e);
        }
    }

    /** A parameter that holds a query object. */
    static QueryBuilder innerQuery(XContentParser parser, String what, String field) throws IOException {
        if (parser.currentToken() != XContentParser.Token.START_OBJECT) throw StrictJson.wrongType(parser, what, field, "a query object");
        return AbstractQueryBuilder.parseInnerQueryBuilder(parser);
    }

    /**
     * The rewrite of {@code self}, a builder wrapping {@code inner}: what matches nothing stays so, an unchanged
     * inner query keeps {@code self}, a changed one is wrapped again ({@code wrap}) with self's boost and name.
     */
    static <B extends NamedQueryBuilder<B>> QueryBuilder rewriteWrapped(
        B self,
        QueryBuilder inner,
        QueryRewriteContext context,
        Function<QueryBuilder, B> wrap
    ) throws IOException {
        QueryBuilder rewritten = inner.rewrite(context);
        if (rewritten instanceof MatchNoneQueryBuilder) return rewritten;
        if (rewritten == inner) return self;
        return wrap.apply(rewritten).boost(self.boost()).queryName(self.queryName());
    }
}
