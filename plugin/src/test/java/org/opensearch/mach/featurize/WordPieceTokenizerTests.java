package org.opensearch.mach.featurize;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.opensearch.mach.TestPaths;
import org.opensearch.test.OpenSearchTestCase;
import org.junit.AfterClass;
import org.junit.BeforeClass;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * The Java WordPiece against the reference, Hugging Face tokenizers (the Rust library the encoder's
 * tokenizer.json is written for, through DJL's JNI binding), on the committed fixture texts,
 * hand-written hard cases, random strings, and real product titles from ../shared/data when present.
 */
public class WordPieceTokenizerTests extends OpenSearchTestCase {
    /** strings taken from each ../shared/data file when it exists (the test never needs it) */
    private static final int SHARED_LIMIT = 3000;
    /**
     * Texts holding a special token literally ("[SEP]") are left out of the comparison: HF matches
     * them as added tokens before normalization, the bundle contract does not (it is plain WordPiece).
     */
    private static final List<String> SPECIAL_LITERALS = List.of("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]");

    static final List<String> HARD_CASES = List.of(
        "",
        " ",
        " \t\n\r ",
        "\u00a0\u2003\u3000",
        "Crimson Couch",
        "crimson couch!!!",
        "...---!!!???",
        "a-b_c/d\\e|f~g`h^i<j>k=l+m$n%o&p*q(r)s[t]u{v}w@x#y'z\"",
        "Café crème brûlée naïve façade Ångström",
        "ÉCOLE Über Straße İstanbul ΟΔΟΣ Σίσυφος",
        "STRASSE straße ΟΔΟΣ ΣΑΣ", // HF lower-cases code point by code point: no final sigma
        "ﬁ ligature ½ ² ℃ Ⅻ ｆｕｌｌｗｉｄｔｈ",
        "北京欢迎你 東京 서울 日本語のテキスト",
        "mixed中文English混合",
        "a" + new String(Character.toChars(0x2B820)) + "b c" + new String(Character.toChars(0x2B920)) + "d", // CJK extension E: BERT spaced it from U+2B820, HF from U+2B920
        "emoji 😀👍🏽 🛋️ couch 👨‍👩‍👧",
        "tab\tseparated\nlines\r\nand\u000bvertical\u000cfeed",
        "control\u0000chars\u0001here\u007f\u0085\u200b\u200dzero width\ufeff",
        "replacement \ufffd char",
        "supercalifragilisticexpialidocious",
        "a".repeat(100),
        "b".repeat(101),
        "ab".repeat(60) + " end",
        "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
        "12-Gauge 1/2 in. x 10 ft. 3.5\" 2x4 #SC-141 100% 2,000 lbs",
        "don't won't it's O'Neil's",
        "«quotes» “curly” ‘single’ ‹angle› „low“ — – … · •",
        "Ελληνικά кириллица עברית العربية हिन्दी ไทย",
        "x".repeat(300),
        String.join(" ", java.util.Collections.nCopies(200, "word")),
        "\ud83d", // a lone surrogate
        "\ud800\udc00 linear b",
        "a\u0301e\u0300i\u0302 combining",
        "\u1e9e \u00df \u0130 \u0131",
        "ℌ𝔢𝔩𝔩𝔬 𝐛𝐨𝐥𝐝",
        "[SEP] literal"
    );

    private static HuggingFaceTokenizer reference;
    private static HuggingFaceTokenizer referenceUntruncated;
    private static WordPieceTokenizer tokenizer;

    @BeforeClass
    public static void setUpTokenizers() throws IOException {
        Path json = TestPaths.encoderDir("all-minilm-l6-v2-q").resolve("tokenizer.json");
        // DJL extracts its native library into its cache dir; nothing may be downloaded here
        System.setProperty("ai.djl.offline", "true");
        System.setProperty("DJL_CACHE_DIR", Files.createTempDirectory("djl-cache").toString());
        reference = HuggingFaceTokenizer.builder().optTokenizerPath(json).optAddSpecialTokens(true).optTruncation(true)
            .optMaxLength(128).optPadding(false).build();
        referenceUntruncated = HuggingFaceTokenizer.builder().optTokenizerPath(json).optAddSpecialTokens(false).optTruncation(false)
            .optPadding(false).build();
        tokenizer = new WordPieceTokenizer(WordPieceTokenizer.readTokenizerJson(json), "[UNK]", "[CLS]", "[SEP]", 128, 100);
    }

    @AfterClass
    public static void closeTokenizers() {
        if (reference != null) reference.close();
        if (referenceUntruncated != null) referenceUntruncated.close();
        reference = referenceUntruncated = null;
        tokenizer = null;
    }

    public void testHardCases() {
        assertSameAsReference(HARD_CASES, "hard cases");
    }

    public void testFixtureTexts() throws IOException {
        List<String> texts = new ArrayList<>();
        Path fixture = TestPaths.tinyFixture();
        texts.addAll(column(fixture.resolve("products.tsv"), 1, Integer.MAX_VALUE));
        texts.addAll(column(fixture.resolve("queries.tsv"), 1, Integer.MAX_VALUE));
        assertTrue(texts.size() > 2000);
        assertSameAsReference(texts, "fixture");
    }

    /**
     * Random strings over the scripts, marks, spaces, controls and punctuation the normalizer treats
     * specially. The ranges hold characters of Unicode 8 or older: HF's character tables are older
     * than the JDK's, so marks and punctuation added since (e.g. U+2E44-U+2E5D, U+0890) are
     * classified differently there (325 of 100,000 random strings over all planes differed, each
     * through such a character; none over these ranges).
     */
    public void testRandomStrings() {
        int[][] ranges = {
            { 0x20, 0x7e }, { 0x20, 0x7e }, { 0x20, 0x7e }, { 0x00, 0x1f }, { 0x80, 0x24f }, { 0x300, 0x36f }, { 0x370, 0x3ff }, { 0x400, 0x4ff },
            { 0x2000, 0x206f }, { 0x3000, 0x303f }, { 0x4e00, 0x4e80 }, { 0xac00, 0xac80 }, { 0xff00, 0xffef }, { 0x1f600, 0x1f64f },
            { 0xf900, 0xf980 } };
        Random random = new Random(random().nextLong());
        List<String> texts = new ArrayList<>();
        for (int n = 0; n < 2000; n++) {
            StringBuilder sb = new StringBuilder();
            int len = random.nextInt(40);
            for (int i = 0; i < len; i++) {
                int[] r = ranges[random.nextInt(ranges.length)];
                int cp = r[0] + random.nextInt(r[1] - r[0] + 1);
                // assigned code points only: which ones are assigned depends on each library's Unicode version
                if (Character.getType(cp) != Character.UNASSIGNED) sb.appendCodePoint(cp);
            }
            texts.add(sb.toString());
        }
        assertSameAsReference(texts, "random");
    }

    /** Real product text (Home Depot titles, Amazon ESCI titles and bullet points), when ../shared/data is there. */
    public void testSharedDataWhenPresent() throws IOException {
        Path data = TestPaths.projectRoot().resolveSibling("shared").resolve("data");
        Path homedepot = data.resolve("homedepot/products.tsv");
        Path esci = data.resolve("esci-sample/products.ndjson");
        assumeTrue("no ../shared/data", Files.isRegularFile(homedepot) || Files.isRegularFile(esci));
        if (Files.isRegularFile(homedepot)) assertSameAsReference(column(homedepot, 1, SHARED_LIMIT), "homedepot");
        if (Files.isRegularFile(esci)) {
            List<String> texts = new ArrayList<>();
            ObjectMapper mapper = new ObjectMapper();
            try (BufferedReader in = Files.newBufferedReader(esci, StandardCharsets.UTF_8)) {
                for (String line; (line = in.readLine()) != null && texts.size() < SHARED_LIMIT;) {
                    JsonNode product = mapper.readTree(line);
                    texts.add(product.path("title").asText());
                    texts.add(product.path("bullet_points").asText()); // long: exercises truncation
                }
            }
            assertSameAsReference(texts, "esci");
        }
    }

    public void testTruncationAndSpecialTokens() {
        int[] ids = tokenizer.ids(String.join(" ", java.util.Collections.nCopies(300, "sofa")));
        assertEquals(128, ids.length);
        assertEquals(101, ids[0]);
        assertEquals(102, ids[127]);
        assertArrayEquals(new int[] { 101, 102 }, tokenizer.ids(""));
        assertArrayEquals(new int[] { 101, 102 }, tokenizer.ids(" \t\u0000 "));
        assertEquals(List.of("[UNK]"), tokenizer.tokens("b".repeat(101)));
        assertEquals(List.of("crimson", "couch", "!"), tokenizer.tokens("Crimson  COUCH!"));
    }

    public void testVocabTxtRoundTrip() throws IOException {
        List<String> vocab = WordPieceTokenizer.readTokenizerJson(TestPaths.encoderDir("all-minilm-l6-v2-q").resolve("tokenizer.json"));
        Path txt = createTempDir().resolve("vocab.txt");
        Files.writeString(txt, String.join("\n", vocab) + "\n", StandardCharsets.UTF_8);
        assertEquals(vocab, WordPieceTokenizer.readVocabTxt(txt));
        Files.writeString(txt, "[PAD]\n[UNK]", StandardCharsets.UTF_8);
        expectThrows(IOException.class, () -> WordPieceTokenizer.readVocabTxt(txt));
        IllegalArgumentException e = expectThrows(
            IllegalArgumentException.class,
            () -> new WordPieceTokenizer(List.of("[UNK]", "[CLS]", "[SEP]", "a", "a"), "[UNK]", "[CLS]", "[SEP]", 128, 100)
        );
        assertTrue(e.getMessage(), e.getMessage().contains("[a] appears twice"));
        e = expectThrows(IllegalArgumentException.class, () -> new WordPieceTokenizer(List.of("[UNK]", "[SEP]"), "[UNK]", "[CLS]", "[SEP]", 128, 100));
        assertTrue(e.getMessage(), e.getMessage().contains("cls_token [[CLS]] is not in the vocabulary"));
    }

    private static void assertSameAsReference(List<String> texts, String what) {
        int compared = 0;
        for (String text : texts) {
            if (SPECIAL_LITERALS.stream().anyMatch(text::contains)) continue;
            Encoding expected = reference.encode(text);
            int[] expectedIds = Arrays.stream(expected.getIds()).mapToInt(Math::toIntExact).toArray();
            assertArrayEquals(what + ": ids of [" + text + "] (" + Arrays.toString(expected.getTokens()) + ")", expectedIds, tokenizer.ids(text));
            assertEquals(what + ": tokens of [" + text + "]", Arrays.asList(referenceUntruncated.encode(text).getTokens()), tokenizer.tokens(text));
            compared++;
        }
        assertTrue(what + ": nothing compared", compared > 0);
    }

    /** Column {@code col} of a TSV with a header row, at most {@code limit} rows. */
    private static List<String> column(Path tsv, int col, int limit) throws IOException {
        List<String> out = new ArrayList<>();
        try (BufferedReader in = Files.newBufferedReader(tsv, StandardCharsets.UTF_8)) {
            in.readLine();
            for (String line; (line = in.readLine()) != null && out.size() < limit;) {
                String[] fields = line.split("\t", -1);
                if (fields.length > col) out.add(fields[col]);
            }
        }
        return out;
    }
}
