package org.opensearch.mach.query;

import java.util.Locale;

/** How a mach query with a {@code lexical} part fuses the two (see MachQueryBuilder). */
public enum Combine {
    /** bool{must: lexical, filter: mach}: lexical ranking over the MACH candidates only. */
    FILTER,
    /** bool{must: lexical, should: mach^w}: lexical matches, plus w x MACH score for candidates. */
    BOOST,
    /** bool{should: [lexical, mach^w], minimum_should_match: 1}: union, scores summed. */
    HYBRID;

    public static Combine parse(String s) {
        for (Combine c : values()) {
            if (c.value().equals(s)) return c;
        }
        throw new IllegalArgumentException("unknown combine [" + s + "]; use one of [filter, boost, hybrid]");
    }

    public String value() {
        return name().toLowerCase(Locale.ROOT);
    }
}
