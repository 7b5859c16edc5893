"""Offline fusion analysis over engine-eval --rankings files."""
import json

import pytest

from mach_tools import engine_eval as E
from mach_tools import fusion as F
from mach_tools.data import UserError


def _rows(tmp_path):
    judged = {"q1": {"a": 3.0, "b": 1.0}, "q2": {"c": 3.0}, "q3": {"z": 1.0}}  # q3: zero ideal DCG
    ranked = {"bm25": [["b", "a"], ["x", "y"], ["z"]], "mach": [["a", "b"], ["c", "x"], ["z"]]}
    scores = {"bm25": [[9.0, 8.0], [5.0, 4.0], [1.0]], "mach": [[0.5, 0.1], [0.2, 0.1], [0.3]]}
    path = tmp_path / "r.jsonl"
    E.write_rankings(str(path), judged, ranked, scores)
    return str(path)


def test_rankings_round_trip_and_oracle(tmp_path):
    rows = F.read_rankings(_rows(tmp_path))
    assert [r["query"] for r in rows] == ["q1", "q2", "q3"]
    assert rows[0]["hits"]["bm25"] == [["b", 9.0], ["a", 8.0]]
    n, table = F.analyse(rows, 1.0, 2.5)
    got = dict(table)
    assert n == 2  # q3 has no gain
    assert got["mach"] == 1.0  # a first for q1, c first for q2
    assert 0 < got["bm25"] < got["mach"]
    oracle = got["oracle switch (better list per query)"]
    assert oracle >= max(got["bm25"], got["mach"])


def test_rrf_and_linear_orders():
    lex = [["a", 10.0], ["b", 5.0]]
    mach = [["c", 0.9], ["b", 0.5]]
    assert F.rrf(lex, mach, 60, 0.0)[:2] == ["a", "b"]  # no MACH weight: the lexical order
    assert F.rrf(lex, mach, 60, 1.0)[0] == "b"  # in both lists
    assert F.linear(lex, mach, 0.0)[:2] == ["a", "b"]
    assert F.linear(lex, mach, 10.0)[0] == "c"


def test_missing_method_is_a_clear_error(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps({"query": "q", "judged": {"a": 3}, "hits": {"bm25": []}}) + "\n")
    with pytest.raises(UserError, match="no \\['mach'\\] hits"):
        F.read_rankings(str(p))
