"""Memory-efficient input layers (docs/embeddings.md): mixed-dimension blocks and quotient-remainder."""
import json
import os

import numpy as np
import onnx
import pytest
import torch

from mach_tools import synth
from mach_tools.bundle import check_bundle, sizes, write_bundle
from mach_tools.cli import main
from mach_tools.data import read_catalog, read_pairs
from mach_tools.features import flat_batch, pad_batch
from mach_tools.featurize import FeaturizerSpec, ProductHash, featurize_padded
from mach_tools.model import (MachModel, MixedInput, QRInput, UniformInput, input_bytes, mixed_bytes,
                              mixed_plan, qr_bytes, qr_m_for_budget)
from mach_tools.onnx_numpy import OnnxNumpyModel
from mach_tools.train import Recipe, make_optimizers, train

D, H = 2048, 16


def _counts(seed=0, D=D):
    rng = np.random.default_rng(seed)
    c = rng.zipf(1.4, size=D).clip(max=50000)
    c[rng.integers(0, D, D // 4)] = 0  # unseen ids
    return c


def _model(kind, seed=0):
    torch.manual_seed(seed)
    layer = {"uniform": lambda: UniformInput(D, H),
             "mixed": lambda: MixedInput(mixed_plan(_counts(seed), H, blocks=3, alpha=0.5), H),
             "qr": lambda: QRInput(D, H, 45)}[kind]()
    m = MachModel(D, H, 3, 50, input_layer=layer)
    with torch.no_grad():
        m.heads.weight.mul_(20)  # sharper distributions, so parity's top buckets are well separated
    return m.eval()


# ---------------------------------------------------------------- the mixed layout

def test_mixed_plan_is_a_pure_function_of_the_counts():
    c = _counts(1)
    a, b = mixed_plan(c, H, 4, 0.5), mixed_plan(c.copy(), H, 4, 0.5)
    assert np.array_equal(a["order"], b["order"]) and a["widths"] == b["widths"] and a["sizes"] == b["sizes"]
    # The layout follows frequency, not id: relabelling ids relabels the order and nothing else.
    perm = np.random.default_rng(2).permutation(D)
    c2 = np.empty_like(c)
    c2[perm] = c
    p2 = mixed_plan(c2, H, 4, 0.5)
    assert p2["widths"] == a["widths"] and p2["sizes"] == a["sizes"]
    assert np.array_equal(c2[p2["order"]], c[a["order"]])
    # Ties broken by id, so equal counts give one answer.
    flat = mixed_plan(np.ones(D, dtype=np.int64), H, 4, 0.5)
    assert np.array_equal(flat["order"], np.arange(D))


def test_mixed_plan_blocks_widths_and_budget():
    c = _counts(3)
    p = mixed_plan(c, H, 4, 0.5)
    assert p["sizes"] == [D // 64, D // 16 - D // 64, D // 4 - D // 16, D - D // 4]
    assert p["widths"][0] == H and p["widths"] == sorted(p["widths"], reverse=True)
    ranked = c[p["order"]]
    assert (np.diff(ranked) <= 0).all()  # rank 0 is the most frequent id
    assert mixed_plan(c, H, 4, 0.0)["widths"] == [H] * 4  # alpha 0: equal widths
    assert p["bytes"] == mixed_bytes(p["sizes"], p["widths"], H, D)
    for budget in (20_000, 40_000, 80_000):
        q = mixed_plan(c, H, 4, 0.5, budget_bytes=budget)
        assert q["bytes"] <= budget
        assert q["bytes"] > budget * 0.8  # uses most of it
    with pytest.raises(ValueError, match="below the smallest"):
        mixed_plan(c, H, 4, 0.5, budget_bytes=1000)
    assert mixed_plan(c, H, 1, 0.5)["sizes"] == [D]


def test_mixed_plan_drop_unseen():
    c = _counts(3)
    seen = int((c > 0).sum())
    keep = mixed_plan(c, H, 4, 0.5, budget_bytes=40_000)
    drop = mixed_plan(c, H, 4, 0.5, budget_bytes=40_000, drop_unseen=True)
    assert keep["unseen_rows"] == 0 and drop["unseen_rows"] == D - seen
    assert sum(drop["sizes"]) == seen and drop["sizes"][:3] == keep["sizes"][:3]
    assert (c[drop["order"][:seen]] > 0).all() and (c[drop["order"][seen:]] == 0).all()
    # the unseen ids' bytes go to the seen ids: at the same budget no block is narrower, the last wider
    assert drop["bytes"] <= 40_000 and all(d >= k for d, k in zip(drop["widths"], keep["widths"]))
    assert drop["widths"][-1] > keep["widths"][-1]
    with pytest.raises(ValueError, match="too few"):
        mixed_plan(np.array([0, 5, 0, 0, 0, 0, 0, 0]), H, 4, 0.5, drop_unseen=True)


def _drop_unseen_model(seed=7):
    torch.manual_seed(seed)
    c = _counts(seed)
    m = MachModel(D, H, 3, 50, input_layer=MixedInput(mixed_plan(c, H, 3, 0.5, drop_unseen=True), H))
    with torch.no_grad():
        m.heads.weight.mul_(20)
    return m.eval(), np.flatnonzero(c == 0), np.flatnonzero(c > 0)


def test_drop_unseen_ids_add_nothing():
    model, unseen, seen = _drop_unseen_model()
    layer = model.input_layer
    with torch.no_grad():
        for i in unseen[:20]:
            assert torch.equal(layer.masked_sum(torch.tensor([[int(i)]]), torch.ones(1, 1)), torch.zeros(1, H))
        one_seen = layer.masked_sum(torch.tensor([[int(seen[1])]]), torch.ones(1, 1))
        assert one_seen.abs().sum() > 0


EXPORT_TEXTS = ["cordless drill", "Café crème", "x", "a b c d e f g h i j k l m n o p q r s t u v w x y z"]


def _export(model, tmp_path):
    """Writes a checked bundle of `model` (parity on EXPORT_TEXTS); returns its directory and card."""
    out = str(tmp_path / "b")
    card = write_bundle(out, model, "t", ["p1", "p2", "p3"], FeaturizerSpec(dimension=D, max_features=24),
                        ProductHash(50, ProductHash.default_seeds(3)), EXPORT_TEXTS, {})
    assert check_bundle(out, numeric=True) == []
    return out, card


def test_drop_unseen_export_equals_torch(tmp_path):
    model, unseen, seen = _drop_unseen_model(8)
    out, card = _export(model, tmp_path)
    assert card["input_layer"]["unseen_ids"] == len(unseen)
    # rows mixing seen and unseen ids, and one of unseen ids only
    x = np.zeros((3, 24), dtype=np.int64)
    x[0, :6] = np.concatenate([seen[:3], unseen[:3]])
    x[1, :4] = seen[-4:]
    x[2, :5] = unseen[-5:]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    net = OnnxNumpyModel(os.path.join(out, "model.onnx"))
    np.testing.assert_allclose(net.run({"feature_ids": x})["probabilities"], ref, atol=1e-6)


def test_mixed_rows_come_from_the_right_block():
    m = _model("mixed", 4)
    layer = m.input_layer
    rank_of = layer.rank_of.numpy()
    ids = torch.arange(1, D).view(1, -1)
    with torch.no_grad():
        per_id = torch.stack([layer.masked_sum(ids[:, i:i + 1], torch.ones(1, 1))[0] for i in range(0, D - 1, 97)])
    for row, i in zip(per_id, range(1, D, 97)):
        r = rank_of[i]
        b = max(j for j, s in enumerate(layer.starts) if s <= r)
        emb = layer.tables[b][r - layer.starts[b]]
        want = layer._project(b, emb.unsqueeze(0))[0]
        torch.testing.assert_close(row, want)
    assert input_bytes(layer) == mixed_bytes(layer.sizes, layer.widths, H, D)


# ---------------------------------------------------------------- quotient-remainder

def test_qr_rows_and_budget():
    m = 45
    layer = QRInput(D, H, m)
    assert layer.q.shape == (-(-D // m), H) and layer.r.shape == (m, H)
    ids = torch.tensor([[1, 44, 45, 46, D - 1, 0]])
    mask = torch.tensor([[1.0, 1, 1, 1, 1, 0]])
    with torch.no_grad():
        for k in range(5):
            i = int(ids[0, k])
            one = torch.zeros_like(mask)
            one[0, k] = 1
            torch.testing.assert_close(layer.masked_sum(ids, one)[0], layer.q[i // m] * layer.r[i % m])
    # Every id has its own (quotient, remainder) pair.
    all_ids = torch.arange(D)
    q, r = layer._split(all_ids)
    assert len(set(zip(q.tolist(), r.tolist()))) == D
    assert input_bytes(layer) == qr_bytes(D, H, m)
    mm = qr_m_for_budget(D, H, 40_000)
    assert qr_bytes(D, H, mm) <= 40_000 < qr_bytes(D, H, mm + 1)
    with pytest.raises(ValueError):
        qr_m_for_budget(D, H, 100)
    with pytest.raises(ValueError):
        QRInput(D, H, D)


# ---------------------------------------------------------------- forward passes and export

@pytest.mark.parametrize("kind", ["uniform", "mixed", "qr"])
def test_shapes_and_training_forward_equals_export_forward(kind):
    model = _model(kind, 5)
    rng = np.random.default_rng(0)
    rows = [rng.integers(1, D, size=rng.integers(0, 12)) for _ in range(7)]
    lengths = np.array([len(r) for r in rows])
    flat = np.concatenate(rows).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    order = np.array([3, 0, 6, 5, 1, 4, 2])
    ids, starts = flat_batch(flat, offsets, order)
    fast, updates = model.train_logits(torch.from_numpy(ids), torch.from_numpy(starts))
    padded = torch.from_numpy(pad_batch(flat, offsets, order, width=16))
    assert fast.shape == (7, 3, 50)
    torch.testing.assert_close(fast, model.logits(padded), atol=1e-5, rtol=1e-5)
    assert model(padded).shape == (7, 3, 50)
    # The sparse updates name real rows of real tables, with gradients of their shape.
    fast.sum().backward()
    tables = model.input_layer.sparse_tables()
    assert updates
    for t, touched, sub in updates:
        assert sub.grad.shape == (len(touched), tables[t].shape[1]) and int(touched.max()) < tables[t].shape[0]


@pytest.mark.parametrize("kind", ["mixed", "qr"])
def test_export_through_numpy_evaluator_equals_torch(tmp_path, kind):
    model = _model(kind, 6)
    out, card = _export(model, tmp_path)
    x = torch.tensor(featurize_padded(EXPORT_TEXTS, FeaturizerSpec(dimension=D, max_features=24)))
    with torch.no_grad():
        ref = model(x).numpy()
    net = OnnxNumpyModel(os.path.join(out, "model.onnx"))
    np.testing.assert_allclose(net.run({"feature_ids": x.numpy()})["probabilities"], ref, atol=1e-6)
    # The id -> row mapping travels inside the graph: one int64 input, no other graph input.
    g = onnx.load(os.path.join(out, "model.onnx")).graph
    init = {t.name for t in g.initializer}
    assert [i.name for i in g.input if i.name not in init] == ["feature_ids"]
    assert card["input_layer"]["kind"] == kind and card["input_layer"]["bytes"] == input_bytes(model.input_layer)
    assert card["H"] == H
    s = sizes(out, card)
    assert s["input_layer_bytes"] == card["input_layer"]["bytes"] and s["model_onnx_bytes"] > s["input_layer_bytes"]


def test_numpy_integer_div_truncates_like_onnx():
    from onnx import helper, TensorProto
    node = helper.make_node("Div", ["a", "b"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.INT64, [4]),
                                        helper.make_tensor_value_info("b", TensorProto.INT64, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.INT64, [4])])
    net = OnnxNumpyModel(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    y = net.run({"a": np.array([7, -7, 7, 100], dtype=np.int64), "b": np.array([2, 2, -2, 10], dtype=np.int64)})["y"]
    assert y.dtype == np.int64 and y.tolist() == [3, -3, -3, 10]


# ---------------------------------------------------------------- training and CLI

@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("synth"))
    synth.write(d, n_products=120, seed=3)
    return d


@pytest.mark.parametrize("kind,extra", [("mixed", {"emb_blocks": 3, "emb_budget": 60_000}), ("qr", {"qr_m": 64})])
def test_training_records_the_layer(synth_dir, tmp_path, kind, extra):
    catalog = read_catalog(os.path.join(synth_dir, "products.tsv"))
    pairs = read_pairs(os.path.join(synth_dir, "queries.tsv"))
    r = Recipe(R=2, B=32, H=16, D=D, L=16, epochs=2, batch_size=128, augment_per_product=3,
               input_layer=kind, **extra)
    out = str(tmp_path / "b")
    card = train(catalog, pairs, r, out, "t", progress=False, log=lambda *a: None)
    assert check_bundle(out) == []
    layer = card["input_layer"]
    assert layer["kind"] == kind
    if kind == "mixed":
        assert layer["bytes"] <= 60_000 and len(layer["blocks"]) == 3
    else:
        assert layer["m"] == 64 and layer["bytes"] == qr_bytes(D, 16, 64)
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["input_layer_bytes"] == layer["bytes"] == card["training"]["input_layer_bytes"]
    assert m["model_bytes"] > m["input_layer_bytes"]


@pytest.mark.parametrize("proj_lr", [0.0, 1e-4, -1.0])
def test_projection_learning_rate(proj_lr):
    """--proj-lr: 0 keeps the mixed blocks' projections at their random start while the dense layers
    train; a positive value is their own Adam group's rate; the default (< 0) is --lr / 10."""
    torch.manual_seed(0)
    model = _model("mixed")
    recipe = Recipe(lr=0.01, proj_lr=proj_lr)
    _, opt = make_optimizers(model, recipe)
    projections = list(model.input_layer.projections)
    assert projections, "the test layout needs a projected block"
    before = [p.detach().clone() for p in projections]
    heads = model.heads.weight.detach().clone()
    ids = torch.randint(1, D, (8, 6))
    opt.zero_grad()
    model.logits(ids).logsumexp(-1).sum().backward()
    opt.step()
    assert not torch.equal(heads, model.heads.weight)
    moved = [not torch.equal(b, p) for b, p in zip(before, projections)]
    assert all(moved) if proj_lr != 0 else not any(moved)
    rates = sorted(g["lr"] for g in opt.param_groups)
    assert rates == {0.0: [0.01], 1e-4: [1e-4, 0.01], -1.0: [0.001, 0.01]}[proj_lr]


@pytest.mark.parametrize("proj_norm", ["free", "fixed"])
def test_projection_norms(synth_dir, tmp_path, proj_norm):
    """--proj-norm fixed: after training, every row of every projection in the exported graph has its
    initial expected length sqrt(H / d_i); free (the default) lets them grow at a fast proj lr."""
    catalog = read_catalog(os.path.join(synth_dir, "products.tsv"))
    r = Recipe(R=2, B=32, H=16, D=D, L=16, epochs=2, batch_size=64, augment_per_product=3, input_layer="mixed",
               emb_blocks=3, emb_budget=60_000, proj_lr=0.05, proj_norm=proj_norm)
    out = str(tmp_path / "b")
    train(catalog, None, r, out, "t", progress=False, log=lambda *a: None)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(os.path.join(out, "model.onnx")).graph.initializer}
    projections = [a for n, a in inits.items() if "projections" in n]
    assert projections, "the test layout needs a projected block"
    for p in projections:
        lengths = np.linalg.norm(p, axis=1)
        target = np.sqrt(16 / p.shape[0])
        fixed = np.allclose(lengths, target, rtol=1e-5)
        assert fixed if proj_norm == "fixed" else not fixed, (lengths, target)


def _cli_error(capsys, argv, needle):
    code = main(argv)
    err = capsys.readouterr().err
    lines = [l for l in err.strip().splitlines() if l.startswith("error:")]
    assert code == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err


def _parse_error(capsys, argv, needle):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err.strip().splitlines()[-1], err


def test_bad_input_layer_flags(synth_dir, tmp_path, capsys):
    base = ["train", "--catalog", os.path.join(synth_dir, "products.tsv"), "--out", str(tmp_path / "o"),
            "--R", "2", "--B", "16", "--H", "8", "--D", "512", "--L", "16", "--epochs", "1", "--no-progress"]
    _parse_error(capsys, base + ["--input-layer", "hashed"], "invalid choice")
    _parse_error(capsys, base + ["--input-layer", "mixed", "--emb-alpha", "-1"], "must be a finite number >= 0")
    _parse_error(capsys, base + ["--input-layer", "mixed", "--emb-budget", "lots"], "not a byte count")
    _parse_error(capsys, base + ["--input-layer", "mixed", "--emb-budget", "0"], "must be > 0")
    _parse_error(capsys, base + ["--input-layer", "mixed", "--emb-blocks", "0"], "must be > 0")
    _cli_error(capsys, base + ["--emb-budget", "1M"], "--emb-budget does not apply to --input-layer uniform")
    _cli_error(capsys, base + ["--input-layer", "mixed", "--qr-m", "8"], "--qr-m does not apply to --input-layer mixed")
    _cli_error(capsys, base + ["--input-layer", "qr", "--emb-blocks", "3"], "--emb-blocks does not apply")
    _cli_error(capsys, base + ["--proj-lr", "0"], "--proj-lr does not apply to --input-layer uniform")
    _cli_error(capsys, base + ["--input-layer", "qr", "--emb-drop-unseen"], "--emb-drop-unseen does not apply")
    _cli_error(capsys, base + ["--proj-norm", "fixed"], "--proj-norm does not apply to --input-layer uniform")
    _parse_error(capsys, base + ["--input-layer", "mixed", "--proj-norm", "unit"], "invalid choice")
    _cli_error(capsys, base + ["--input-layer", "qr", "--qr-m", "512"], "--qr-m must be between 2 and D-1")
    _cli_error(capsys, base + ["--input-layer", "qr", "--qr-m", "8", "--emb-budget", "1M"], "not both")
    _cli_error(capsys, base + ["--input-layer", "mixed", "--emb-budget", "100"], "below the smallest mixed layout")
    _cli_error(capsys, base + ["--input-layer", "qr", "--emb-budget", "100"], "below the smallest quotient-remainder")
    assert not os.path.exists(tmp_path / "o")


def test_cli_trains_and_inspects_a_mixed_model(synth_dir, tmp_path, capsys):
    out = str(tmp_path / "m")
    assert main(["train", "--catalog", os.path.join(synth_dir, "products.tsv"), "--out", out, "--R", "2",
                 "--B", "16", "--H", "8", "--D", "512", "--L", "16", "--epochs", "1", "--no-progress",
                 "--input-layer", "mixed", "--emb-budget", "8K", "--emb-alpha", "0.3"]) == 0
    capsys.readouterr()
    assert main(["inspect", out]) == 0
    text = capsys.readouterr().out
    assert "input layer: mixed" in text and "bundle OK" in text
    card = json.load(open(os.path.join(out, "mach.json")))
    assert card["input_layer"]["bytes"] <= 8192 and card["input_layer"]["alpha"] == 0.3


def test_embeddings_table_script(tmp_path):
    """scripts/embeddings_table.py (docs/embeddings.md): bytes from the cards, metrics from the
    evaluate JSON, relative change against the first bundle."""
    import subprocess
    import sys
    from conftest import ROOT
    spec = FeaturizerSpec(dimension=D, max_features=24)
    ph = ProductHash(50, ProductHash.default_seeds(3))
    args = []
    for kind, ndcg in (("uniform", 0.2), ("mixed", 0.21)):
        mj, ej = tmp_path / f"{kind}-metrics.json", tmp_path / f"{kind}-eval.json"
        mj.write_text(json.dumps({"train_seconds": 12.0}))
        ej.write_text(json.dumps({"metrics": {"P@1": 0.1, "recall@100": 0.5, "NDCG@10": ndcg}}))
        out = str(tmp_path / kind)
        write_bundle(out, _model(kind), kind, ["p1", "p2"], spec, ph, ["drill"], {},
                     extra_files={"metrics.json": str(mj)})
        args.append(f"{out}={ej}")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "embeddings_table.py")] + args,
                       capture_output=True, text=True, check=True)
    rows = r.stdout.strip().splitlines()
    assert len(rows) == 4 and rows[2].startswith("| uniform | uniform | 131,072 (1.0x smaller)")
    assert rows[3].startswith("| mixed | mixed, widths ") and "0.2100 (+5.0%)" in rows[3] and "| 12 |" in rows[3]


def test_per_query_diff_script(tmp_path):
    """scripts/per_query_diff.py (docs/embeddings.md): a bundle against itself differs by exactly 0;
    against another it reports a difference and, for a mixed B, one group per rarest block."""
    import subprocess
    import sys
    from conftest import ROOT
    spec = FeaturizerSpec(dimension=D, max_features=24)
    ph = ProductHash(50, ProductHash.default_seeds(3))
    labels = [f"p{i}" for i in range(40)]
    bundles = {}
    for kind in ("uniform", "mixed"):
        bundles[kind] = str(tmp_path / kind)
        write_bundle(bundles[kind], _model(kind), kind, labels, spec, ph, ["drill"], {})
    judgments = tmp_path / "j.tsv"
    rows = [f"query {w} {i}\tp{i}\t3" for i, w in enumerate(["drill", "saw", "cordless drill", "paint", "hose"] * 4)]
    judgments.write_text("query\tproduct_id\trelevance\n" + "\n".join(rows) + "\n")

    def run(a, b):
        r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "per_query_diff.py"), bundles[a],
                            bundles[b], str(judgments)], capture_output=True, text=True, check=True)
        return r.stdout.strip().splitlines()
    same = run("mixed", "mixed")
    assert same[0].startswith("all: NDCG@10 ") and "diff +0.0000 (se 0.0000, 20 queries)" in same[0], same
    other = run("uniform", "mixed")
    assert other[0].startswith("all: NDCG@10 ") and other[1].startswith("all: recall@100 ")
    blocks = [line for line in other if line.startswith("rarest block ")]
    assert blocks and sum(int(line.rsplit(", ", 1)[1].split()[0]) for line in blocks if "NDCG@10" in line) == 20
    assert not [line for line in run("mixed", "uniform") if line.startswith("rarest block")]
