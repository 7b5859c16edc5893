"""CLI end to end, and bad input: exit status 2 with a one-line message, no traceback."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from mach_tools.cli import main

TINY_ARGS = ["--R", "2", "--B", "16", "--H", "8", "--D", "512", "--L", "16", "--epochs", "1",
             "--augment-per-product", "2", "--no-progress"]


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


@pytest.fixture
def files(tmp_path):
    return {
        "catalog": write(tmp_path / "products.tsv", "product_id\ttitle\nA1\tred drill\nB2\tblue saw\nC3\tgreen hammer\n"),
        "pairs": write(tmp_path / "pairs.tsv", "query\tproduct_id\trelevance\ndrill\tA1\t3\nsaw\tB2\t2\n"),
        "dir": str(tmp_path),
    }


def run_main(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def expect_error(capsys, argv, *needles):
    code, err = run_main(capsys, argv)
    assert code == 2, err
    assert "Traceback" not in err
    lines = [l for l in err.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]


def test_end_to_end_train_inspect_evaluate(files, capsys, tmp_path):
    out = str(tmp_path / "bundle")
    assert main(["train", "--catalog", files["catalog"], "--pairs", files["pairs"], "--out", out] + TINY_ARGS) == 0
    capsys.readouterr()
    card = json.load(open(os.path.join(out, "mach.json")))
    family = card["product_hash"]["family"]  # the trainer names the family of its default seeds
    assert family == f"murmur3_x86_32-r{card['R']}-b{card['B']}-s1296122696"
    assert main(["inspect", out]) == 0
    shown = capsys.readouterr().out
    assert "bundle OK" in shown and f'"family": "{family}"' in shown
    res = str(tmp_path / "eval.json")
    assert main(["evaluate", out, "--judgments", files["pairs"], "--out", res]) == 0
    table = capsys.readouterr().out
    assert "NDCG@10" in table and "recall@100" in table
    doc = json.load(open(res))
    assert set(["P@1", "P@5", "recall@100", "NDCG@10", "MRR@10"]) <= set(doc["metrics"])
    # An existing bundle is not overwritten without --force.
    expect_error(capsys, ["train", "--catalog", files["catalog"], "--out", out] + TINY_ARGS, "already exists")


def test_ndjson_catalog(tmp_path, capsys):
    cat = write(tmp_path / "p.ndjson", '{"asin": "X1", "title": "lamp", "brand": "acme", "bullet_points": ["a", "b"]}\n'
                                       '{"asin": "X2", "title": "sofa", "brand": null}\n')
    out = str(tmp_path / "b")
    assert main(["train", "--catalog", cat, "--id-field", "asin", "--text-fields", "title,brand,bullet_points",
                 "--out", out] + TINY_ARGS) == 0
    assert open(os.path.join(out, "labels.txt")).read() == "X1\nX2\n"


def test_missing_column(files, capsys, tmp_path):
    cat = write(tmp_path / "c.tsv", "id\ttitle\nA\tx\n")
    expect_error(capsys, ["train", "--catalog", cat, "--out", str(tmp_path / "o")] + TINY_ARGS,
                 "missing column 'product_id'", "id, title")
    pairs = write(tmp_path / "q.tsv", "q\tproduct_id\nx\tA1\n")
    expect_error(capsys, ["train", "--catalog", files["catalog"], "--pairs", pairs, "--out", str(tmp_path / "o")]
                 + TINY_ARGS, "missing column(s) query")


def test_empty_catalog(capsys, tmp_path):
    cat = write(tmp_path / "c.tsv", "product_id\ttitle\n")
    expect_error(capsys, ["train", "--catalog", cat, "--out", str(tmp_path / "o")] + TINY_ARGS, "empty catalog")
    empty = write(tmp_path / "e.tsv", "")
    expect_error(capsys, ["train", "--catalog", empty, "--out", str(tmp_path / "o")] + TINY_ARGS, "empty file")


def test_unknown_products_in_pairs(files, capsys, tmp_path):
    pairs = write(tmp_path / "q.tsv", "query\tproduct_id\nx\tA1\ny\tZZ9\nz\tYY8\nw\tZZ9\n")
    out = str(tmp_path / "o")
    expect_error(capsys, ["train", "--catalog", files["catalog"], "--pairs", pairs, "--out", out] + TINY_ARGS,
                 "3 of 4 rows", "2 distinct", "YY8, ZZ9", "--skip-unknown")
    assert not os.path.exists(out)
    assert main(["train", "--catalog", files["catalog"], "--pairs", pairs, "--out", out, "--skip-unknown"] + TINY_ARGS) == 0


def test_unreadable_files(capsys, tmp_path):
    expect_error(capsys, ["train", "--catalog", str(tmp_path / "nope.tsv"), "--out", str(tmp_path / "o")] + TINY_ARGS,
                 "file not found")
    expect_error(capsys, ["train", "--catalog", str(tmp_path), "--out", str(tmp_path / "o")] + TINY_ARGS, "directory")
    bad = tmp_path / "latin1.tsv"
    bad.write_bytes(b"product_id\ttitle\nA\tcaf\xe9\n")
    expect_error(capsys, ["train", "--catalog", str(bad), "--out", str(tmp_path / "o")] + TINY_ARGS, "not UTF-8")
    expect_error(capsys, ["inspect", str(tmp_path / "nobundle")], "not a bundle")
    expect_error(capsys, ["evaluate", str(tmp_path), "--judgments", "x.tsv"], "no mach.json")


def test_bad_args_exit_2(files, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["train", "--catalog", files["catalog"], "--out", str(tmp_path / "o"), "--R", "0"])
    assert e.value.code == 2
    assert "must be > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "--catalog", files["catalog"], "--out", str(tmp_path / "o"), "--B", "many"])
    assert e.value.code == 2


def test_duplicate_ids_and_bad_relevance(capsys, tmp_path, files):
    cat = write(tmp_path / "d.tsv", "product_id\ttitle\nA\tx\nA\ty\n")
    expect_error(capsys, ["train", "--catalog", cat, "--out", str(tmp_path / "o")] + TINY_ARGS, "duplicate product id")
    pairs = write(tmp_path / "q.tsv", "query\tproduct_id\trelevance\nx\tA1\thigh\n")
    expect_error(capsys, ["train", "--catalog", files["catalog"], "--pairs", pairs, "--out", str(tmp_path / "o")]
                 + TINY_ARGS, "not a number")


def test_corrupt_bundle_is_refused(files, capsys, tmp_path):
    out = str(tmp_path / "bundle")
    assert main(["train", "--catalog", files["catalog"], "--out", out] + TINY_ARGS) == 0
    with open(os.path.join(out, "model.onnx"), "ab") as f:
        f.write(b"x")
    capsys.readouterr()
    expect_error(capsys, ["inspect", out], "1 problem")
    expect_error(capsys, ["evaluate", out, "--judgments", files["pairs"]], "sha256 mismatch for model.onnx")


def test_real_entry_point_exit_code(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mach_tools", "train", "--catalog", str(tmp_path / "missing.tsv"),
                        "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.tsv'}: file not found"]
