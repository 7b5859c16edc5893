package org.opensearch.mach.it;

import org.junit.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

/** The node-log check must catch real problems and let the intended bad requests pass. */
public class NodeLogTest {
    private static List<String> scan(String log) throws IOException {
        Path f = Files.createTempFile("node", ".log");
        try {
            Files.writeString(f, log);
            return NodeLog.unexpectedProblems(f);
        } finally {
            Files.delete(f);
        }
    }

    @Test
    public void cleanLogPasses() throws IOException {
        assertEquals(List.of(), scan("""
            [2026-11-23T12:59:30,164][INFO ][o.o.n.Node               ] [mach-it-0] version[3.6.0]
            [2026-11-23T12:59:49,770][WARN ][o.o.b.BootstrapChecks    ] [mach-it-0] max file descriptors [20000] is too low
            [2026-11-23T12:59:50,000][WARN ][o.o.m.Foo                ] [mach-it-0] slow query, no exception here
            """));
    }

    @Test
    public void errorEntryIsReported() throws IOException {
        List<String> problems = scan("""
            [2026-11-23T12:59:30,164][INFO ][o.o.n.Node               ] [mach-it-0] started
            [2026-11-23T12:59:31,000][ERROR][o.o.m.MachPlugin         ] [mach-it-0] inference failed
            java.lang.IllegalStateException: boom
            \tat org.opensearch.mach.X.y(X.java:1)
            [2026-11-23T12:59:32,000][INFO ][o.o.n.Node               ] [mach-it-0] still fine
            """);
        assertEquals(1, problems.size());
        assertTrue(problems.get(0), problems.get(0).contains("inference failed") && problems.get(0).contains("boom"));
    }

    @Test
    public void warnWithStackTraceIsReportedUnlessTheTestsCausedIt() throws IOException {
        List<String> problems = scan("""
            [2026-11-23T12:59:31,000][WARN ][o.o.s.SearchService      ] [mach-it-0] unexpected failure
            java.lang.NullPointerException: x
            \tat org.opensearch.mach.X.y(X.java:1)
            [2026-11-23T12:59:32,000][WARN ][o.o.r.RestController     ] [mach-it-0] bad request
            org.opensearch.ResourceNotFoundException: model [no-such-model] not found
            \tat org.opensearch.mach.X.y(X.java:1)
            """);
        assertEquals(1, problems.size());
        assertTrue(problems.get(0), problems.get(0).contains("NullPointerException"));
    }

    /** A real failure is reported even when its trace passes through code named like a request parameter. */
    @Test
    public void realFailureInTheQueryCodeIsReported() throws IOException {
        List<String> problems = scan("""
            [2026-11-23T12:59:31,000][WARN ][o.o.r.RestController     ] [mach-it-0] path: /products/_search, params: {index=products}
            java.lang.NullPointerException: Cannot invoke "org.opensearch.index.query.QueryBuilder.toQuery()" because "this.lexical" is null
            \tat org.opensearch.mach.query.MachQueryBuilder.lexicalRange(MachQueryBuilder.java:1)
            \tat org.opensearch.mach.query.MachQueryBuilder.doRewrite(MachQueryBuilder.java:2)
            [2026-11-23T12:59:32,000][WARN ][o.o.r.RestController     ] [mach-it-0] path: /products/_search, params: {index=products}
            java.lang.IllegalStateException: [mach] [top_n] 100 but the decoder returned 101 products
            \tat org.opensearch.mach.no_such_param.X.y(X.java:1)
            """);
        assertEquals(problems.toString(), 2, problems.size());
    }
}
