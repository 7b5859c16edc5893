import math

from mach_tools import metrics as M


def test_perfect_and_empty_rankings():
    judged = {"a": 3, "b": 2, "c": 1}
    perfect = M.query_metrics(["a", "b", "c", "x"], judged, gain_offset=1, relevant_min=2.5)
    assert perfect["NDCG@10"] == 1.0 and perfect["P@1"] == 1.0 and perfect["MRR@10"] == 1.0
    assert perfect["recall@100"] == 1.0 and perfect["P@5"] == 0.2
    miss = M.query_metrics(["x", "y"], judged, gain_offset=1, relevant_min=2.5)
    assert miss["NDCG@10"] == 0.0 and miss["P@1"] == 0.0 and miss["MRR@10"] == 0.0


def test_linear_gains_and_offset():
    # HD convention: gain = rel - 1, so "c" (rel 1) gains nothing.
    m = M.query_metrics(["b", "a"], {"a": 3, "b": 2, "c": 1}, gain_offset=1, relevant_min=2.5)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert math.isclose(m["NDCG@10"], (1 / math.log2(2) + 2 / math.log2(3)) / ideal)
    assert m["MRR@10"] == 0.5 and m["P@1"] == 0.0


def test_queries_without_relevant_or_gain_are_not_averaged():
    only_irrelevant = M.query_metrics(["a"], {"a": 1}, gain_offset=1, relevant_min=2.5)
    assert only_irrelevant == {}
    agg = M.aggregate([only_irrelevant, {"NDCG@10": 0.5, "P@1": 1.0, "P@5": 0.2, "recall@100": 1.0, "MRR@10": 1.0}])
    assert agg["NDCG@10"] == 0.5 and agg["queries"] == 2 and agg["queries_with_relevant"] == 1


def test_judged_view_reranks_judged_products():
    m = M.query_metrics(["x"], {"a": 3, "b": 1}, 1, 2.5, judged_scores={"a": 0.9, "b": 0.1})
    assert m["judged_NDCG@10"] == 1.0 and m["NDCG@10"] == 0.0


def test_judged_view_needs_two_grades():
    # one grade (only relevant products judged): every order would score 1, so the query does not count
    m = M.query_metrics(["x"], {"a": 1, "b": 1}, 0, 1, judged_scores={"a": 0.1, "b": 0.9})
    assert "judged_NDCG@10" not in m and m["NDCG@10"] == 0.0
    assert "judged_NDCG@10" not in M.format_table({"mach": M.aggregate([m])})


def test_table_formats():
    t = M.format_table({"m": {"P@1": 0.5, "NDCG@10": 0.25}})
    assert "0.5000" in t and "0.2500" in t
