package org.opensearch.mach.featurize;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * BERT WordPiece tokenizer (tokenizer kind {@code bert_wordpiece} of spec/bundle-format.md), as
 * Hugging Face tokenizers runs it for all-MiniLM-L6-v2: BertNormalizer (clean_text,
 * handle_chinese_chars, strip_accents, lowercase, in that order), BertPreTokenizer (whitespace and
 * punctuation), WordPiece (greedy longest match first, {@code ##} continuations), then
 * {@code [CLS] ... [SEP]} truncated to max_tokens. Pure Java, immutable and thread-safe.
 */
public final class WordPieceTokenizer {
    public static final String KIND = "bert_wordpiece";
    private static final String CONTINUATION = "##";

    private final List<String> vocab;
    /** every token -> id: a word's first piece */
    private final Map<String, Integer> pieces;
    /** "##x" tokens, keyed by x -> id: a word's later pieces */
    private final Map<String, Integer> continuations;
    /** longest key of either map in chars: no longer substring can match, so the search starts there */
    private final int longestPiece;
    private final int unkId;
    private final int clsId;
    private final int sepId;
    private final int maxTokens;
    private final int maxInputCharsPerWord;
    private final long heapBytes;

    /**
     * @param vocab token of each id (id = position); tokens must be unique
     * @param maxTokens length of the longest id sequence, [CLS] and [SEP] included (>= 2)
     * @param maxInputCharsPerWord a longer word (in code points) becomes the unknown token
     */
    public WordPieceTokenizer(List<String> vocab, String unkToken, String clsToken, String sepToken, int maxTokens, int maxInputCharsPerWord) {
        if (maxTokens < 2) throw new IllegalArgumentException("max_tokens must be >= 2 ([CLS] and [SEP]), got " + maxTokens);
        if (maxInputCharsPerWord < 1) throw new IllegalArgumentException("max_input_chars_per_word must be >= 1, got " + maxInputCharsPerWord);
        this.vocab = List.copyOf(vocab);
        this.pieces = new HashMap<>(vocab.size() * 2);
        this.continuations = new HashMap<>();
        int longest = 0;
        long chars = 0;
        for (int id = 0; id < vocab.size(); id++) {
            String token = vocab.get(id);
            chars += token.length();
            if (pieces.put(token, id) != null) {
                throw new IllegalArgumentException("vocabulary token [" + token + "] appears twice (second at id " + id + ")");
            }
            longest = Math.max(longest, token.length());
            if (token.startsWith(CONTINUATION) && token.length() > CONTINUATION.length()) {
                continuations.put(token.substring(CONTINUATION.length()), id);
            }
        }
        this.longestPiece = longest;
        this.unkId = specialId(unkToken, "unk_token");
        this.clsId = specialId(clsToken, "cls_token");
        this.sepId = specialId(sepToken, "sep_token");
        this.maxTokens = maxTokens;
        this.maxInputCharsPerWord = maxInputCharsPerWord;
        // per token: its String, a map entry and a boxed id, in one or two maps (~150 bytes), plus the chars
        this.heapBytes = 150L * vocab.size() + 2 * chars;
    }

    private int specialId(String token, String what) {
        Integer id = pieces.get(token);
        if (id == null) throw new IllegalArgumentException(what + " [" + token + "] is not in the vocabulary");
        return id;
    }

    /** vocab.txt: one token per line, line i (0-based) = id i, UTF-8, every line ended by \n. */
    public static List<String> readVocabTxt(Path file) throws IOException {
        String text = Files.readString(file, StandardCharsets.UTF_8);
        if (!text.isEmpty() && !text.endsWith("\n")) {
            throw new IOException("[" + file.getFileName() + "]: every line must end with \\n (the last one does not)");
        }
        List<String> tokens = new ArrayList<>(Arrays.asList(text.split("\n", -1)));
        tokens.remove(tokens.size() - 1); // the empty string after the last \n
        return tokens;
    }

    /** The vocabulary of a Hugging Face tokenizer.json (model.vocab: token -> id), in id order. */
    public static List<String> readTokenizerJson(Path file) throws IOException {
        JsonNode vocab = new ObjectMapper().readTree(file.toFile()).path("model").path("vocab");
        if (!vocab.isObject() || vocab.isEmpty()) throw new IOException("[" + file + "]: no model.vocab object");
        String[] byId = new String[vocab.size()];
        for (Map.Entry<String, JsonNode> e : vocab.properties()) {
            int id = e.getValue().asInt(-1);
            if (id < 0 || id >= byId.length || byId[id] != null) {
                throw new IOException("[" + file + "]: model.vocab ids are not 0..n-1 (token [" + e.getKey() + "] has id " + e.getValue() + ")");
            }
            byId[id] = e.getKey();
        }
        return Arrays.asList(byId);
    }

    public int vocabSize() {
        return vocab.size();
    }

    /** About what the vocabulary maps hold on the heap. */
    public long heapBytes() {
        return heapBytes;
    }

    public int maxTokens() {
        return maxTokens;
    }

    /** Token ids: [CLS], the first max_tokens - 2 word pieces, [SEP]. */
    public int[] ids(String text) {
        IdList out = new IdList(Math.min(maxTokens, 16));
        out.add(clsId);
        wordPieces(text, maxTokens - 2, out);
        out.add(sepId);
        return out.toArray();
    }

    /** Every word piece of the text as a token string, without [CLS] / [SEP] and not truncated. */
    public List<String> tokens(String text) {
        IdList out = new IdList(16);
        wordPieces(text, Integer.MAX_VALUE, out);
        List<String> tokens = new ArrayList<>(out.size);
        for (int i = 0; i < out.size; i++) tokens.add(vocab.get(out.ids[i]));
        return tokens;
    }

    /** Appends the ids of the text's first {@code limit} word pieces. */
    private void wordPieces(String text, int limit, IdList out) {
        String s = normalize(text);
        int end = out.size + limit;
        int wordStart = -1;
        for (int i = 0; i < s.length() && out.size < end;) {
            int cp = s.codePointAt(i);
            int next = i + Character.charCount(cp);
            boolean space = isWhitespace(cp);
            if (space || isPunctuation(cp)) {
                if (wordStart >= 0) wordPiecesOfWord(s, wordStart, i, out);
                wordStart = -1;
                if (!space && out.size < end) wordPiecesOfWord(s, i, next, out);
            } else if (wordStart < 0) {
                wordStart = i;
            }
            i = next;
        }
        if (wordStart >= 0 && out.size < end) wordPiecesOfWord(s, wordStart, s.length(), out);
        out.size = Math.min(out.size, end);
    }

    /** Greedy longest-match-first over s[from, to); a word with an unmatchable rest, or too long, is one unknown token. */
    private void wordPiecesOfWord(String s, int from, int to, IdList out) {
        if (s.codePointCount(from, to) > maxInputCharsPerWord) {
            out.add(unkId);
            return;
        }
        int mark = out.size;
        for (int start = from; start < to;) {
            Map<String, Integer> table = start == from ? pieces : continuations;
            int end = Math.min(to, start + longestPiece);
            if (end < to && Character.isLowSurrogate(s.charAt(end))) end--; // never split a surrogate pair
            Integer id = null;
            while (end > start && (id = table.get(s.substring(start, end))) == null) {
                end -= Character.isLowSurrogate(s.charAt(end - 1)) && end - 1 > start ? 2 : 1;
            }
            if (id == null) {
                out.size = mark;
                out.add(unkId);
                return;
            }
            out.add(id);
            start = end;
        }
    }

    /**
     * BertNormalizer: drop NUL, U+FFFD and control / format / private-use / unassigned code points,
     * whitespace to ' ', spaces around CJK ideographs; then NFD without non-spacing marks, then
     * lower-casing code point by code point (no context rules such as Greek final sigma, as HF does;
     * after NFD no code point with a multi-character lower case, U+0130, is left).
     */
    static String normalize(String text) {
        StringBuilder sb = new StringBuilder(text.length() + 8);
        boolean ascii = true;
        for (int i = 0; i < text.length();) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            if (cp < 0x80) {
                if (cp == '\t' || cp == '\n' || cp == '\r') sb.append(' ');
                else if (cp >= 0x20 && cp != 0x7f) sb.append((char) cp);
                continue; // other ASCII controls, NUL included, are dropped
            }
            ascii = false;
            if (cp == 0xfffd || isOther(cp)) continue;
            if (isWhitespace(cp)) sb.append(' ');
            else if (isChinese(cp)) sb.append(' ').appendCodePoint(cp).append(' ');
            else sb.appendCodePoint(cp);
        }
        if (ascii) {
            for (int i = 0; i < sb.length(); i++) {
                char c = sb.charAt(i);
                if (c >= 'A' && c <= 'Z') sb.setCharAt(i, (char) (c + ('a' - 'A')));
            }
            return sb.toString();
        }
        String nfd = Normalizer.normalize(sb, Normalizer.Form.NFD);
        StringBuilder out = new StringBuilder(nfd.length());
        for (int i = 0; i < nfd.length();) {
            int cp = nfd.codePointAt(i);
            i += Character.charCount(cp);
            if (Character.getType(cp) != Character.NON_SPACING_MARK) out.appendCodePoint(Character.toLowerCase(cp));
        }
        return out.toString();
    }

    /** Unicode category C* as HF's clean_text drops it (\t \n \r are whitespace there, handled before). */
    private static boolean isOther(int cp) {
        return switch (Character.getType(cp)) {
            case Character.CONTROL, Character.FORMAT, Character.PRIVATE_USE, Character.UNASSIGNED, Character.SURROGATE -> true;
            default -> false;
        };
    }

    /** Unicode White_Space (Rust's char::is_whitespace), which differs from Java's Character.isWhitespace. */
    private static boolean isWhitespace(int cp) {
        if (cp < 0x80) return cp == ' ' || (cp >= '\t' && cp <= '\r');
        return cp == 0x85
            || switch (Character.getType(cp)) {
                case Character.SPACE_SEPARATOR, Character.LINE_SEPARATOR, Character.PARAGRAPH_SEPARATOR -> true;
                default -> false;
            };
    }

    /** ASCII punctuation and symbols (33-47, 58-64, 91-96, 123-126) or Unicode category P*. */
    private static boolean isPunctuation(int cp) {
        if (cp < 0x80) return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
        return switch (Character.getType(cp)) {
            case Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION, Character.END_PUNCTUATION,
                Character.INITIAL_QUOTE_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION, Character.OTHER_PUNCTUATION -> true;
            default -> false;
        };
    }

    /** The CJK ideograph blocks BERT puts spaces around. */
    private static boolean isChinese(int cp) {
        return (cp >= 0x4E00 && cp <= 0x9FFF)
            || (cp >= 0x3400 && cp <= 0x4DBF)
            || (cp >= 0x20000 && cp <= 0x2A6DF)
            || (cp >= 0x2A700 && cp <= 0x2B73F)
            || (cp >= 0x2B740 && cp <= 0x2B81F)
            || (cp >= 0x2B920 && cp <= 0x2CEAF)
            || (cp >= 0xF900 && cp <= 0xFAFF)
            || (cp >= 0x2F800 && cp <= 0x2FA1F);
    }

    /** A growable int array: ids without boxing. */
    private static final class IdList {
        int[] ids;
        int size;

        IdList(int capacity) {
            ids = new int[capacity];
        }

        void add(int id) {
            if (size == ids.length) ids = Arrays.copyOf(ids, size * 2 + 4);
            ids[size++] = id;
        }

        int[] toArray() {
            return Arrays.copyOf(ids, size);
        }
    }
}
