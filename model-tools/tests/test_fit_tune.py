"""Fitted heads + log_mean aggregation, and the fine-tuned query tower (issue 16)."""
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import encoder_dir
from mach_tools.bundle import check_bundle, load_card, onnx_predictor
from mach_tools.cli import main
from mach_tools.decode import aggregation_of, label_buckets, scores
from mach_tools.featurize import ProductHash
from mach_tools.train_encoder import fit_heads, fit_temperature


def _catalog(K=60, E=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    P = F.normalize(torch.randn(K, E, generator=g), dim=1)
    ids = [f"P{i}" for i in range(K)]
    return ids, P


def _log_mean_scores(C, buckets, Q, T):
    probs = torch.softmax(torch.einsum("qe,rbe->qrb", Q, C) / T, -1).numpy()
    return scores(probs, buckets, "log_mean")


def test_fit_reduces_reconstruction_error_and_log_mean_ranks_like_cosine():
    ids, P = _catalog()
    R, B = 4, 32  # R * B = 128 >= K = 60
    buckets = label_buckets(ids, ProductHash(buckets=B, seeds=ProductHash.default_seeds(R)))
    C, hist = fit_heads(P, torch.from_numpy(buckets), B, sweeps=50)
    mse = [h["mse"] for h in hist]
    assert mse[-1] < 0.05 * mse[0] and all(b <= a + 1e-9 for a, b in zip(mse, mse[1:]))
    assert hist[-1]["cosine"] > 0.99
    Q = F.normalize(torch.randn(20, P.shape[1], generator=torch.Generator().manual_seed(1)), dim=1)
    T = fit_temperature(C, Q)
    lg = torch.einsum("qe,rbe->qrb", Q, C) / T
    spread = (lg.max(-1).values - lg.min(-1).values).flatten()
    assert abs(float(torch.quantile(spread, 0.95)) - 15.0) < 1e-3  # the chosen scale
    T *= float(spread.max()) / 15.0  # every query within the 7-decade floor: the identity below is exact
    s = _log_mean_scores(C, buckets, Q, T)
    cos = (Q @ P.T).numpy()
    # the log-mean score is q . v(k) / T up to a per-query constant, v(k) = mean_r C_r[h_r(k)] ...
    V = torch.stack([C[r][torch.from_numpy(buckets[:, r])] for r in range(R)]).mean(0)
    resid = s * T - (Q @ V.T).numpy()
    assert np.abs(resid - resid.mean(axis=1, keepdims=True)).max() < 1e-4
    # ... and v(k) ~ P_k, so it is the cosine up to that constant
    resid = s * T - cos
    assert np.median(np.abs(resid - resid.mean(axis=1, keepdims=True))) < 0.01
    assert (np.argsort(-s, axis=1)[:, :5] == np.argsort(-cos, axis=1)[:, :5]).mean() > 0.95
    assert (s >= 0).all()
    # the same heads decoded by the mean of probabilities are much worse: the card must say which
    probs = torch.softmax(torch.einsum("qe,rbe->qrb", Q, C) / T, -1).numpy()
    top_mean = scores(probs, buckets, "mean").argmax(1)
    assert (top_mean == cos.argmax(1)).mean() < (s.argmax(1) == cos.argmax(1)).mean()


def test_fit_leaves_empty_buckets_zero():
    ids, P = _catalog(K=5)
    buckets = label_buckets(ids, ProductHash(buckets=64, seeds=ProductHash.default_seeds(2)))
    C, _ = fit_heads(P, torch.from_numpy(buckets), 64, sweeps=3)
    used = set(buckets[:, 0].tolist())
    assert torch.isfinite(C).all()
    assert all(float(C[0, b].abs().sum()) == 0.0 for b in range(64) if b not in used)


def test_log_mean_floor_and_definition():
    # repetition 0 spans less than 7 decades: its floor is its minimum; repetition 1 spans more: its
    # floor is 1e-7 times its maximum, and buckets below it count as the floor (score 0)
    probs = np.array([[[0.5, 0.3, 0.2, 0.2], [0.9, 1e-12, 1e-9, 1e-3]]], dtype=np.float32)
    buckets = np.array([[0, 1], [1, 2], [2, 3], [3, 0]])
    s = scores(probs, buckets, "log_mean")[0]
    p = probs.astype(np.float64)[0]
    f0, f1 = p[0].min(), p[1].max() * 1e-7
    want = np.array([np.log(p[0, 0] / f0) + 0.0, np.log(p[0, 1] / f0) + 0.0,
                     0.0 + np.log(p[1, 3] / f1), 0.0 + np.log(p[1, 0] / f1)]) / 2
    np.testing.assert_allclose(s, want, rtol=1e-6)
    np.testing.assert_allclose(scores(probs, buckets, "mean")[0],
                               (p[0, buckets[:, 0]] + p[1, buckets[:, 1]]) / 2, rtol=1e-6)
    with pytest.raises(ValueError):
        scores(probs, buckets, "median")
    assert aggregation_of({}) == "mean" and aggregation_of({"aggregation": "log_mean"}) == "log_mean"
    with pytest.raises(ValueError):
        aggregation_of({"aggregation": "max"})


def _write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


TITLES = ["red leather sofa", "cordless power drill", "kitchen sink faucet", "garden hose reel", "oak dining table",
          "led light bulb", "paint roller kit", "ceiling fan with light"]


@pytest.fixture
def data(tmp_path):
    cat = _write(tmp_path / "products.tsv", "product_id\ttitle\n" + "".join(f"P{i}\t{t}\n" for i, t in enumerate(TITLES)))
    pairs = _write(tmp_path / "pairs.tsv", "query\tproduct_id\trelevance\ncrimson couch\tP0\t3\nbattery drill\tP1\t3\n"
                                           "water tap\tP2\t3\nlamp\tP5\t2\n")
    dev = _write(tmp_path / "dev.tsv", "query\tproduct_id\trelevance\ncouch\tP0\t3\nfaucet\tP2\t3\n")
    return cat, pairs, dev


def test_fit_bundle_card_says_log_mean_and_evaluate_uses_it(tmp_path, data, capsys):
    cat, pairs, dev = data
    out = str(tmp_path / "fit")
    base = ["train", "--encoder", encoder_dir(), "--catalog", cat, "--dev", dev, "--preset", "synth",
            "--R", "4", "--B", "16", "--no-progress"]
    assert main(base + ["--heads", "fit", "--out", out]) == 0
    card = load_card(out)
    assert card["aggregation"] == "log_mean" and card["training"]["heads"] == "fit"
    assert check_bundle(out) == []
    sweeps = card["training"]["fit"]["sweeps"]
    assert sweeps[-1]["mse"] < sweeps[0]["mse"]
    # every product's own title ranks it first through the bundle's graphs, decoded as the card says
    probs = onnx_predictor(out, card)(TITLES)
    b = label_buckets([f"P{i}" for i in range(len(TITLES))], ProductHash(16, card["product_hash"]["seeds"]))
    assert (scores(probs, b, aggregation_of(card)).argmax(1) == np.arange(len(TITLES))).all()
    capsys.readouterr()
    assert main(["evaluate", out, "--judgments", dev, "--preset", "synth", "--out", str(tmp_path / "m.json")]) == 0
    with open(tmp_path / "m.json") as f:
        assert json.load(f)["metrics"]["NDCG@10"] == 1.0
    # a card with an unknown aggregation is refused, naming the field
    card["aggregation"] = "max"
    with open(os.path.join(out, "mach.json"), "w") as f:
        json.dump(card, f)
    assert any("aggregation" in p for p in check_bundle(out))
    # sketch bundles keep "mean" as an absent field
    assert main(base + ["--epochs", "0", "--out", str(tmp_path / "sk")]) == 0
    assert "aggregation" not in load_card(str(tmp_path / "sk"))


def test_cli_refusals(tmp_path, data, capsys):
    cat, pairs, dev = data
    base = ["train", "--encoder", encoder_dir(), "--catalog", cat, "--R", "4", "--B", "16", "--no-progress",
            "--out", str(tmp_path / "x")]
    capsys.readouterr()
    assert main(base + ["--heads", "fit", "--epochs", "2"]) == 2
    assert "--epochs 0" in capsys.readouterr().err
    assert main(base + ["--tune-query-encoder", "1"]) == 2
    assert "needs --pairs (a query log) or --tune-pseudo-queries" in capsys.readouterr().err
    assert main(base + ["--tune-pseudo-queries", "2"]) == 2
    assert "only with --tune-query-encoder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--tune-query-encoder", "1", "--tune-pseudo-queries", "0"])
    assert "--tune-pseudo-queries: must be > 0" in capsys.readouterr().err
    assert main(base + ["--pairs", pairs, "--tune-query-encoder", "1", "--tune-from", str(tmp_path)]) == 2
    assert "fp32" in capsys.readouterr().err
    assert main(base + ["--pairs", pairs, "--tune-from", str(tmp_path)]) == 2
    assert main(["train", "--catalog", cat, "--out", str(tmp_path / "y"), "--heads", "fit"]) == 2
    assert "encoder models only" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x")


def _fp32_dir():
    d = os.path.join(os.path.dirname(encoder_dir()), "all-minilm-l6-v2")
    if not os.path.isfile(os.path.join(d, "encoder.onnx")):
        pytest.skip("the fp32 encoder is not unpacked (plugin/target/encoders/all-minilm-l6-v2)")
    return d


def test_torch_bert_matches_the_onnx_graph_and_writes_it_back(tmp_path):
    from mach_tools.bert import embed_texts, from_onnx, write_onnx
    from mach_tools.encoder import SentenceEncoder
    enc = SentenceEncoder.from_dir(_fp32_dir())
    bert = from_onnx(enc.onnx_path)
    texts = ["red sofa", "cordless drill 18v battery", "Ünïcode ﬁ ½ test — 42"]
    np.testing.assert_allclose(embed_texts(bert, enc.tokenizer, texts).numpy(), enc.embed(texts), atol=1e-5)
    with torch.no_grad():
        bert.layers[2].q.weight.add_(0.02)
    write_onnx(bert, enc.onnx_path, str(tmp_path / "t.onnx"))
    tuned = SentenceEncoder(str(tmp_path / "t.onnx"), enc.tokenizer)
    got = tuned.embed(texts)
    np.testing.assert_allclose(got, embed_texts(bert, enc.tokenizer, texts).numpy(), atol=1e-5)
    assert np.abs(got - enc.embed(texts)).max() > 1e-4  # the change was written
    with pytest.raises(ValueError, match="fp32"):
        from_onnx(os.path.join(encoder_dir(), "encoder.onnx"))


def test_tuned_query_tower_bundle(tmp_path, data):
    _fp32_dir()
    cat, pairs, dev = data
    out = str(tmp_path / "tuned")
    assert main(["train", "--encoder", encoder_dir(), "--catalog", cat, "--pairs", pairs, "--dev", dev,
                 "--preset", "synth", "--R", "4", "--B", "16", "--no-progress", "--heads", "fit",
                 "--tune-query-encoder", "1", "--tune-lr", "1e-5", "--tune-batch", "2", "--out", out]) == 0
    card = load_card(out)
    assert card["encoder"]["variant"] == "fp32-tuned" and card["aggregation"] == "log_mean"
    tuning = card["encoder"]["tuning"]
    assert tuning["epochs"] == 1 and tuning["lr"] == 1e-5 and len(tuning["base_sha256"]) == 64
    assert card["files"]["encoder.onnx"] != tuning["base_sha256"]
    hist = card["training"]["query_tower"]["history"]
    assert [h["epoch"] for h in hist] == [0, 1] and "dev_dense" in hist[1] and hist[1]["loss"] > 0
    assert check_bundle(out) == []  # parity recomputed from the written graph


def test_pseudo_queries_are_title_words_targeting_their_product():
    import random
    from mach_tools.data import Catalog
    from mach_tools.train_encoder import pseudo_queries
    cat = Catalog(ids=["a", "b", "c"], field_names=["title"],
                  fields=[["cordless drill 18v kit"], [""], ["red sofa"]])
    got = pseudo_queries(cat, 5, random.Random(1))
    assert len(got) == 10  # the product without a title has none
    for text, targets in got:
        k = targets[0][0]
        assert targets == [(k, 1.0)] and k in (0, 2)
        assert text and set(text.split()) <= set(cat.fields[k][0].split())
    assert len({t for t, _ in got if _[0][0] == 0}) > 1  # spans vary


def test_query_tower_tunes_on_pseudo_queries_without_a_log(tmp_path, data):
    _fp32_dir()
    cat, pairs, dev = data
    out = str(tmp_path / "pq")
    assert main(["train", "--encoder", encoder_dir(), "--catalog", cat, "--dev", dev, "--preset", "synth",
                 "--R", "4", "--B", "16", "--no-progress", "--epochs", "0", "--tune-query-encoder", "1",
                 "--tune-pseudo-queries", "2", "--tune-lr", "1e-5", "--tune-batch", "4", "--out", out]) == 0
    card = load_card(out)
    tuning = card["encoder"]["tuning"]
    assert card["encoder"]["variant"] == "fp32-tuned" and tuning["pseudo_queries_per_product"] == 2
    assert card["files"]["encoder.onnx"] != tuning["base_sha256"]  # the tower changed
    hist = card["training"]["query_tower"]["history"]
    assert [h["epoch"] for h in hist] == [0, 1] and hist[1]["loss"] > 0
    assert check_bundle(out) == []
