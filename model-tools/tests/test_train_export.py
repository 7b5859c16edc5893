"""A tiny model learns the synthetic task; the exported bundle is valid and reproduces PyTorch."""
import json
import os
import shutil

import numpy as np
import onnx
import pytest
import torch

from mach_tools import synth
from mach_tools.bundle import check_bundle, load_card, write_bundle
from mach_tools.data import Pairs, UserError, read_catalog, read_pairs, judgments_by_query
from mach_tools.featurize import FeaturizerSpec, HashFamily, ProductHash, featurize_padded
from mach_tools.model import MachModel
from mach_tools.onnx_numpy import OnnxNumpyModel
from mach_tools.train import Recipe, train, evaluate_model, torch_predictor
from mach_tools.decode import label_buckets

TINY = dict(R=4, B=64, H=32, D=4096, L=32, epochs=12, batch_size=128, lr=0.01, emb_lr=0.05,
            augment_per_product=15, threads=2)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("synth"))
    synth.write(d, n_products=200, seed=7)
    return d


@pytest.fixture(scope="module")
def trained(synth_dir):
    catalog = read_catalog(os.path.join(synth_dir, "products.tsv"))
    pairs = read_pairs(os.path.join(synth_dir, "queries.tsv"))
    dev = judgments_by_query(read_pairs(os.path.join(synth_dir, "judgments-dev.tsv")))
    out = os.path.join(synth_dir, "bundle")
    card = train(catalog, pairs, Recipe(**TINY), out, "test", dev=dev, gain_offset=0, relevant_min=1,
                 progress=False, log=lambda *a: None)
    return catalog, pairs, dev, out, card


def test_card_names_the_hash_family(trained):
    card = trained[4]
    family = HashFamily.parse(card["product_hash"]["family"])
    assert (family.repetitions, family.buckets) == (card["R"], card["B"])
    assert family.seeds() == card["product_hash"]["seeds"]


def test_tiny_model_learns_well_above_chance(trained):
    catalog, pairs, dev, out, card = trained
    k = len(catalog)
    m = card["training"]["dev_metrics"]
    # Held-out synonym queries (never trained on): chance P@1 is ~ 2/200 and recall@10 ~ 10/200.
    assert m["P@1"] > 0.15, m
    assert m["recall@100"] > 0.8, m
    hist = json.load(open(os.path.join(out, "metrics.json")))["history"]
    assert hist[-1]["loss_per_head"] < hist[0]["loss_per_head"] * 0.7
    # Titles as queries: top-1 accuracy over 200 classes.
    spec = FeaturizerSpec.from_card(card["featurizer"])
    net = OnnxNumpyModel(os.path.join(out, "model.onnx"))
    ph = ProductHash(card["B"], card["product_hash"]["seeds"])
    titles = [catalog.text(i) for i in range(k)]
    probs = net.run({"feature_ids": np.array(featurize_padded(titles, spec))})["probabilities"]
    from mach_tools.decode import scores
    acc = float(np.mean(scores(probs, label_buckets(catalog.ids, ph)).argmax(1) == np.arange(k)))
    assert acc > 0.6, acc


def test_bundle_is_valid_and_matches_card(trained):
    _, _, _, out, card = trained
    assert check_bundle(out, numeric=True) == []
    assert set(card["files"]) == {"model.onnx", "labels.txt", "parity.json", "metrics.json", "training-curve.png"}
    m = onnx.load(os.path.join(out, "model.onnx"))
    onnx.checker.check_model(m)
    assert m.opset_import[0].version == 17
    assert [i.name for i in m.graph.input] == ["feature_ids"]
    out_dims = [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
    assert out_dims[1:] == [card["R"], card["B"]]
    in_dims = m.graph.input[0].type.tensor_type.shape.dim
    assert in_dims[0].dim_param and in_dims[1].dim_value == card["featurizer"]["max_features"]
    labels = open(os.path.join(out, "labels.txt"), encoding="utf-8").read().split("\n")
    assert labels[-1] == "" and len(labels) - 1 == card["labels"]["count"]
    assert not any(n.startswith(".tmp-") for n in os.listdir(os.path.dirname(out)))


def _random_model(seed=0, hidden2=0):
    torch.manual_seed(seed)
    m = MachModel(dimension=2048, hidden=16, repetitions=3, buckets=50, hidden2=hidden2)
    with torch.no_grad():
        m.heads.weight.mul_(20)  # sharper distributions, so top buckets are well separated
    return m.eval()


@pytest.mark.parametrize("hidden2", [0, 8])
def test_parity_file_matches_fresh_torch_forward(tmp_path, hidden2):
    model = _random_model(1, hidden2)
    spec = FeaturizerSpec(dimension=2048, max_features=24)
    ph = ProductHash(50, ProductHash.default_seeds(3))
    texts = ["cordless drill", "Café crème", "x", "a b c d e f g h i j k l m n o p q r s t u v w x y z"]
    out = str(tmp_path / "b")
    write_bundle(out, model, "t", ["p1", "p2", "p3"], spec, ph, texts, {})
    parity = json.load(open(os.path.join(out, "parity.json"), encoding="utf-8"))
    assert 3 <= len(parity["cases"]) <= 8 and parity["top"] == 5
    x = torch.tensor(featurize_padded(texts, spec))
    with torch.no_grad():
        fresh = model(x).numpy()
    for case, p in zip(parity["cases"], fresh):
        assert case["text"] in texts
        got = np.take_along_axis(p, np.array(case["top_buckets"]), axis=1)
        np.testing.assert_allclose(got, case["top_probs"], atol=1e-6)
        # Top buckets really are the top ones, in descending order.
        assert (np.diff(got, axis=1) <= 0).all()
        assert np.allclose(np.sort(p, axis=1)[:, ::-1][:, :5], got, atol=1e-7)
    # The ONNX graph (run by the NumPy evaluator) reproduces PyTorch on a batch of any size.
    onnx_out = OnnxNumpyModel(os.path.join(out, "model.onnx")).run({"feature_ids": x.numpy()})["probabilities"]
    assert onnx_out.shape == (4, 3, 50)
    np.testing.assert_allclose(onnx_out, fresh, atol=1e-6)
    assert np.allclose(onnx_out.sum(-1), 1.0, atol=1e-5)


def test_check_bundle_refuses_tampering(tmp_path):
    model = _random_model(2)
    spec = FeaturizerSpec(dimension=2048, max_features=24)
    ph = ProductHash(50, ProductHash.default_seeds(3))
    base = str(tmp_path / "b")
    write_bundle(base, model, "t", ["p1", "p2"], spec, ph, ["drill", "saw", "hammer"], {})

    def variant(name, edit):
        d = str(tmp_path / name)
        shutil.copytree(base, d)
        edit(d)
        return check_bundle(d)

    def edit_card(fn):
        def e(d):
            c = load_card(d)
            fn(c)
            json.dump(c, open(os.path.join(d, "mach.json"), "w"))
        return e

    assert check_bundle(base) == []
    assert any("sha256" in p for p in variant("sha", lambda d: open(os.path.join(d, "labels.txt"), "a").write("p3\n")))
    assert any("format_version" in p for p in variant("fv", edit_card(lambda c: c.update(format_version=3))))
    assert any("encoder" in p for p in variant("fv2", edit_card(lambda c: c.update(format_version=2))))
    assert any("seeds" in p for p in variant("seeds", edit_card(lambda c: c["product_hash"]["seeds"].pop())))
    assert any("buckets" in p for p in variant("bk", edit_card(lambda c: c["product_hash"].update(buckets=51))))
    assert any("featurizer" in p for p in variant("fz", edit_card(lambda c: c["featurizer"].update(hash="md5"))))
    assert any("labels.txt has" in p for p in variant("cnt", edit_card(lambda c: c["labels"].update(count=3))))
    assert any("shape" in p for p in variant("shape", edit_card(lambda c: c["onnx"]["output"].update(shape=[-1, 3, 51]))))
    assert any("named" in p for p in variant("name", edit_card(lambda c: c["onnx"]["input"].update(name="ids"))))
    assert any("missing file" in p for p in variant("miss", lambda d: os.remove(os.path.join(d, "parity.json"))))

    def edit_parity(fn):
        def e(d):
            p = json.load(open(os.path.join(d, "parity.json")))
            fn(p["cases"][0])
            json.dump(p, open(os.path.join(d, "parity.json"), "w"))
            c = load_card(d)
            from mach_tools.bundle import sha256_file
            c["files"]["parity.json"] = sha256_file(os.path.join(d, "parity.json"))
            json.dump(c, open(os.path.join(d, "mach.json"), "w"))
        return e

    def bump_prob(case):
        case["top_probs"][0][0] += 0.01

    def other_first_id(case):
        case["feature_ids"][0] = case["feature_ids"][0] % 2047 + 1  # another id of 1..D-1

    assert variant("par", edit_parity(bump_prob)) == ["parity: ONNX output differs from the trainer's by 1.00e-02 for 'drill'"]
    # the trainer's feature ids against this featurizer's (the plugin refuses the same bundle)
    assert variant("fids", edit_parity(other_first_id)) == ["parity: featurizer ids differ for 'drill'"]


def test_training_is_reproducible(synth_dir, tmp_path):
    catalog = read_catalog(os.path.join(synth_dir, "products.tsv"))
    pairs = read_pairs(os.path.join(synth_dir, "queries.tsv"))
    r = Recipe(**{**TINY, "epochs": 2})
    shas = []
    for i in range(2):
        card = train(catalog, pairs, r, str(tmp_path / f"b{i}"), "t", progress=False, log=lambda *a: None)
        shas.append(card["files"]["model.onnx"])
    assert shas[0] == shas[1]


def test_training_forward_equals_export_forward():
    """The fast training path (distinct rows + EmbeddingBag) computes what the exported graph does."""
    from mach_tools.features import flat_batch, pad_batch
    model = _random_model(3, hidden2=8)
    rng = np.random.default_rng(0)
    rows = [rng.integers(1, 2048, size=rng.integers(0, 12)) for _ in range(6)]
    lengths = np.array([len(r) for r in rows])
    flat = np.concatenate(rows).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    order = np.array([3, 0, 5, 1, 4, 2])
    ids, starts = flat_batch(flat, offsets, order)
    fast, _ = model.train_logits(torch.from_numpy(ids), torch.from_numpy(starts))
    ref = model.logits(torch.from_numpy(pad_batch(flat, offsets, order, width=16)))
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)


def test_staged_bundle_leaves_nothing_when_writing_fails(tmp_path):
    from mach_tools.bundle import staged_bundle
    out = tmp_path / "b"
    with pytest.raises(RuntimeError, match="export failed"):
        with staged_bundle(str(out), force=False) as (_, tmp):
            open(os.path.join(tmp, "model.onnx"), "w").close()
            raise RuntimeError("export failed")
    assert os.listdir(tmp_path) == []
    out.mkdir()
    with pytest.raises(UserError, match="already exists"):
        with staged_bundle(str(out), force=False):
            pass
    assert os.listdir(tmp_path) == ["b"]
