package org.opensearch.mach.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.opensearch.mach.TestPaths;
import org.opensearch.mach.inference.Aggregation;
import org.opensearch.test.OpenSearchTestCase;

import java.nio.file.Files;
import java.util.List;
import java.util.function.Consumer;

/** Format 2 cards (spec/bundle-format.md): what is read, and each refusal naming its field. */
public class ModelCardTests extends OpenSearchTestCase {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private static ModelCard parse(ObjectNode card) throws Exception {
        return ModelCard.parse(MAPPER.writeValueAsBytes(card));
    }

    private String refusal(boolean withFeatures, Consumer<ObjectNode> edit) throws Exception {
        ObjectNode card = EncoderBundleFixture.card(withFeatures);
        edit.accept(card);
        return expectThrows(MachBundleException.class, () -> parse(card)).getMessage();
    }

    private static ObjectNode tokenizer(ObjectNode card) {
        return (ObjectNode) card.get("encoder").get("tokenizer");
    }

    public void testEncoderCard() throws Exception {
        ModelCard card = parse(EncoderBundleFixture.card(false));
        assertEquals(2, card.formatVersion);
        assertEquals(ModelCard.Input.ENCODER, card.input);
        assertNull(card.featurizer());
        assertNull(card.inputName);
        assertEquals("embedding", card.embeddingInputName);
        assertEquals(384, card.encoder.dimension());
        assertEquals("last_hidden_state", card.encoder.output());
        assertEquals(new ModelCard.Tokenizer("vocab.txt", "[UNK]", "[CLS]", "[SEP]", 0, 128, 100), card.encoder.tokenizer());
        assertEquals(List.of("encoder.onnx", "model.onnx"), card.networkFiles());
    }

    public void testEncoderPlusFeaturesCard() throws Exception {
        ModelCard card = parse(EncoderBundleFixture.card(true));
        assertEquals(ModelCard.Input.ENCODER_AND_FEATURES, card.input);
        assertEquals("feature_ids", card.inputName);
        assertEquals(16, card.maxFeatures);
        assertEquals(64, card.featurizer().dimension());
    }

    public void testFormatOneCardIsReadAsBefore() throws Exception {
        ModelCard card = ModelCard.parse(Files.readAllBytes(TestPaths.tinyFixture().resolve("bundle/mach.json")));
        assertEquals(ModelCard.Input.FEATURES, card.input);
        assertNull(card.encoder);
        assertNull(card.embeddingInputName);
        assertEquals("feature_ids", card.inputName);
        assertEquals(List.of("model.onnx"), card.networkFiles());
    }

    public void testAggregation() throws Exception {
        ModelCard format1 = ModelCard.parse(Files.readAllBytes(TestPaths.tinyFixture().resolve("bundle/mach.json")));
        assertEquals("absent: the paper's mean", Aggregation.MEAN, format1.aggregation);
        assertEquals(Aggregation.MEAN, parse(EncoderBundleFixture.card(false).put("aggregation", "mean")).aggregation);
        assertEquals(Aggregation.LOG_MEAN, parse(EncoderBundleFixture.card(true).put("aggregation", "log_mean")).aggregation);
        ObjectNode format1LogMean = (ObjectNode) MAPPER.readTree(Files.readAllBytes(TestPaths.tinyFixture().resolve("bundle/mach.json")));
        assertEquals(Aggregation.LOG_MEAN, parse(format1LogMean.put("aggregation", "log_mean")).aggregation);
        for (boolean features : new boolean[] { false, true }) {
            assertTrue(refusal(features, c -> c.put("aggregation", "max")).contains("[aggregation] is \"max\", expected [mean] or [log_mean]"));
            assertTrue(refusal(features, c -> c.put("aggregation", "LOG_MEAN")).contains("[aggregation]"));
            assertTrue(refusal(features, c -> c.put("aggregation", 1)).contains("[aggregation] is 1, expected [mean] or [log_mean]"));
            assertTrue(refusal(features, c -> c.putNull("aggregation")).contains("[aggregation] is null"));
        }
    }

    public void testRefusals() throws Exception {
        assertTrue(refusal(false, c -> c.put("input", "features")).contains("[input] is [features], expected [encoder] or [encoder+features]"));
        assertTrue(refusal(false, c -> c.remove("input")).contains("[input] must be a non-empty string, found nothing"));
        assertTrue(refusal(false, c -> c.remove("encoder")).contains("missing object [encoder]"));
        assertTrue(refusal(true, c -> c.remove("featurizer")).contains("missing object [featurizer]"));
        var featurizer = EncoderBundleFixture.card(true).get("featurizer");
        assertTrue(
            refusal(false, c -> c.set("featurizer", featurizer))
                .contains("[featurizer] is present but input is [encoder]; only input [encoder+features] reads features")
        );
        assertTrue(refusal(false, c -> tokenizer(c).put("kind", "sentencepiece")).contains("[encoder.tokenizer.kind] is [sentencepiece], this plugin supports only [bert_wordpiece]"));
        assertTrue(refusal(false, c -> tokenizer(c).put("lowercase", false)).contains("[encoder.tokenizer.lowercase] is false, this plugin supports only true"));
        assertTrue(refusal(false, c -> tokenizer(c).remove("strip_accents")).contains("[encoder.tokenizer.strip_accents] is missing"));
        assertTrue(refusal(false, c -> tokenizer(c).put("max_tokens", 2)).contains("encoder.tokenizer.max_tokens must be >= 3"));
        assertTrue(refusal(false, c -> tokenizer(c).remove("cls_token")).contains("[encoder.tokenizer.cls_token] must be a non-empty string"));
        assertTrue(refusal(false, c -> ((ObjectNode) c.get("encoder")).put("pooling", "cls")).contains("[encoder.pooling] is [cls], this plugin supports only [mean]"));
        assertTrue(refusal(false, c -> ((ObjectNode) c.get("encoder")).put("normalize", "none")).contains("[encoder.normalize] is [none]"));
        assertTrue(
            refusal(false, c -> ((ObjectNode) c.get("encoder").get("onnx_inputs")).remove("token_type_ids"))
                .contains("[encoder.onnx_inputs.token_type_ids] must be a non-empty string")
        );
        assertTrue(
            refusal(false, c -> ((ArrayNode) c.get("onnx").get("inputs")).add(c.get("onnx").get("inputs").get(0)))
                .contains("[onnx.inputs] must be an array of 1 input(s) for input [encoder] (embedding)")
        );
        assertTrue(
            refusal(true, c -> ((ArrayNode) c.get("onnx").get("inputs")).remove(1))
                .contains("[onnx.inputs] must be an array of 2 input(s) for input [encoder+features] (embedding, feature_ids)")
        );
        assertTrue(
            refusal(false, c -> ((ArrayNode) c.get("onnx").get("inputs").get(0).get("shape")).set(1, 768))
                .contains("[onnx.inputs[0].shape] is [-1,768], expected [-1, encoder.dimension]")
        );
        assertTrue(
            refusal(true, c -> ((ArrayNode) c.get("onnx").get("inputs").get(1).get("shape")).set(1, 32))
                .contains("[onnx.inputs[1].shape] is [-1,32], expected [-1, featurizer.max_features]")
        );
        assertTrue(
            refusal(false, c -> ((ObjectNode) c.get("onnx").get("inputs").get(0)).put("dtype", "float16"))
                .contains("[onnx.inputs[0].dtype] is [float16], this plugin supports only [float32]")
        );
        assertTrue(refusal(false, c -> ((ObjectNode) c.get("files")).remove("vocab.txt")).contains("files has no sha256 for [vocab.txt]"));
        assertTrue(refusal(false, c -> ((ObjectNode) c.get("files")).remove("encoder.onnx")).contains("files has no sha256 for [encoder.onnx]"));
        assertTrue(
            refusal(false, c -> ((ObjectNode) c.get("encoder")).put("file", "model.onnx"))
                .contains("encoder.file and onnx.file are both [model.onnx]")
        );
        assertTrue(refusal(false, c -> c.put("format_version", 3)).contains("unknown format_version [3]; this plugin reads format_version 1 and 2"));
    }
}
