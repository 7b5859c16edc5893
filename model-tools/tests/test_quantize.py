"""int8 output heads: the quantized graph stays close to the float one and is a valid bundle."""
import json
import os
import shutil

import numpy as np
import onnx
import pytest

from mach_tools import quantize as Q
from mach_tools.bundle import check_bundle
from mach_tools.data import UserError
from mach_tools.featurize import HashFamily
from mach_tools.onnx_numpy import OnnxNumpyModel, _dynamic_quantize_linear

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "plugin", "src", "test", "resources", "fixtures", "tiny", "bundle")


def test_weights_round_trip_within_half_a_step():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(64, 16)).astype(np.float32)
    w[5] = 0  # an all-zero output column keeps scale 1 (no division by zero)
    q, scale = Q.quantize_weights(w)
    assert q.dtype == np.int8 and q.shape == (16, 64) and scale.shape == (64,)
    assert np.abs(q).max() <= 127
    back = q.T.astype(np.float32) * scale[:, None]
    assert np.all(np.abs(back - w) <= scale[:, None] / 2 + 1e-7)


def test_dynamic_quantize_linear_follows_the_onnx_definition():
    x = np.array([[0.0, 1.0, 2.5, 5.1]], np.float32)
    y, scale, zp = _dynamic_quantize_linear(x)
    assert scale == np.float32(5.1 / 255) and zp == 0  # the range always includes 0
    assert y.tolist() == [[0, 50, 125, 255]]
    y2, s2, zp2 = _dynamic_quantize_linear(np.array([-2.0, 0.0, 6.0], np.float32))
    assert zp2 == 64 and y2.tolist() == [0, 64, 255]  # zero point round(2 / (8/255)) = round(63.75)


def test_quantized_fixture_is_valid_and_close_to_float(tmp_path):
    out = tmp_path / "q"
    card = Q.quantize_bundle(FIXTURE, str(out))
    assert card["heads"]["dtype"] == "int8" and check_bundle(str(out), numeric=True) == []
    ops = [n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node]
    assert "MatMulInteger" in ops and "Gemm" not in ops
    f32 = OnnxNumpyModel(os.path.join(FIXTURE, "model.onnx"))
    i8 = OnnxNumpyModel(str(out / "model.onnx"))
    with open(os.path.join(FIXTURE, "parity.json")) as f:
        cases = json.load(f)["cases"]
    L = card["featurizer"]["max_features"]
    for c in cases:
        x = np.zeros((1, L), np.int64)
        x[0, :len(c["feature_ids"])] = c["feature_ids"]
        a = f32.run({"feature_ids": x})["probabilities"][0]
        b = i8.run({"feature_ids": x})["probabilities"][0]
        assert np.abs(a - b).max() < 0.05  # 7-bit weights (quantize.WEIGHT_MAX) on an H=32 model: up to 0.041
        assert (a.argmax(axis=1) == b.argmax(axis=1)).mean() >= 0.75


def test_predictor_runs_int8_heads_one_query_at_a_time():
    """evaluate's predictor quantizes each query's activations alone, as the plugin does: a batch of
    texts gives each text's own result, not the batch-scaled one."""
    from mach_tools.bundle import load_card, onnx_predictor
    from mach_tools.featurize import FeaturizerSpec, featurize_padded
    b = os.path.join(os.path.dirname(FIXTURE), "..", "tiny-int8", "bundle")
    card = load_card(b)
    texts = ["amber trainers", "vertex sweater", "a b c d e f g h i j k l m n o p", "x"]
    together = onnx_predictor(b, card)(texts)
    alone = np.concatenate([onnx_predictor(b, card)([t]) for t in texts])
    assert np.array_equal(together, alone)
    ids = np.array(featurize_padded(texts, FeaturizerSpec.from_card(card["featurizer"])), dtype=np.int64)
    batched = OnnxNumpyModel(os.path.join(b, "model.onnx")).run({"feature_ids": ids})["probabilities"]
    assert not np.array_equal(batched, alone)  # one scale for the whole batch rounds differently


def test_refuses_a_second_quantization_and_an_existing_output(tmp_path):
    out = tmp_path / "q"
    Q.quantize_bundle(FIXTURE, str(out))
    with pytest.raises(UserError, match="already int8"):
        Q.quantize_bundle(str(out), str(tmp_path / "qq"))
    with pytest.raises(UserError, match="already exists"):
        Q.quantize_bundle(FIXTURE, str(out))
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURE, broken)
    (broken / "labels.txt").write_text("x\n")
    with pytest.raises(UserError, match="not a valid bundle"):
        Q.quantize_bundle(str(broken), str(tmp_path / "qb"))
    assert not (tmp_path / "qb").exists()


def test_quantizes_the_heads_of_an_encoder_bundle(tmp_path):
    # the committed tiny encoder heads (R 4, B 64 over all-MiniLM-L6-v2) completed with the unpacked encoder
    from conftest import encoder_dir
    from mach_tools.wordpiece import WordPiece, encoder_files
    src = tmp_path / "v2"
    shutil.copytree(os.path.join(FIXTURE, "..", "..", "tiny-encoder"), src)
    onnx_path, tokenizer = encoder_files(encoder_dir())
    shutil.copyfile(onnx_path, src / "encoder.onnx")
    WordPiece.from_tokenizer_json(tokenizer).write_vocab(str(src / "vocab.txt"))
    assert check_bundle(str(src), numeric=False) == []

    card = Q.quantize_bundle(str(src), str(tmp_path / "q"))
    assert card["heads"]["dtype"] == "int8" and card["format_version"] == 2
    assert check_bundle(str(tmp_path / "q"), numeric=True) == []  # parity re-run through encoder + int8 heads
    assert "MatMulInteger" in [n.op_type for n in onnx.load(str(tmp_path / "q" / "model.onnx")).graph.node]
    with open(src / "parity.json") as f:
        before = json.load(f)["cases"]
    with open(tmp_path / "q" / "parity.json") as f:
        after = json.load(f)["cases"]
    assert [c["token_ids"] for c in after] == [c["token_ids"] for c in before]
    # the top bucket of each repetition mostly stays (7-bit weights)
    top1 = [a[0] == b[0] for x, y in zip(before, after) for a, b in zip(x["top_buckets"], y["top_buckets"])]
    assert np.mean(top1) >= 0.75


def _with_family(tmp_path, family):
    """The float fixture (written before families) with product_hash.family set in its card."""
    src = tmp_path / "with-family"
    shutil.copytree(FIXTURE, src)
    card = json.loads((src / "mach.json").read_text())
    card["product_hash"]["family"] = family
    (src / "mach.json").write_text(json.dumps(card))
    return src, card


def test_keeps_the_hash_family_and_refuses_a_wrong_one(tmp_path):
    ph = json.load(open(os.path.join(FIXTURE, "mach.json")))["product_hash"]
    family = HashFamily.of(ph["seeds"], ph["buckets"])
    assert family is not None
    src, _ = _with_family(tmp_path, family.name)
    assert check_bundle(str(src), numeric=False) == []
    assert Q.quantize_bundle(str(src), str(tmp_path / "q"))["product_hash"]["family"] == family.name
    assert json.load(open(tmp_path / "q" / "mach.json"))["product_hash"]["family"] == family.name
    wrong = HashFamily(family.repetitions, family.buckets, family.first_seed + 1).name
    bad, _ = _with_family(tmp_path / "bad", wrong)
    assert any("does not match" in p for p in check_bundle(str(bad), numeric=False))
    with pytest.raises(UserError, match="does not match"):
        Q.quantize_bundle(str(bad), str(tmp_path / "qb"))


def _fp32_encoder_bundle(tmp_path):
    """The tiny encoder heads over the fp32 all-MiniLM-L6-v2 (the graph a fine-tuned encoder keeps)."""
    from conftest import encoder_dir
    from mach_tools.bundle import sha256_file
    from mach_tools.wordpiece import WordPiece, encoder_files
    src = tmp_path / "v2-fp32"
    shutil.copytree(os.path.join(FIXTURE, "..", "..", "tiny-encoder"), src)
    onnx_path, tokenizer = encoder_files(os.path.join(os.path.dirname(encoder_dir()), "all-minilm-l6-v2"))
    shutil.copyfile(onnx_path, src / "encoder.onnx")
    WordPiece.from_tokenizer_json(tokenizer).write_vocab(str(src / "vocab.txt"))
    card = json.loads((src / "mach.json").read_text())
    card["encoder"]["variant"] = "fp32"
    card["files"]["encoder.onnx"] = sha256_file(str(src / "encoder.onnx"))
    (src / "mach.json").write_text(json.dumps(card))
    assert check_bundle(str(src), numeric=False) == []
    return src


def test_quantizes_the_encoder_of_a_float_encoder_bundle(tmp_path):
    from mach_tools.encoder import SentenceEncoder
    from mach_tools.wordpiece import WordPiece
    src = _fp32_encoder_bundle(tmp_path)
    card = Q.quantize_bundle(str(src), str(tmp_path / "q"), encoder=True)
    assert card["encoder"]["variant"] == "int8" and "quantized" in card["encoder"] and card["heads"]["dtype"] == "int8"
    assert check_bundle(str(tmp_path / "q"), numeric=True) == []  # parity re-run through the int8 encoder and heads
    graph = onnx.load(str(tmp_path / "q" / "encoder.onnx")).graph
    inits = {t.name for t in graph.initializer}
    ops = [n.op_type for n in graph.node]
    assert ops.count("MatMulInteger") == 36  # 6 projections x 6 layers
    assert not [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    assert os.path.getsize(tmp_path / "q" / "encoder.onnx") < 0.7 * os.path.getsize(src / "encoder.onnx")
    # the int8 encoder embeds like the float one
    tok = WordPiece.from_vocab_file(str(src / "vocab.txt"))
    texts = ["cordless drill", "10 ft pvc pipe", "white kitchen faucet with sprayer"]
    a = SentenceEncoder(str(src / "encoder.onnx"), tok).embed(texts)
    b = SentenceEncoder(str(tmp_path / "q" / "encoder.onnx"), tok).embed(texts)
    assert np.min(np.sum(a * b, axis=1)) > 0.98
    # a second pass finds nothing to quantize, and a format 1 bundle has no encoder
    with pytest.raises(UserError, match="no float MatMul"):
        Q.quantize_bundle(str(tmp_path / "q"), str(tmp_path / "q2"), encoder=True)
    with pytest.raises(UserError, match="no sentence encoder"):
        Q.quantize_bundle(FIXTURE, str(tmp_path / "q3"), encoder=True)
