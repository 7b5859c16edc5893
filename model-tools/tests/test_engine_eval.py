"""engine-eval pieces that need no node: the queries it sends and the scoring of rankings."""
import json

from mach_tools import engine_eval as E


def test_method_queries_name_the_plugin_parameters():
    m = E.MachSettings("m1", "product_id", 200, 2.0)
    bm25 = E.method_query("bm25", "drill", ["title"], m)
    assert bm25 == {"match": {"title": "drill"}}
    multi = E.method_query("bm25", "drill", ["title", "brand"], m)
    assert multi["multi_match"]["fields"] == ["title", "brand"]
    bare = E.method_query("mach", "drill", ["title"], m)
    assert bare == {"mach": {"model_id": "m1", "query_text": "drill", "product_id_field": "product_id", "top_n": 200}}
    for mode in ("filter", "boost", "hybrid"):
        q = E.method_query(mode, "drill", ["title"], E.MachSettings("m1", "product_id", 50, 2.0))["mach"]
        assert q["combine"] == mode and q["lexical"] == bm25 and q["mach_weight"] == 2.0 and q["top_n"] == 50
    assert "mach_weight" not in E.method_query("hybrid", "drill", ["title"], E.MachSettings("m1", "product_id", 50))["mach"]
    assert E.method_query("mach", "drill", ["title"], E.MachSettings("m1", "product_id", 50, decoding="exact"))["mach"]["decoding"] == "exact"
    assert E.method_query("boost", "drill", ["title"], E.MachSettings("m1", "product_id", 50, 1.0, normalize=True))["mach"]["normalize"] is True
    assert "normalize" not in E.method_query("boost", "drill", ["title"], E.MachSettings("m1", "product_id", 50, 1.0))["mach"]


def test_scores_and_summary_line():
    judged = {"q1": {"a": 3.0, "b": 1.0}, "q2": {"c": 3.0}}
    ranked = {"bm25": [["b", "a"], ["x", "c"]], "mach": [["a"], ["c"]]}
    judged_scores = {"bm25": [{"a": 1.0, "b": 2.0}, {"c": 1.0}], "mach": [{"a": 0.9}, {"c": 0.5}]}
    res = E.score_methods(judged, ranked, judged_scores, gain_offset=1.0, relevant_min=2.5)
    assert res["mach"]["P@1"] == 1.0 and res["mach"]["NDCG@10"] == 1.0
    assert res["bm25"]["P@1"] == 0.0 and res["bm25"]["MRR@10"] == 0.5
    assert res["bm25"]["judged_NDCG@10"] < 1.0 and res["mach"]["judged_NDCG@10"] == 1.0
    line = json.loads(E.summary_line(res, 2))
    assert line["queries"] == 2
    assert set(line["methods"]) == {"bm25", "mach"}
    assert {"ndcg@10", "recall@100", "mrr@10", "p@1"} <= set(line["methods"]["bm25"])
