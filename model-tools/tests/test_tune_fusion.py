"""tune-fusion against a fake node (tests/fake_node.py): the grid it sends, the choice, the card it writes."""
import json
import shutil

import pytest

from fake_node import FakeNode
from mach_tools import tune
from mach_tools.bundle import check_bundle, check_query_defaults, load_card, write_query_defaults
from mach_tools.cli import _read_catalog, build_parser
from mach_tools.data import UserError
from conftest import REPO

FIXTURE = f"{REPO}/plugin/src/test/resources/fixtures/tiny/bundle"

# q1: BM25 ranks P1 over the relevant P2, MACH is sure of P2; q2: BM25 ranks P5 far above the relevant
# P6 (50 vs 49) and MACH only slightly prefers P6: raw weights cannot lift P6, min-max w 0.8 can.
LEXICAL = {"q one": {"P1": 5.0, "P2": 4.0, "P3": 1.0}, "q two": {"P5": 50.0, "P6": 49.0, "P3": 48.5}}
MACH = {"q one": {"P2": 0.2, "P4": 0.1, "P1": 0.01}, "q two": {"P6": 0.05, "P4": 0.04, "P5": 0.0}}


@pytest.fixture()
def data(tmp_path):
    (tmp_path / "products.tsv").write_text("product_id\ttitle\n" + "".join(f"P{i}\tproduct {i}\n" for i in range(1, 7)))
    (tmp_path / "dev.tsv").write_text("query\tproduct_id\trelevance\nq one\tP2\t3\nq one\tP1\t1\nq two\tP6\t3\n")
    bundle = tmp_path / "bundle"
    shutil.copytree(FIXTURE, bundle)
    return tmp_path, bundle


def _run(tmp_path, bundle, node, *extra):
    args = build_parser().parse_args(["tune-fusion", "--catalog", str(tmp_path / "products.tsv"), "--judgments",
                                      str(tmp_path / "dev.tsv"), "--bundle", str(bundle), "--model-id", "m1",
                                      "--preset", "homedepot", "--top-n", "10", "--none-weights", "1,10",
                                      "--min-max-weights", "0.3,0.8", "--no-progress", *extra])
    return tune.run(args, _read_catalog(args), 1.0, 2.5, node=node)


def test_picks_the_best_cell_and_writes_it_into_the_card(data, capsys):
    tmp_path, bundle = data
    card = load_card(str(bundle))
    card["query_defaults"] = {"decoding": "exact", "normalization": "min_max", "mach_weight": 0.1, "lexical_window": 3}
    (bundle / "mach.json").write_text(json.dumps(card))
    node = FakeNode(LEXICAL, MACH, {"m1": load_card(str(bundle))})
    assert _run(tmp_path, bundle, node) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ndcg@10"]["boost none w=10"] < 1.0 and out["ndcg@10"]["boost min_max w=0.8"] == 1.0
    # hybrid min_max w=0.8 ties with it: boost is the simpler one
    assert out["ndcg@10"]["hybrid min_max w=0.8"] == 1.0
    want = {"decoding": "exact", "combine": "boost", "normalization": "min_max", "mach_weight": 0.8, "top_n": 10}
    assert out["best"] == want
    assert load_card(str(bundle))["query_defaults"] == want  # the stale lexical_window is gone, decoding kept
    assert check_bundle(str(bundle)) == []
    # every cell names what it measures, so the card's old defaults did not leak into the grid
    cells = [b["query"]["mach"] for b in node.searches if "mach" in b["query"]]
    assert len(cells) == 8 * 2 and all(c["top_n"] == 10 and "normalization" in c and "mach_weight" in c for c in cells)
    assert all(c["lexical_window"] == 10 for c in cells if c["normalization"] == "min_max")
    # tie-fair: indexed in the seed's shuffled order
    assert list(node.indices) == ["m1-eval-s0"]


def test_ties_go_to_the_simpler_cell():
    cells = tune.grid([1, 10], [0.3, 0.8])
    assert len(cells) == 8
    flat = {c.name: 0.5 for c in cells}
    assert tune.best_cell(cells, flat).name == "boost none w=1"
    nearly = dict(flat, **{"hybrid min_max w=0.3": 0.50004, "boost min_max w=0.8": 0.50004})
    assert tune.best_cell(cells, nearly).name == "boost none w=1"  # below the printed precision: a tie
    better = dict(flat, **{"hybrid min_max w=0.3": 0.5002})
    assert tune.best_cell(cells, better).name == "hybrid min_max w=0.3"


def test_dry_run_leaves_the_card_and_a_foreign_model_is_refused(data, capsys):
    tmp_path, bundle = data
    before = (bundle / "mach.json").read_text()
    assert _run(tmp_path, bundle, FakeNode(LEXICAL, MACH, {"m1": load_card(str(bundle))}), "--dry-run") == 0
    assert (bundle / "mach.json").read_text() == before
    other = dict(load_card(str(bundle)), files={"model.onnx": "0" * 64})
    with pytest.raises(UserError, match="is not the bundle"):
        _run(tmp_path, bundle, FakeNode(LEXICAL, MACH, {"m1": other}))
    with pytest.raises(UserError, match="is not served by the node"):
        _run(tmp_path, bundle, FakeNode(LEXICAL, MACH, {}))
    with pytest.raises(UserError, match="--min-max-weights"):
        _run(tmp_path, bundle, FakeNode(LEXICAL, MACH, {"m1": load_card(str(bundle))}), "--min-max-weights", "0.5,2")
    with pytest.raises(UserError, match="--none-weights"):
        _run(tmp_path, bundle, FakeNode(LEXICAL, MACH, {"m1": load_card(str(bundle))}), "--none-weights", "0")


def test_query_defaults_are_checked_like_the_plugin_checks_a_query(data):
    _, bundle = data
    assert check_query_defaults({"combine": "hybrid", "normalization": "min_max", "mach_weight": 0.3, "top_n": 200}) == []
    for bad, says in [({"mach_weight": "high"}, "bad mach_weight"), ({"top_n": 0}, "bad top_n"), ({"top_n": True}, "bad top_n"),
                      ({"model_id": "x"}, "unknown parameter"), ({"combine": "filter", "normalization": "min_max"}, "not filter"),
                      ({"normalization": "min_max", "mach_weight": 3}, "between 0 and 1"), ({"mach_weight": 0}, "> 0"),
                      ({"lexical_window": 10}, "only with normalization min_max"), ([1], "JSON object")]:
        problems = check_query_defaults(bad)
        assert problems and says in " ".join(problems), (bad, problems)
    before = (bundle / "mach.json").read_text()
    with pytest.raises(UserError, match="bad mach_weight"):
        write_query_defaults(str(bundle), {"mach_weight": "high"})
    assert (bundle / "mach.json").read_text() == before
    card = load_card(str(bundle))
    card["query_defaults"] = {"normalization": "zscore"}
    (bundle / "mach.json").write_text(json.dumps(card))
    assert any("bad normalization" in p for p in check_bundle(str(bundle), numeric=False))


def test_index_side_tunes_bucket_field_queries_into_index_side(data, capsys):
    tmp_path, bundle = data
    card = load_card(str(bundle))
    top = {"combine": "hybrid", "normalization": "none", "mach_weight": 10.0, "top_n": 200, "score": "mean"}
    card["query_defaults"] = dict(top, index_side={"mach_weight": 5, "buckets_per_repetition": 20})
    (bundle / "mach.json").write_text(json.dumps(card))
    node = FakeNode(LEXICAL, MACH, {"m1": load_card(str(bundle))})
    args = build_parser().parse_args(["tune-fusion", "--catalog", str(tmp_path / "products.tsv"), "--judgments",
                                      str(tmp_path / "dev.tsv"), "--bundle", str(bundle), "--model-id", "m1",
                                      "--preset", "homedepot", "--top-n", "10", "--min-max-weights", "0.3,0.8",
                                      "--index-side", "--scored-buckets", "64", "--no-progress"])
    assert tune.run(args, _read_catalog(args), 1.0, 2.5, node=node) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the index-side raw grid by default; every lexical hit gets its MACH score, so w 1000 already lifts P6
    assert "boost none w=30000" in out["ndcg@10"] and "boost none w=1" not in out["ndcg@10"]
    assert out["ndcg@10"]["boost none w=1000"] == 1.0
    want = dict(top, index_side={"buckets_per_repetition": 20, "combine": "boost", "normalization": "none",
                                 "mach_weight": 1000, "scored_buckets": 64})
    assert out["best"] == want
    assert load_card(str(bundle))["query_defaults"] == want  # the top level as it was
    assert check_bundle(str(bundle)) == []
    cells = [b["query"]["mach"] for b in node.searches if "mach" in b["query"]]
    assert cells and all(c["bucket_field"] == "mach_buckets" and c["scored_buckets"] == 64
                         and "product_id_field" not in c for c in cells)
    assert list(node.indices) == ["m1-eval-buckets-s0"]
    assert node.indices["m1-eval-buckets-s0"]["properties"]["mach_buckets"]["type"] == "mach_buckets"
    # without --index-side its flags are refused
    with pytest.raises(UserError, match="only with --index-side"):
        _run(tmp_path, bundle, node, "--scored-buckets", "64")


def test_index_side_defaults_are_checked(data):
    ok = {"top_n": 200, "index_side": {"combine": "hybrid", "mach_weight": 10000, "scored_buckets": 256, "rest_buckets": "quantized"}}
    assert check_query_defaults(ok) == []
    for bad, says in [({"index_side": {"top_n": 10}}, "query_defaults.index_side: unknown parameter 'top_n'"),
                      ({"index_side": {"decoding": "exact"}}, "query_defaults.index_side: unknown parameter 'decoding'"),
                      ({"index_side": {"mach_weight": "high"}}, "query_defaults.index_side: bad mach_weight"),
                      ({"index_side": {"normalization": "min_max", "mach_weight": 10000}}, "between 0 and 1"),
                      ({"index_side": {"index_side": {}}}, "unknown parameter 'index_side'"),
                      ({"index_side": None}, "query_defaults.index_side must be a JSON object, got null"),
                      ({"index_side": [1]}, "query_defaults.index_side must be a JSON object")]:
        problems = check_query_defaults(bad)
        assert problems and says in " ".join(problems), (bad, problems)
