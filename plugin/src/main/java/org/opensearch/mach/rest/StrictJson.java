package org.opensearch.mach.rest;

import com.fasterxml.jackson.core.exc.StreamConstraintsException;

import org.opensearch.core.common.ParsingException;
import org.opensearch.core.xcontent.XContentLocation;
import org.opensearch.core.xcontent.XContentParser;

import java.io.IOException;
import java.util.List;

/**
 * The one strict reader of request parameters: the {@code mach} query and every {@code _plugins/_mach}
 * body go through it. A value of the wrong JSON type (null included), out of range, or an unknown
 * field is a 400 that names the field and what it takes (so is a value beyond the JSON parser's limits,
 * e.g. a number of over 1000 digits); nothing is coerced (a number is not text,
 * "10" is not a number), so the query and the REST endpoints accept exactly the same values.
 */
public final class StrictJson {
    private StrictJson() {}

    /** Reads one field's value; the parser is on the value's first token. */
    public interface FieldReader {
        void read(String field, XContentParser parser) throws IOException;
    }

    /**
     * Reads the JSON object the parser is on (or, before any token, the next one) field by field.
     * {@code what} prefixes every message ("[mach]", "[_register]"); an {@link IllegalArgumentException}
     * from {@code reader} becomes a {@link ParsingException} (400) at the field's location.
     */
    public static void readObject(XContentParser parser, String what, List<String> known, FieldReader reader) throws IOException {
        try {
            readFields(parser, what, known, reader);
        } catch (java.io.CharConversionException e) {
            // bytes that are not text in the encoding the JSON parser detected (a UTF-32 body cut short): Jackson's
            // IOException would be a 500, and it is the request's fault
            throw new ParsingException(parser.getTokenLocation(), what + " is not valid JSON: " + e.getMessage(), e);
        }
    }

    /**
     * A whole request body: one object, read as {@link #readObject} reads it, and nothing after it (a second
     * object or stray text would otherwise be ignored: {@code {"path": "a"} {"path": "b"}} registered a).
     */
    public static void readBody(XContentParser parser, String what, List<String> known, FieldReader reader) throws IOException {
        readObject(parser, what, known, reader);
        if (anythingAfter(parser::nextToken)) throw new ParsingException(parser.getTokenLocation(), what + " must be one JSON object, with nothing after it");
    }

    /** Whether a body goes on after its object: {@code nextToken} reads on (null: the end); text that is not JSON counts. */
    public static boolean anythingAfter(org.opensearch.common.CheckedSupplier<?, IOException> nextToken) {
        try {
            return nextToken.get() != null;
        } catch (IOException | RuntimeException e) {
            return true;
        }
    }

    private static void readFields(XContentParser parser, String what, List<String> known, FieldReader reader) throws IOException {
        XContentParser.Token token = parser.currentToken() == null ? parser.nextToken() : parser.currentToken();
        if (token != XContentParser.Token.START_OBJECT) {
            throw new ParsingException(parser.getTokenLocation(), what + " must be a JSON object, got " + describe(token));
        }
        while ((token = nextField(parser, what)) != XContentParser.Token.END_OBJECT) {
            if (token != XContentParser.Token.FIELD_NAME) {
                throw new ParsingException(parser.getTokenLocation(), what + " unexpected end of input");
            }
            String field = parser.currentName();
            XContentLocation location = parser.getTokenLocation();
            if (!known.contains(field)) {
                throw new ParsingException(location, what + " unknown parameter [" + field + "]; known parameters: " + known);
            }
            try {
                parser.nextToken();
                reader.read(field, parser);
            } catch (IllegalArgumentException e) {
                throw new ParsingException(location, e.getMessage(), e);
            } catch (StreamConstraintsException e) {
                throw beyondLimits(location, what, field, e);
            }
        }
    }

    /**
     * The next field name (or the object's end). Jackson reads a field's scalar value together with its
     * name, so a value beyond the JSON parser's limits fails here, with the name already read.
     */
    private static XContentParser.Token nextField(XContentParser parser, String what) throws IOException {
        try {
            return parser.nextToken();
        } catch (StreamConstraintsException e) {
            String field;
            try {
                field = parser.currentName();
            } catch (IOException | RuntimeException unknown) {
                field = null;
            }
            throw beyondLimits(parser.getTokenLocation(), what, field, e);
        }
    }

    /**
     * A value beyond the JSON parser's limits (a number of over 1000 digits, nesting too deep): Jackson's
     * exception would be a 500, and it is the request's fault.
     */
    private static ParsingException beyondLimits(XContentLocation location, String what, String field, StreamConstraintsException e) {
        return new ParsingException(location, what + (field == null ? "" : " [" + field + "]") + " cannot be read: " + e.getOriginalMessage(), e);
    }

    /** Reads one value of an array (the parser on it). */
    public interface ElementReader {
        void read() throws IOException;
    }

    /** An array parameter (the parser on its start), each element read by {@code element}, which names the parameter when one is of the wrong type. */
    public static void array(XContentParser parser, String what, String field, ElementReader element) throws IOException {
        if (parser.currentToken() != XContentParser.Token.START_ARRAY) throw wrongType(parser, what, field, "an array");
        while (parser.nextToken() != XContentParser.Token.END_ARRAY) element.read();
    }

    public static String text(XContentParser parser, String what, String field) throws IOException {
        if (parser.currentToken() != XContentParser.Token.VALUE_STRING) throw wrongType(parser, what, field, "a string");
        return parser.text();
    }

    /** An integer (no fraction, no string) in [min, max]; a value beyond int range is reported as out of range. */
    public static int integer(XContentParser parser, String what, String field, int min, int max) throws IOException {
        if (parser.currentToken() != XContentParser.Token.VALUE_NUMBER) throw wrongType(parser, what, field, "an integer");
        long value = switch (parser.numberType()) {
            case INT, LONG -> parser.longValue();
            case BIG_INTEGER -> parser.doubleValue() > 0 ? Long.MAX_VALUE : Long.MIN_VALUE;
            default -> throw wrongType(parser, what, field, "an integer");
        };
        if (value < min || value > max) {
            throw new IllegalArgumentException(
                what + " [" + field + "] must be between " + min + " and " + max + ", got [" + parser.text() + "]"
            );
        }
        return (int) value;
    }

    /** A finite number. */
    public static float number(XContentParser parser, String what, String field) throws IOException {
        if (parser.currentToken() != XContentParser.Token.VALUE_NUMBER) throw wrongType(parser, what, field, "a number");
        float value = parser.floatValue();
        if (!Float.isFinite(value)) throw new IllegalArgumentException(what + " [" + field + "] must be a finite number, got [" + parser.text() + "]");
        return value;
    }

    public static boolean bool(XContentParser parser, String what, String field) throws IOException {
        if (parser.currentToken() != XContentParser.Token.VALUE_BOOLEAN) throw wrongType(parser, what, field, "true or false");
        return parser.booleanValue();
    }

    /** An error for a value of the wrong JSON type: says what the field takes and what it got. */
    public static IllegalArgumentException wrongType(XContentParser parser, String what, String field, String expected) throws IOException {
        XContentParser.Token token = parser.currentToken();
        String got = token != null && token.isValue() ? describe(token) + " [" + parser.text() + "]" : describe(token);
        return new IllegalArgumentException(what + " [" + field + "] must be " + expected + ", got " + got);
    }

    static String describe(XContentParser.Token token) {
        if (token == null) return "nothing";
        return switch (token) {
            case START_OBJECT -> "an object";
            case START_ARRAY -> "an array";
            case VALUE_NULL -> "null";
            case VALUE_STRING -> "a string";
            case VALUE_NUMBER -> "a number";
            case VALUE_BOOLEAN -> "a boolean";
            default -> token.name().toLowerCase(java.util.Locale.ROOT);
        };
    }
}
