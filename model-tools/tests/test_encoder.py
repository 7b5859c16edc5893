"""Encoder models (bundle format 2): the NumPy encoder, the catalog sketch, train --encoder end to end."""
import json
import os

import numpy as np
import pytest
import torch

from conftest import encoder_dir
from mach_tools.bundle import check_bundle, load_card, onnx_predictor
from mach_tools.cli import main
from mach_tools.decode import label_buckets, scores
from mach_tools.encoder import SentenceEncoder
from mach_tools.featurize import HashFamily, ProductHash
from mach_tools.model import EncoderHeads


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder.from_dir(encoder_dir())


def test_embeddings_are_unit_length_and_semantic(encoder):
    e = encoder.embed(["crimson couch", "red sofa", "cordless drill"])
    assert e.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2  # synonyms, no shared word
    # a text alone (as the plugin embeds a query) vs in a batch: the int8 activation scale is
    # shared by the batch (padding included), which moves the vector a little (cosine 0.991 here)
    alone = encoder.embed_one("red sofa")
    assert 0.98 < float(alone @ e[1]) < 1.0
    np.testing.assert_allclose(encoder.embed_ids([encoder.tokenizer.encode("red sofa")])[0], alone)


def test_embedding_cache_round_trip(tmp_path):
    a = SentenceEncoder.from_dir(encoder_dir(), cache_dir=str(tmp_path))
    v = a.embed(["blue saw", "green hammer"])
    b = SentenceEncoder.from_dir(encoder_dir(), cache_dir=str(tmp_path))
    assert set(b._memo) == {"blue saw", "green hammer"}
    np.testing.assert_array_equal(b.embed(["green hammer", "blue saw"]), v[::-1])


def test_catalog_sketch_ranks_like_cosine(encoder):
    """Untrained heads set from the catalog put each product's own title first, like exact cosine."""
    titles = ["red leather sofa", "cordless power drill", "kitchen sink faucet", "garden hose reel",
              "ceiling fan with light", "oak dining table", "led light bulb", "paint roller kit"]
    ids = [f"P{i}" for i in range(len(titles))]
    ph = ProductHash(buckets=64, seeds=ProductHash.default_seeds(4))
    buckets = label_buckets(ids, ph)
    vecs = torch.from_numpy(encoder.embed(titles))
    heads = EncoderHeads(384, 4, 64)
    heads.init_from_catalog(vecs, torch.from_numpy(buckets), temperature=0.1)
    with torch.no_grad():
        s = scores(heads(vecs).numpy(), buckets)
    assert (s.argmax(axis=1) == np.arange(len(titles))).all()


def test_catalog_vectors_title_and_text(encoder):
    """title+text: the normalized mean of the title's vector and that of all the fields joined."""
    from mach_tools.data import Catalog, UserError
    from mach_tools.train_encoder import catalog_vectors
    cat = Catalog(["A", "B"], ["title", "bullet_points"],
                  [["red sofa", "three seats, velvet, for the living room"], ["cordless drill", ""]])
    title = catalog_vectors(encoder, cat, "title", progress=False)
    np.testing.assert_allclose(title, encoder.embed(["red sofa", "cordless drill"]), atol=1e-6)
    both = catalog_vectors(encoder, cat, "title+text", progress=False)
    full = encoder.embed(["red sofa three seats, velvet, for the living room"])[0]
    want = (title[0] + full) / np.linalg.norm(title[0] + full)
    np.testing.assert_allclose(both[0], want, atol=1e-5)
    assert float(both[0] @ title[0]) < 0.999  # the bullets moved it
    np.testing.assert_allclose(both[1], title[1], atol=1e-5)  # nothing but a title: the title's vector
    with pytest.raises(UserError, match="--catalog-vectors"):
        catalog_vectors(encoder, cat, "bullets", progress=False)


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def test_train_encoder_end_to_end_and_refusals(tmp_path, capsys):
    cat = write(tmp_path / "products.tsv", "product_id\ttitle\nA1\tred leather sofa\nB2\tcordless power drill\n"
                                           "C3\tkitchen sink faucet\nD4\tgarden hose reel\n")
    pairs = write(tmp_path / "pairs.tsv", "query\tproduct_id\trelevance\ncrimson couch\tA1\t3\nbattery drill\tB2\t3\n")
    dev = write(tmp_path / "dev.tsv", "query\tproduct_id\trelevance\ncouch\tA1\t3\nwater tap\tC3\t3\n")
    out = str(tmp_path / "bundle")
    base = ["train", "--encoder", encoder_dir(), "--catalog", cat, "--pairs", pairs, "--dev", dev, "--preset", "synth",
            "--R", "4", "--B", "32", "--no-progress"]
    assert main(base + ["--epochs", "2", "--out", out]) == 0
    card = load_card(out)
    assert card["format_version"] == 2 and card["input"] == "encoder"
    assert card["product_hash"]["family"] == HashFamily.of(card["product_hash"]["seeds"], card["B"]).name
    assert {"encoder.onnx", "vocab.txt", "model.onnx", "labels.txt"} <= set(card["files"])
    assert card["onnx"]["inputs"] == [{"name": "embedding", "dtype": "float32", "shape": [-1, 384]}]
    assert check_bundle(out) == []
    with open(os.path.join(out, "metrics.json")) as f:
        history = json.load(f)["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2] and "dev" in history[0]
    # the bundle's own graphs (what the plugin runs) rank the synonym query's product first
    probs = onnx_predictor(out, card)(["crimson couch"])
    assert scores(probs, label_buckets(["A1", "B2", "C3", "D4"], ProductHash(32, card["product_hash"]["seeds"])))[0].argmax() == 0
    # a tampered vocabulary is caught
    with open(os.path.join(out, "vocab.txt"), "a", encoding="utf-8") as f:
        f.write("extra\n")
    assert any("vocab.txt" in p for p in check_bundle(out))
    capsys.readouterr()
    for flag, value in (("--H", "64"), ("--input-layer", "mixed"), ("--D", "1024")):
        assert main(base + ["--out", str(tmp_path / "x"), flag, value]) == 2
        assert "hashed n-gram network" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "x"), "--epochs", "-1"]) == 2
    assert main(["train", "--catalog", cat, "--out", str(tmp_path / "y"), "--temperature", "0.1"]) == 2
    assert "encoder models only" in capsys.readouterr().err
    assert main(["train", "--catalog", cat, "--out", str(tmp_path / "y"), "--epochs", "0"]) == 2
    assert main(base + ["--out", str(tmp_path / "z"), "--encoder", str(tmp_path)]) == 2
    assert "encoder.onnx" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path / "z")
