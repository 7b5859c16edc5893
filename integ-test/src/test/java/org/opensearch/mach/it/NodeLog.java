package org.opensearch.mach.it;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads the node's log and reports what looks like a bug: every ERROR entry, and WARN entries
 * that carry an exception or stack trace, except those our intended bad requests cause
 * (they name one of the markers the tests put in their requests).
 */
final class NodeLog {
    private static final Pattern ENTRY = Pattern.compile("^\\[[0-9T:,-]+]\\[(\\w+)\\s*]\\[([^]]*)]");

    /**
     * Texts the bad-request tests send on purpose: a WARN whose message names one of them is expected. Only values
     * the tests make up: a parameter's name ("top_n", "lexical") is in any real error about that parameter too.
     */
    static final List<String> EXPECTED_MARKERS = List.of(
        "no-such-model", "no_such_field", "no_such_param", "blend", "tiny-broken", "invalid model_id", "cannot be loaded",
        "json_parse_exception", "JsonParseException", "Unexpected character", "Unexpected end-of-input");

    /** WARN entries of a stock node that are about the machine, not the code. */
    static final List<String> BENIGN = List.of("BootstrapChecks", "DanglingIndicesState");

    private NodeLog() {}

    static List<String> unexpectedProblems(Path log) throws IOException {
        List<String> problems = new ArrayList<>();
        List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
        int i = 0;
        while (i < lines.size()) {
            Matcher m = ENTRY.matcher(lines.get(i));
            if (!m.find()) {
                i++;
                continue;
            }
            StringBuilder entry = new StringBuilder(lines.get(i));
            int j = i + 1;
            while (j < lines.size() && !ENTRY.matcher(lines.get(j)).find()) {
                entry.append('\n').append(lines.get(j));
                j++;
            }
            String level = m.group(1);
            String text = entry.toString();
            boolean hasTrace = j > i + 1 || text.contains("Exception");
            if (level.equals("ERROR") || level.equals("FATAL")) {
                problems.add(firstLines(text));
            } else if (level.equals("WARN") && hasTrace && !isBenign(text) && !isExpected(text)) {
                problems.add(firstLines(text));
            }
            i = j;
        }
        return problems;
    }

    /** A marker in the entry's message or exception lines; stack frames name code, not requests, and never excuse an entry. */
    private static boolean isExpected(String text) {
        String messages = text.lines().filter(l -> !l.stripLeading().startsWith("at ") && !l.stripLeading().startsWith("..."))
            .collect(java.util.stream.Collectors.joining("\n"));
        return EXPECTED_MARKERS.stream().anyMatch(messages::contains);
    }

    private static boolean isBenign(String text) {
        return BENIGN.stream().anyMatch(text::contains);
    }

    private static String firstLines(String text) {
        String[] lines = text.split("\n");
        StringBuilder b = new StringBuilder();
        for (int k = 0; k < Math.min(6, lines.length); k++) {
            b.append(k == 0 ? "" : "\n    ").append(lines[k]);
        }
        return b.toString();
    }
}
