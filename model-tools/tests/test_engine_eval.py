"""engine-eval pieces that need no node: the queries it sends and the scoring of rankings."""
import json
import math

import pytest

from mach_tools import engine_eval as E
from mach_tools.data import UserError


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
    mm = E.method_query("hybrid", "drill", ["title"], E.MachSettings("m1", "product_id", 50, 0.3, normalization="min_max",
                                                                     lexical_window=20))["mach"]
    assert mm["normalization"] == "min_max" and mm["lexical_window"] == 20 and mm["mach_weight"] == 0.3
    assert "normalization" not in E.method_query("filter", "drill", ["title"], E.MachSettings(
        "m1", "product_id", 50, normalization="min_max"))["mach"], "filter takes no normalization"


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


def _catalog(tmp_path, n=12):
    from mach_tools.data import read_catalog
    path = tmp_path / "products.tsv"
    path.write_text("product_id\ttitle\n" + "".join(f"P{i:02d}\tdrill {i}\n" for i in range(n)))
    return read_catalog(str(path))


def test_the_catalog_is_indexed_in_a_seeded_shuffled_order_and_reused_only_for_that_seed(tmp_path):
    from fake_node import FakeNode
    catalog = _catalog(tmp_path)
    assert sorted(E.index_order(12, 3)) == list(range(12))
    assert E.index_order(12, 3) == E.index_order(12, 3) != E.index_order(12, 4)
    node = FakeNode({}, {})
    E.index_catalog(node, "x", catalog, "product_id", seed=3, progress=False)
    assert node.indices["x"]["docs"] == [catalog.ids[k] for k in E.index_order(12, 3)]
    E.index_catalog(node, "x", catalog, "product_id", seed=3, progress=False)
    assert node.bulks == 1, "same catalog, same seed: the index is reused"
    E.index_catalog(node, "x", catalog, "product_id", seed=4, progress=False)
    assert node.bulks == 2 and node.indices["x"]["docs"] == [catalog.ids[k] for k in E.index_order(12, 4)]
    other = _catalog(tmp_path)
    other.fields[0] = ["another title"]
    E.index_catalog(node, "x", other, "product_id", seed=4, progress=False)
    assert node.bulks == 3, "another catalog of the same size: rebuilt"


def test_several_index_seeds_report_the_mean_and_the_spread(tmp_path, capsys):
    """Every product ties for BM25, one is relevant: its rank is the index order's choice."""
    from fake_node import FakeNode
    from mach_tools.cli import build_parser
    catalog = _catalog(tmp_path)
    (tmp_path / "dev.tsv").write_text("query\tproduct_id\trelevance\ndrill\tP07\t3\n")
    node = FakeNode({"drill": {pid: 1.0 for pid in catalog.ids}}, {"drill": {"P07": 0.5}})
    args = build_parser().parse_args(["engine-eval", "--catalog", str(tmp_path / "products.tsv"), "--judgments",
                                      str(tmp_path / "dev.tsv"), "--model-id", "m", "--methods", "bm25,boost",
                                      "--index-seeds", "0,1,2", "--no-progress"])
    assert E.run(args, catalog, 1.0, 2.5, node=node) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["index_seeds"] == [0, 1, 2] and sorted(node.indices) == ["m-eval-s0", "m-eval-s1", "m-eval-s2"]
    per_seed = []
    for seed in (0, 1, 2):
        rank = [catalog.ids[k] for k in E.index_order(12, seed)].index("P07")
        per_seed.append(1 / math.log2(rank + 2) if rank < 10 else 0.0)
    assert line["methods"]["bm25"]["ndcg@10"] == round(sum(per_seed) / 3, 4)
    assert line["spread"]["bm25"]["ndcg@10"] == [round(min(per_seed), 4), round(max(per_seed), 4)]
    assert min(per_seed) < max(per_seed), "the seeds order the tie differently"
    assert line["methods"]["boost"]["ndcg@10"] == 1.0 and line["spread"]["boost"]["ndcg@10"] == [1.0, 1.0]
    bad = build_parser().parse_args(["engine-eval", "--catalog", "c", "--judgments", "j", "--model-id", "m",
                                     "--index-seeds", "0,0"])
    with pytest.raises(UserError, match="distinct seeds"):
        E.run(bad, catalog, 1.0, 2.5, node=node)


def test_index_side_queries_name_the_bucket_field():
    m = E.MachSettings("m1", "product_id", 200, bucket_field="mach_buckets", scored_buckets=64)
    bare = E.method_query("mach", "drill", ["title"], m)["mach"]
    assert bare == {"model_id": "m1", "query_text": "drill", "bucket_field": "mach_buckets", "scored_buckets": 64,
                    "top_n": 200}
    hybrid = E.method_query("hybrid", "drill", ["title"], E.MachSettings("m1", "product_id", 50, 2.0,
                                                                         bucket_field="b"))["mach"]
    assert hybrid["bucket_field"] == "b" and "product_id_field" not in hybrid and "scored_buckets" not in hybrid
    assert hybrid["combine"] == "hybrid" and hybrid["mach_weight"] == 2.0


def test_index_side_mapping_copies_the_product_id_into_a_bucket_field(tmp_path):
    from fake_node import FakeNode
    catalog = _catalog(tmp_path)
    node = FakeNode({}, {})
    family = "murmur3_x86_32-r16-b4096-s1296122696"
    E.index_catalog(node, "x", catalog, "product_id", seed=0, progress=False)
    assert node.indices["x"]["properties"]["product_id"] == {"type": "keyword"}
    E.index_catalog(node, "x", catalog, "product_id", seed=0, progress=False, bucket_field=E.BucketField("mb", family))
    props = node.indices["x"]["properties"]
    assert node.bulks == 2, "an index without the bucket field is not reused"
    assert props["product_id"] == {"type": "keyword", "copy_to": "mb"}
    assert props["mb"] == {"type": "mach_buckets", "hash_family": family}
    E.index_catalog(node, "x", catalog, "product_id", seed=0, progress=False, bucket_field=E.BucketField("mb", family))
    assert node.bulks == 2, "same catalog, seed and family: reused"
    E.index_catalog(node, "x", catalog, "product_id", seed=0, progress=False,
                    bucket_field=E.BucketField("mb", "murmur3_x86_32-r8-b4096-s1296122696"))
    assert node.bulks == 3, "another family: rebuilt"


def _index_side_args(tmp_path, *extra):
    from mach_tools.cli import build_parser
    (tmp_path / "dev.tsv").write_text("query\tproduct_id\trelevance\ndrill\tP07\t3\n")
    return build_parser().parse_args(["engine-eval", "--catalog", str(tmp_path / "products.tsv"), "--judgments",
                                      str(tmp_path / "dev.tsv"), "--model-id", "m", "--methods", "bm25,mach,boost",
                                      "--no-progress", "--top-n", "1", "--mach-weight", "10"] + list(extra))


def test_index_side_run_takes_the_family_from_the_served_card(tmp_path, capsys):
    """P07 is a low BM25 hit and MACH's second product (MACH's first, P11, no lexical hit): with
    top_n 1 only the index-side boost (every lexical hit scored from its buckets) lifts it to the top."""
    from fake_node import FakeNode
    from mach_tools.featurize import ProductHash
    catalog = _catalog(tmp_path)
    card = {"product_hash": ProductHash(buckets=4096, seeds=ProductHash.default_seeds(16)).to_card()}
    lexical = {"drill": {pid: 2.0 - i / 100 for i, pid in enumerate(catalog.ids)}}
    mach = {"drill": {"P11": 0.9, "P07": 0.5}}
    lexical["drill"]["P07"] = 1.0
    del lexical["drill"]["P11"]
    results = {}
    for side in (False, True):
        node = FakeNode(lexical, mach, cards={"m": card})
        args = _index_side_args(tmp_path, *(["--index-side", "--scored-buckets", "64"] if side else []))
        assert E.run(args, catalog, 1.0, 2.5, node=node) == 0
        results[side] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["methods"]
        mach_queries = [b["query"] for b in node.searches if "mach" in b["query"]]
        if side:
            assert sorted(node.indices) == ["m-eval-buckets-s0"]
            assert node.indices["m-eval-buckets-s0"]["properties"]["mach_buckets"] == {
                "type": "mach_buckets", "hash_family": card["product_hash"]["family"]}
            assert all(q["mach"]["bucket_field"] == "mach_buckets" and q["mach"]["scored_buckets"] == 64
                       and "product_id_field" not in q["mach"] for q in mach_queries)
        else:
            assert sorted(node.indices) == ["m-eval-s0"]
            assert all(q["mach"]["product_id_field"] == "product_id" for q in mach_queries)
    assert results[False]["bm25"] == results[True]["bm25"]
    assert results[False]["boost"]["p@1"] == 0.0 and results[True]["boost"]["p@1"] == 1.0


def test_index_side_refusals(tmp_path):
    from fake_node import FakeNode
    catalog = _catalog(tmp_path)
    no_family = {"product_hash": {"function": "murmur3_x86_32", "encoding": "utf-8", "seeds": [1, 2], "buckets": 64}}
    cases = [
        ({}, ["--index-side"], "deploy it (--bundle) or give --hash-family"),
        ({"m": no_family}, ["--index-side"], "not a hash family's"),
        ({"m": {"product_hash": {**no_family["product_hash"], "family": "murmur3_x86_32-r2-b64-s1"}}}, ["--index-side"],
         "does not match"),
        ({}, ["--index-side", "--hash-family", "murmur3_x86_32-r0-b64-s1"], "--hash-family"),
        ({}, ["--index-side", "--hash-family", "murmur3_x86_32-r2-b64-s1", "--scored-buckets", "0"], "--scored-buckets"),
        ({}, ["--scored-buckets", "16"], "only with --index-side"),
    ]
    for cards, extra, needle in cases:
        with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            E.run(_index_side_args(tmp_path, *extra), catalog, 1.0, 2.5, node=FakeNode({}, {}, cards=cards))


def test_a_node_refusing_the_bucket_field_is_a_clear_error(tmp_path):
    """A query that names a field the mapping lacks (the node answers 400) stops the run with its reason."""
    from fake_node import FakeNode
    catalog = _catalog(tmp_path)
    node = FakeNode({"drill": {"P07": 1.0}}, {"drill": {"P07": 0.5}})
    E.index_catalog(node, "m-eval-buckets-s0", catalog, "product_id", progress=False,
                    bucket_field=E.BucketField("other", "murmur3_x86_32-r2-b64-s1"))
    args = _index_side_args(tmp_path, "--index-side", "--hash-family", "murmur3_x86_32-r2-b64-s1")
    node.indices["m-eval-buckets-s0"]["meta"] = {}  # not reusable: rebuilt with the right field
    assert E.run(args, catalog, 1.0, 2.5, node=node) == 0
    node.indices["m-eval-buckets-s0"]["properties"]["mach_buckets"]["type"] = "keyword"
    with pytest.raises(UserError, match="not a mach_buckets field"):
        E.run(args, catalog, 1.0, 2.5, node=node)
