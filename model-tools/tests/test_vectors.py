"""Every case of the shared spec/test-vectors.json (the Java suite checks the same file)."""
import json
import os

import pytest

from conftest import REPO
from mach_tools.features import CachedFeaturizer
from mach_tools.featurize import FeaturizerSpec, HashFamily, ProductHash, card_family, feature_strings, featurize, featurize_padded, murmur3_x86_32

VECTORS = json.load(open(os.path.join(REPO, "spec", "test-vectors.json"), encoding="utf-8"))


@pytest.mark.parametrize("case", VECTORS["murmur3_x86_32"], ids=lambda c: f"{c['utf8'][:12]!r}-{c['seed']}")
def test_murmur3(case):
    assert murmur3_x86_32(case["utf8"].encode("utf-8"), case["seed"]) == case["hash_unsigned"]


def _featurizer_cases():
    for group in VECTORS["featurizer"]:
        for case in group["cases"]:
            yield group["spec"], case


@pytest.mark.parametrize("spec_card,case", list(_featurizer_cases()), ids=lambda x: repr(x.get("text", ""))[:20])
def test_featurizer(spec_card, case):
    spec = FeaturizerSpec.from_card(spec_card)
    assert spec.to_card() == spec_card
    assert feature_strings(case["text"], spec.max_features) == case["features"]
    assert featurize(case["text"], spec) == case["ids"]
    # The cached training featurizer must give the same ids as the reference.
    assert CachedFeaturizer(spec).ids(case["text"]) == case["ids"]
    # The ONNX input row (the plugin checks the same): the vector's ids, then padding_id up to max_features.
    row = case["ids"] + [spec_card["padding_id"]] * (spec_card["max_features"] - len(case["ids"]))
    assert featurize_padded([case["text"]], spec) == [row]


def _hash_cases():
    for group in VECTORS["product_hash"]:
        for case in group["cases"]:
            yield group["spec"], case


@pytest.mark.parametrize("spec_card,case", list(_hash_cases()), ids=lambda x: repr(x.get("product_id", ""))[:20])
def test_product_hash(spec_card, case):
    ph = ProductHash(buckets=spec_card["buckets"], seeds=spec_card["seeds"])
    assert ph.to_card(with_family=False) == spec_card
    assert ph.buckets_of(case["product_id"]) == case["buckets"]
    assert [ph.bucket(case["product_id"], r) for r in range(len(ph.seeds))] == case["buckets"]


def test_default_seeds_match_vectors():
    for group in VECTORS["product_hash"]:
        assert ProductHash.default_seeds(len(group["spec"]["seeds"])) == group["spec"]["seeds"]


FAMILIES = VECTORS["hash_family"]["families"]


@pytest.mark.parametrize("group", FAMILIES, ids=lambda g: g["name"])
def test_hash_family(group):
    fam = HashFamily.parse(group["name"])
    assert (fam.repetitions, fam.buckets, fam.name) == (group["R"], group["B"], group["name"])
    assert fam.seeds() == group["seeds"]
    assert HashFamily.of(group["seeds"], group["B"]) == fam
    assert ProductHash(buckets=group["B"], seeds=group["seeds"]).to_card()["family"] == group["name"]
    assert len(group["cases"]) >= 5 and any(not c["product_id"].isascii() for c in group["cases"])
    ph = fam.product_hash()
    for case in group["cases"]:
        assert fam.codes_of(case["product_id"]) == case["codes"], case["product_id"]
        assert [c - r * fam.buckets for r, c in enumerate(case["codes"])] == ph.buckets_of(case["product_id"])


def test_hash_family_vectors_cover_seed_wraparound():
    assert any(min(g["seeds"]) < g["seeds"][0] for g in FAMILIES)


@pytest.mark.parametrize("name", VECTORS["hash_family"]["bad_names"])
def test_hash_family_bad_names(name):
    with pytest.raises(ValueError):
        HashFamily.parse(name)


def test_seeds_that_are_not_a_family():
    seeds = ProductHash.default_seeds(4)
    assert HashFamily.of(seeds[:3] + [seeds[3] + 1], 1024) is None
    assert "family" not in ProductHash(buckets=1024, seeds=[1, 2, 3]).to_card()
    assert ProductHash(buckets=1 << 20, seeds=ProductHash.default_seeds(32)).family is None  # over 2^24 codes


def test_card_family_checks_a_stated_family():
    card = ProductHash(buckets=4096, seeds=ProductHash.default_seeds(16)).to_card()
    assert card_family(card).name == card["family"]
    assert card_family({k: v for k, v in card.items() if k != "family"}).name == card["family"]
    with pytest.raises(ValueError, match="does not match"):
        card_family({**card, "family": "murmur3_x86_32-r16-b4096-s1"})
    with pytest.raises(ValueError, match="unknown hash family"):
        card_family({**card, "family": "r16"})


def test_cached_featurizer_matches_reference_on_catalog_text():
    from mach_tools import synth
    spec = FeaturizerSpec(dimension=4096, max_features=32)
    cf = CachedFeaturizer(spec)
    products, train, _ = synth.generate(50)
    for text in [t for _, t in products] + [q for q, _ in train[:200]]:
        assert cf.ids(text) == featurize(text, spec)


def test_wordpiece():
    """BERT WordPiece of all-MiniLM-L6-v2 (encoder bundles): the plugin checks the same cases."""
    from conftest import encoder_dir
    from mach_tools.bundle import sha256_file
    from mach_tools.wordpiece import WordPiece
    wp_vectors = VECTORS["wordpiece"]
    wp = WordPiece.from_tokenizer_json(os.path.join(encoder_dir(), "tokenizer.json"), max_tokens=wp_vectors["max_tokens"])
    assert len(wp.vocab) == wp_vectors["vocab_size"]
    import tempfile
    with tempfile.TemporaryDirectory() as td:
        wp.write_vocab(os.path.join(td, "vocab.txt"))
        assert sha256_file(os.path.join(td, "vocab.txt")) == wp_vectors["vocab_sha256"]
        from_file = WordPiece.from_vocab_file(os.path.join(td, "vocab.txt"), max_tokens=wp_vectors["max_tokens"])
    assert len(wp_vectors["cases"]) >= 25
    for case in wp_vectors["cases"]:
        assert wp.tokens(case["text"]) == case["tokens"], case["text"]
        assert wp.encode(case["text"]) == case["ids"], case["text"]
        assert from_file.encode(case["text"]) == case["ids"], case["text"]


@pytest.mark.parametrize("case", VECTORS["aggregation"]["cases"], ids=lambda c: c["name"])
def test_aggregation(case):
    """mean and log_mean decoding (card "aggregation"): the plugin's Decoder and bucket table check the same cases."""
    import numpy as np
    from mach_tools.decode import scores
    probs = np.array(case["probabilities"], dtype=np.float32)[None]
    buckets = np.array(case["product_buckets"])
    for aggregation in ("mean", "log_mean"):
        got = scores(probs, buckets, aggregation)[0]
        np.testing.assert_allclose(got, case[aggregation], rtol=1e-5, atol=1e-7, err_msg=aggregation)
        assert (got >= 0).all()


def test_aggregation_vectors_cover_both_floors():
    import numpy as np
    spans = []
    for case in VECTORS["aggregation"]["cases"]:
        p = np.array(case["probabilities"])
        spans.append(float((p.max(1) / np.maximum(p.min(1), 1e-30)).max()))
    assert max(spans) > 1e7 and any(1 < s < 1e7 for s in spans)
