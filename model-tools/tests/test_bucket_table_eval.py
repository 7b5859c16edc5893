"""scripts/bucket_table_eval.py: the truncated table a shard would get, its bytes, and a tiny end-to-end run."""
import importlib.util
import json
import os

import numpy as np

from conftest import REPO

_spec = importlib.util.spec_from_file_location("bucket_table_eval",
                                               os.path.join(REPO, "model-tools", "scripts", "bucket_table_eval.py"))
BT = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(BT)


def _probs(n=3, R=2, B=10, seed=0):
    x = np.random.default_rng(seed).random((n, R, B)).astype(np.float32) ** 4
    return x / x.sum(axis=2, keepdims=True)


def test_truncate_keeps_the_top_s_and_spreads_the_rest_evenly():
    p = _probs()
    t = BT.truncate(p, 3)
    for q in range(3):
        for r in range(2):
            top = np.argsort(-p[q, r])[:3]
            assert np.allclose(t[q, r, top], p[q, r, top])
            rest = np.setdiff1d(np.arange(10), top)
            assert np.allclose(t[q, r, rest], (1 - p[q, r, top].sum()) / 7)
            assert abs(t[q, r].sum() - 1) < 1e-5
    assert BT.truncate(p, 10) is p


def test_quantize8_keeps_the_order_and_is_close_on_a_log_scale():
    p = _probs(B=50)
    q = BT.quantize8(p, 50)
    assert (np.argsort(-q, axis=2, kind="stable")[:, :, 0] == np.argsort(-p, axis=2, kind="stable")[:, :, 0]).all()
    span = np.log(p.max(axis=2)) - np.log(p.min(axis=2))
    assert (np.abs(np.log(q) - np.log(p)).max(axis=2) <= span / 255 / 2 + 1e-5).all()


def test_table_bytes_counts_delta_vints():
    # ids 5, 130, 300 -> deltas 5, 125, 170 -> 1 + 1 + 2 bytes, plus the count's vint (1)
    b = BT.table_bytes([[300, 5, 130]], 1000)
    assert b == {"f32": 5 + 3 * 4 + 4, "q8": 5 + 3 + 8 + 4}
    assert BT.table_bytes([list(range(4))] * 2, 4) == {"f32": 32, "q8": 8 + 16}  # s = B: dense, no ids


def test_a_tiny_run_reports_every_s(tmp_path, capsys):
    fixture = os.path.join(REPO, "plugin", "src", "test", "resources", "fixtures", "tiny", "bundle")
    labels = open(os.path.join(fixture, "labels.txt"), encoding="utf-8").read().split()
    (tmp_path / "dev.tsv").write_text("query\tproduct_id\trelevance\n" + f"drill\t{labels[0]}\t3\nsaw\t{labels[1]}\t2\n")
    bm25 = {"drill": [[labels[2], 3.0], [labels[0], 2.0]], "saw": [[labels[1], 1.0]]}
    (tmp_path / "bm25.json").write_text(json.dumps(bm25))
    out = tmp_path / "r.json"
    assert BT.main(["--bundle", fixture, "--judgments", str(tmp_path / "dev.tsv"), "--preset", "esci",
                    "--bm25", str(tmp_path / "bm25.json"), "--out", str(out)]) == 0
    r = json.load(open(out))
    B = r["B"]
    assert [row["s"] for row in r["rows"]] == [s for s in sorted({min(s, B) for s in BT.S_VALUES} | {B}) for _ in (0, 1)]
    assert r["windows"] == [100] and r["bytes"][-1] == {"s": B, "f32": 4 * r["R"] * B, "q8": r["R"] * B + 8 * r["R"]}
    assert r["bm25"]["NDCG@10"] > 0 and all("fuse100 minmax" in row for row in r["rows"])
