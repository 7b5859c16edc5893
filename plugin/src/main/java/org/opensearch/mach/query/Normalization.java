package org.opensearch.mach.query;

import java.util.Locale;

/** How a mach query with {@code combine} boost or hybrid puts the lexical and MACH scores on one scale (see MachQueryBuilder). */
public enum Normalization {
    /** Raw scores: lexical + mach_weight x MACH score. */
    NONE,
    /** (1 - w) x min-max(lexical) + w x min-max(MACH), each side normalized over its top results. */
    MIN_MAX;

    public static Normalization parse(String s) {
        for (Normalization n : values()) {
            if (n.value().equals(s)) return n;
        }
        throw new IllegalArgumentException("unknown normalization [" + s + "]; use one of [none, min_max]");
    }

    public String value() {
        return name().toLowerCase(Locale.ROOT);
    }
}
