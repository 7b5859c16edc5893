"""Low-rank heads (mach_tools compress): the fit's algebra, and a compressed bundle that checks and quantizes."""
import json
import os

import numpy as np
import onnx
import pytest

from mach_tools import compress as C
from mach_tools import quantize as Q
from mach_tools.bundle import check_bundle
from mach_tools.cli import main
from mach_tools.data import UserError
from mach_tools.onnx_numpy import OnnxNumpyModel


FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "plugin", "src", "test", "resources", "fixtures")
TINY = os.path.join(FIXTURES, "tiny")  # hashed (format 1): R 4, B 64, H 32, D 4096


def _problem(seed=5, n=300, d=24, R=4, B=16):
    """Anisotropic queries (a few dominant directions, as sentence embeddings) and random heads."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.geomspace(3.0, 0.05, d)
    x = (x @ np.linalg.qr(rng.normal(size=(d, d)))[0]).astype(np.float32)
    w = rng.normal(size=(R * B, d)).astype(np.float32)
    return x, C.center_repetitions(w, R), R, B


def _softmax(z, R):
    z = z.reshape(len(z), R, -1)
    e = np.exp(z - z.max(axis=2, keepdims=True))
    return e / e.sum(axis=2, keepdims=True)


def test_centering_keeps_every_repetitions_softmax():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3 * 8, 5)).astype(np.float32)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    wc = C.center_repetitions(w, 3)
    assert np.abs(wc.reshape(3, 8, 5).mean(axis=1)).max() < 1e-6
    assert not np.allclose(x @ w.T, x @ wc.T)  # the logits move ...
    assert np.allclose(_softmax(x @ w.T, 3), _softmax(x @ wc.T, 3), atol=1e-6)  # ... the probabilities do not


@pytest.mark.parametrize("fit", C.FITS)
def test_full_rank_reproduces_the_logits(fit):
    x, w, _, _ = _problem()
    p, v, facts = C.fit_low_rank(w, C.second_moment(x), w.shape[1], fit)
    assert p.shape == (w.shape[1], w.shape[1]) and v.shape == (w.shape[1], w.shape[0])
    assert np.abs(x @ p @ v - x @ w.T).max() < 1e-4 * np.abs(x @ w.T).max()
    assert facts["relative_error"] < 1e-9


def test_query_svd_error_is_the_dropped_singular_values():
    x, w, _, _ = _problem()
    k = 6
    p, v, facts = C.fit_low_rank(w, C.second_moment(x), k, "query-svd")
    logits = x.astype(np.float64) @ w.T.astype(np.float64)
    s2 = np.linalg.svd(logits, compute_uv=False) ** 2
    predicted = s2[k:].sum() / s2.sum()  # Eckart-Young: the best rank-k error of the query logits
    measured = np.sum((logits - x @ p @ v) ** 2) / np.sum(logits ** 2)
    assert 0.01 < predicted < 0.9
    assert facts["relative_error"] == pytest.approx(predicted, rel=1e-4)
    assert measured == pytest.approx(predicted, rel=1e-3)
    # the principal directions of the queries alone do worse at the same rank
    assert C.fit_low_rank(w, C.second_moment(x), k, "pca")[2]["relative_error"] > 1.05 * predicted


def test_fit_refuses_bad_ranks():
    x, w, _, _ = _problem()
    for k in (0, w.shape[1] + 1):
        with pytest.raises(UserError, match="rank must be"):
            C.fit_low_rank(w, C.second_moment(x), k)


QUERIES = ["cordless drill", "10 ft pvc pipe", "white kitchen faucet", "led light bulb 60w", "garden hose 50 ft",
           "wood screws", "ceiling fan with light", "paint roller", "vinyl plank flooring", "door knob brushed nickel",
           "outdoor solar lights", "shower head", "toilet seat", "extension cord", "smoke detector", "air filter 20x20",
           "deck stain", "lawn mower blade", "tile saw", "water heater", "storage shelves", "hammer", "tape measure",
           "caulk gun", "window blinds", "mailbox", "fence post", "concrete mix", "drywall anchors", "gutter guard",
           "bathroom vanity", "patio umbrella", "step ladder", "circuit breaker", "pipe wrench", "leaf blower",
           "weed killer", "grout sealer", "ceiling tile", "cabinet hinges"]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    """The tiny encoder heads (R 4, B 64) over the fp32 encoder, compressed to rank 16 on QUERIES."""
    from test_quantize import _fp32_encoder_bundle
    tmp = tmp_path_factory.mktemp("compress")
    src = _fp32_encoder_bundle(tmp)
    pairs = tmp / "train.tsv"
    pairs.write_text("query\tproduct_id\n" + "".join(f"{q}\tp{i}\n" for i, q in enumerate(QUERIES + QUERIES[:5])))
    card = C.compress_bundle(str(src), str(tmp / "lr16"), 16, str(pairs), embed_cache=str(tmp / "cache"),
                             progress=False)
    return src, tmp / "lr16", pairs, card


def test_compressed_bundle_checks_and_keeps_its_contract(compressed):
    src, out, pairs, card = compressed
    assert check_bundle(str(out), numeric=True) == []  # checksums, shapes, parity through encoder + low-rank heads
    lr = card["low_rank"]
    assert lr["rank"] == 16 and lr["fit"] == "pca" and lr["fitted_on"]["queries"] == len(QUERIES)
    assert lr["macs"] == 384 * 16 + 16 * 4 * 64 and 0 < lr["relative_error"] < 1
    graph = onnx.load(str(out / "model.onnx")).graph
    assert [n.op_type for n in graph.node][:2] == ["MatMul", "Gemm"]
    assert graph.input[0].name == "embedding" and graph.output[0].name == "probabilities"
    # on the queries it was fitted to, the error is the one the card states (the bias cancels in the difference)
    from mach_tools.encoder import SentenceEncoder
    e = SentenceEncoder.from_bundle(str(src), card, cache_dir=str(out.parent / "cache")).embed(QUERIES)
    full = onnx.load(str(src / "model.onnx")).graph
    w = C.center_repetitions(onnx.numpy_helper.to_array([t for t in full.initializer if t.name == "heads.weight"][0]), 4)
    low = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    approx = e @ low[C.PROJECTION] @ low["heads.weight"].T
    err = np.sum((e @ w.T - approx) ** 2) / np.sum((e @ w.T) ** 2)
    assert err == pytest.approx(lr["relative_error"], rel=0.01, abs=1e-5)


def test_quantize_makes_both_matmuls_int8(compressed, tmp_path):
    _, out, _, card = compressed
    qcard = Q.quantize_bundle(str(out), str(tmp_path / "q"))
    assert check_bundle(str(tmp_path / "q"), numeric=True) == []
    assert qcard["heads"]["bytes"] == 4 * 64 * 16 + 4 * 4 * 64 + 384 * 16 + 4 * 16
    ops = [n.op_type for n in onnx.load(str(tmp_path / "q" / "model.onnx")).graph.node]
    assert ops.count("MatMulInteger") == 2 and "MatMul" not in ops and "Gemm" not in ops
    x = np.random.default_rng(0).normal(size=(5, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    a = OnnxNumpyModel(str(out / "model.onnx")).run({"embedding": x})["probabilities"]
    b = OnnxNumpyModel(str(tmp_path / "q" / "model.onnx")).run({"embedding": x})["probabilities"]
    assert np.abs(a - b).max() < 0.05


def test_bad_input_is_refused_and_leaves_nothing(compressed, tmp_path, capsys):
    src, out, pairs, _ = compressed
    dest = tmp_path / "x"
    for rank in ("0", "384", "-3"):
        assert main(["compress", str(src), "--rank", rank, "--pairs", str(pairs), "--out", str(dest)]) == 2
        assert "--rank must be between 1 and 383" in capsys.readouterr().err
    assert main(["compress", str(src), "--rank", "8", "--pairs", str(tmp_path / "none.tsv"), "--out", str(dest)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["compress", str(tmp_path / "nowhere"), "--rank", "8", "--pairs", str(pairs), "--out", str(dest)]) == 2
    assert "not a bundle directory" in capsys.readouterr().err
    with pytest.raises(UserError, match="already low-rank"):
        C.compress_bundle(str(out), str(dest), 8, str(pairs))
    Q.quantize_bundle(str(src), str(tmp_path / "int8"))
    with pytest.raises(UserError, match="heads are int8"):
        C.compress_bundle(str(tmp_path / "int8"), str(dest), 8, str(pairs))
    with pytest.raises(UserError, match="already exists"):
        C.compress_bundle(str(src), str(out), 8, str(pairs))
    with pytest.raises(UserError, match="heads are int8"):
        C.compress_bundle(os.path.join(FIXTURES, "tiny-int8", "bundle"), str(dest), 8, str(pairs))
    assert sorted(os.listdir(tmp_path)) == ["int8"]  # no output and no staging directory left behind
    with open(out / "mach.json") as f:
        assert json.load(f)["low_rank"]["rank"] == 16


# ---------------------------------------------------------------- hashed (format 1) bundles

def _tiny_hidden(texts):
    """The tiny hashed network's hidden vectors, computed by hand from its initializers: ReLU(mean of the
    feature rows + bias), what its heads Gemm reads."""
    from mach_tools.featurize import FeaturizerSpec, featurize_padded
    card = json.load(open(os.path.join(TINY, "bundle", "mach.json")))
    init = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(os.path.join(TINY, "bundle", "model.onnx")).graph.initializer}
    ids = np.array(featurize_padded(texts, FeaturizerSpec.from_card(card["featurizer"])))
    mask = (ids != 0).astype(np.float32)
    summed = (init["embedding.weight"][ids] * mask[..., None]).sum(axis=1)
    return np.maximum(summed / np.maximum(mask.sum(axis=1, keepdims=True), 1) + init["bias"], 0), init


def _tiny_queries():
    with open(os.path.join(TINY, "queries.tsv"), encoding="utf-8") as f:
        return list(dict.fromkeys(line.split("\t")[0] for line in f.read().splitlines()[1:]))


@pytest.mark.parametrize("fit", C.FITS)
def test_hashed_graph_at_full_rank_reproduces_the_network(fit):
    """The activations compress fits on are the hidden vectors the heads read, and the rewritten graph
    (MatMul + Gemm after the ReLU) at full rank gives the full-rank network's probabilities."""
    from mach_tools.featurize import FeaturizerSpec, featurize_padded
    texts = _tiny_queries()[:200]
    model = onnx.load(os.path.join(TINY, "bundle", "model.onnx"))
    card = json.load(open(os.path.join(TINY, "bundle", "mach.json")))
    ids = np.array(featurize_padded(texts, FeaturizerSpec.from_card(card["featurizer"])), dtype=np.int64)
    x = C.heads_inputs(model, {"feature_ids": ids}, batch=64)
    hidden, init = _tiny_hidden(texts)
    assert x.shape == (len(texts), 32) and np.abs(x - hidden).max() < 1e-5
    w = C.center_repetitions(init["heads.weight"], 4)
    p, v, facts = C.fit_low_rank(w, C.second_moment(x), 32, fit)
    assert facts["relative_error"] < 1e-6
    full = OnnxNumpyModel(model).run({"feature_ids": ids})["probabilities"]
    low = C.low_rank_model(onnx.load(os.path.join(TINY, "bundle", "model.onnx")), p, v)  # checker passes
    assert [n.op_type for n in low.graph.node if n.op_type in ("MatMul", "Gemm")] == ["MatMul", "Gemm"]
    assert np.abs(OnnxNumpyModel(low).run({"feature_ids": ids})["probabilities"] - full).max() < 1e-5


@pytest.fixture(scope="module")
def hashed(tmp_path_factory):
    """The tiny hashed bundle (R 4, B 64, H 32) compressed to rank 16 on its training queries, and its int8 copy."""
    tmp = tmp_path_factory.mktemp("hashed")
    pairs = os.path.join(TINY, "queries.tsv")
    card = C.compress_bundle(os.path.join(TINY, "bundle"), str(tmp / "lr16"), 16, pairs, progress=False)
    qcard = Q.quantize_bundle(str(tmp / "lr16"), str(tmp / "lr16-int8"))
    return tmp, card, qcard


def test_hashed_bundle_compresses_checks_and_quantizes(hashed):
    tmp, card, qcard = hashed
    texts = _tiny_queries()
    lr = card["low_rank"]
    assert lr["rank"] == 16 and lr["fitted_on"]["queries"] == len(texts) and "encoder" not in lr["fitted_on"]
    assert lr["fitted_on"]["activations"] == "/Relu_output_0"
    assert lr["macs"] == 32 * 16 + 16 * 4 * 64 and lr["full_macs"] == 32 * 4 * 64 and 0 < lr["relative_error"] < 1
    for b in ("lr16", "lr16-int8"):
        assert check_bundle(str(tmp / b), numeric=True) == []  # checksums, shapes, the rewritten parity file
    src_parity = json.load(open(os.path.join(TINY, "bundle", "parity.json")))
    parity = json.load(open(tmp / "lr16" / "parity.json"))
    assert [c["text"] for c in parity["cases"]] == [c["text"] for c in src_parity["cases"]]
    assert parity["cases"] != src_parity["cases"]  # recomputed from the low-rank graph
    # the card's relative error is the one measured on the hidden vectors of the queries it was fitted to
    hidden, init = _tiny_hidden(texts)
    w = C.center_repetitions(init["heads.weight"], 4)
    low = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(tmp / "lr16" / "model.onnx")).graph.initializer}
    err = np.sum((hidden @ w.T - hidden @ low[C.PROJECTION] @ low["heads.weight"].T) ** 2) / np.sum((hidden @ w.T) ** 2)
    assert err == pytest.approx(lr["relative_error"], rel=0.01, abs=1e-5)
    # int8: both MatMuls, bytes of both factors, the low_rank record kept
    assert qcard["heads"]["bytes"] == 4 * 64 * 16 + 4 * 4 * 64 + 32 * 16 + 4 * 16 and qcard["low_rank"] == lr
    ops = [n.op_type for n in onnx.load(str(tmp / "lr16-int8" / "model.onnx")).graph.node]
    assert ops.count("MatMulInteger") == 2 and "MatMul" not in ops and "Gemm" not in ops


def test_hashed_refusals_come_first_and_leave_nothing(hashed, tmp_path, capsys):
    tmp, _, _ = hashed
    pairs = os.path.join(TINY, "queries.tsv")
    for rank in ("0", "32"):
        assert main(["compress", os.path.join(TINY, "bundle"), "--rank", rank, "--pairs", pairs,
                     "--out", str(tmp_path / "x")]) == 2
        assert "--rank must be between 1 and 31 (the heads read 32 values per query)" in capsys.readouterr().err
    with pytest.raises(UserError, match="already low-rank"):
        C.compress_bundle(str(tmp / "lr16"), str(tmp_path / "x"), 8, pairs)
    with pytest.raises(UserError, match="heads are int8"):
        C.compress_bundle(str(tmp / "lr16-int8"), str(tmp_path / "x"), 8, pairs)
    assert os.listdir(tmp_path) == []
