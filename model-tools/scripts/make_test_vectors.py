"""Writes spec/test-vectors.json from the Python featurizer, product hash and WordPiece tokenizer.

The file is checked by both test suites (model-tools/tests and the plugin's Java tests); regenerate
it only together with a featurizer/hash/tokenizer format change. The WordPiece cases need the
all-MiniLM-L6-v2 vocabulary that the Maven build unpacks (plugin/target/encoders):
    ./mvnw -q -pl plugin process-test-resources && /usr/bin/python3 model-tools/scripts/make_test_vectors.py
"""
import json
import math
import os
import pathlib
import random
import struct
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from mach_tools.featurize import FeaturizerSpec, HashFamily, ProductHash, feature_strings, featurize, murmur3_x86_32  # noqa: E402
from mach_tools.encoder import DEFAULT_DIR  # noqa: E402
from mach_tools.bundle import sha256_file  # noqa: E402
from mach_tools.wordpiece import WordPiece  # noqa: E402

TEXTS = [
    "cordless drill",
    "Cordless Drill 18V, ½-inch — Ｆｕｌｌ WIDTH",
    "",
    "   ...!!!   ",
    "a",
    "Café crème brûlée",
    "STRASSE straße ΟΔΟΣ ΣΑΣ",
    "İstanbul Ǆemal ﬁre",
    "水龍頭 faucet 2x4 ①②",
    "emoji 🔨 hammer🔧wrench",
    "tab\tnewline\nseparated_words and-dashes",
    "Simpson Strong-Tie 12-Gauge Galvanized Steel Hurricane Tie H2.5A for 2x rafters to top plates "
    "with extra words to make this title long enough to be truncated by the max features limit "
    "of the featurizer: twelve thirteen fourteen fifteen sixteen seventeen",
    "repeat repeat repeat words words",
]
PRODUCT_IDS = ["100001", "206650", "B07XJ8C8F5", "B00-ÄÖÜ", "", "p/with spaces", "製品-42"]
# Beyond TEXTS: what BERT's normalizer and pre-tokenizer treat specially.
WORDPIECE_TEXTS = TEXTS + [
    "DeWalt 20V MAX* XR Brushless 1/2 in. Drill/Driver (Tool-Only) DCD791B",
    "crimson couch", "unbelievablyunpronounceable", "a" * 101, "x" * 100,
    "Ａｃｃｅｎｔｓ: àéîõü ÀÉÎÕÜ Ñandú naïve résumé", "control\x00\x07chars\u200b\ufeffzero width\ufffd",
    "non\u00a0breaking\u2003em\u3000ideographic space\u2028line", "日本語のテキストと한국어 텍스트",
    "quotes “curly” ‘single’ «guillemets» — dashes – and … ellipsis", "$12.99 50% off #1 @home ~tilde^caret`",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "Ⅻ ① ² ¼ ﬀ ﬁ ﬂ", "🔨🔧🪛 tools", "mixed123numbers456and789letters",
    "word " * 200,
    "a\U0002B820b c\U0002B920d",  # HF spaces CJK extension E from U+2B920 (Google's BERT: U+2B820)
]
# Hash families (index-side MACH): the default seeds at two sizes, a tiny one, and one whose seeds wrap past 2^32.
FAMILIES = ["murmur3_x86_32-r16-b4096-s1296122696", "murmur3_x86_32-r4-b1024-s1296122696", "murmur3_x86_32-r3-b7-s0",
            "murmur3_x86_32-r5-b20000-s4294967290"]
# Names both readers must refuse: bad R, B, seed, R x B, function, shape, non-ASCII digits.
BAD_FAMILY_NAMES = ["murmur3_x86_32-r0-b4096-s1", "murmur3_x86_32-r257-b16-s1", "murmur3_x86_32-r16-b1-s1",
                    "murmur3_x86_32-r16-b4096-s4294967296", "murmur3_x86_32-r256-b65537-s0",
                    "murmur3_x64_128-r16-b4096-s1", "murmur3_x86_32-r16-b4096", "murmur3_x86_32-r16-b4096-s-1",
                    "murmur3_x86_32-r1000-b4096-s1", "murmur3_x86_32-r١٦-b4096-s1", " murmur3_x86_32-r16-b4096-s1", ""]
HASH_INPUTS = ["", "a", "ab", "abc", "abcd", "hello", "The quick brown fox jumps over the lazy dog", "½ ß 🔨"]



def _f32(x: float) -> float:
    """x rounded to float32 (the network's output type), so both readers start from the same values."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _aggregation_case(name: str, probs: list, product_buckets: list) -> dict:
    """The reference definition (spec/bundle-format.md, aggregation), in float64 from float32 inputs."""
    probs = [[_f32(p) for p in row] for row in probs]
    R = len(probs)
    floors = [max(max(min(row), 0.0), max(row) * 1e-7) for row in probs]

    def log_score(p: float, f: float) -> float:
        return math.log(max(p, f) / f) if f > 0 else 0.0

    mean = [sum(probs[r][bs[r]] for r in range(R)) / R for bs in product_buckets]
    log_mean = [sum(log_score(probs[r][bs[r]], floors[r]) for r in range(R)) / R for bs in product_buckets]
    return {"name": name, "R": R, "B": len(probs[0]), "probabilities": probs, "product_buckets": product_buckets,
            "floors": floors, "mean": mean, "log_mean": log_mean}


def aggregation_cases() -> list:
    rng = random.Random(16)
    R, B, K = 3, 16, 12
    soft = []
    for _ in range(R):
        logits = [rng.gauss(0, 3) for _ in range(B)]
        z = sum(math.exp(v) for v in logits)
        soft.append([math.exp(v) / z for v in logits])
    return [
        # by hand: floors 0.001 (each repetition's smallest); the mean ranks k0 k3 k1 k2, the log-mean k1 k2 k0 k3
        _aggregation_case("by_hand", [[0.9, 0.3, 0.001, 0.05], [0.3, 0.001, 0.6, 0.099]],
                          [[0, 1], [1, 0], [3, 3], [2, 2]]),
        # a probability more than 7 decades below the largest, and a 0: the floor is largest * 1e-7
        _aggregation_case("seven_decades", [[1.0, 1e-12, 0.5, 0.0], [0.25, 0.25, 0.25, 0.25]],
                          [[0, 0], [1, 1], [2, 2], [3, 3], [2, 0]]),
        # softmax of N(0, 3) logits
        _aggregation_case("softmax", soft, [[rng.randrange(B) for _ in range(R)] for _ in range(K)]),
    ]


def main() -> None:
    specs = [FeaturizerSpec(), FeaturizerSpec(dimension=1000, max_features=16, seed=7)]
    out = {
        "about": "Featurizer and product-hash test vectors (spec/bundle-format.md). Generated by "
                 "model-tools/scripts/make_test_vectors.py; checked by the Python and Java test suites.",
        "murmur3_x86_32": [
            {"utf8": s, "seed": seed, "hash_unsigned": murmur3_x86_32(s.encode("utf-8"), seed)}
            for s in HASH_INPUTS for seed in (0, 1, 0x9747B28C)
        ],
        "featurizer": [
            {"spec": spec.to_card(), "cases": [
                {"text": t, "features": feature_strings(t, spec.max_features), "ids": featurize(t, spec)}
                for t in TEXTS]}
            for spec in specs
        ],
        "product_hash": [],
    }
    for r, b in ((4, 1024), (16, 4096), (3, 7)):
        ph = ProductHash(buckets=b, seeds=ProductHash.default_seeds(r))
        out["product_hash"].append({"spec": ph.to_card(with_family=False), "cases": [
            {"product_id": p, "buckets": ph.buckets_of(p)} for p in PRODUCT_IDS]})
    out["hash_family"] = {
        "about": "spec/bundle-format.md \"Hash families\": name -> R, B, seeds ((s + 7919 r) mod 2^32) and each "
                 "product's R index-time codes r * B + b; bad_names must be refused",
        "families": [],
        "bad_names": BAD_FAMILY_NAMES,
    }
    for name in FAMILIES:
        fam = HashFamily.parse(name)
        assert fam.name == name
        out["hash_family"]["families"].append({
            "name": name, "R": fam.repetitions, "B": fam.buckets, "seeds": fam.seeds(),
            "cases": [{"product_id": p, "codes": fam.codes_of(p)} for p in PRODUCT_IDS]})
    for bad in BAD_FAMILY_NAMES:
        try:
            HashFamily.parse(bad)
            raise AssertionError(f"{bad!r} parsed")
        except ValueError:
            pass
    vocab_json = pathlib.Path(DEFAULT_DIR) / "tokenizer.json"
    wp = WordPiece.from_tokenizer_json(str(vocab_json))
    with tempfile.TemporaryDirectory() as td:
        wp.write_vocab(os.path.join(td, "vocab.txt"))
        vocab_sha = sha256_file(os.path.join(td, "vocab.txt"))
    out["wordpiece"] = {
        "about": "all-MiniLM-L6-v2's BERT WordPiece (bundle format 2): vocab.txt as a bundle stores it, "
                 "written from the encoder's tokenizer.json",
        "vocab_sha256": vocab_sha, "vocab_size": len(wp.vocab), "max_tokens": wp.max_tokens,
        "cases": [{"text": t, "tokens": wp.tokens(t), "ids": wp.encode(t)} for t in WORDPIECE_TEXTS],
    }
    out["aggregation"] = {
        "about": "spec/bundle-format.md, card field aggregation: per case the [R][B] probabilities (float32 values), each "
                 "product's R buckets, each repetition's log_mean floor f_r = max(min_b P, max_b P * 1e-7), and each "
                 "product's mean and log_mean score (float64 reference; readers agree within 1e-5)",
        "cases": aggregation_cases(),
    }
    path = pathlib.Path(__file__).resolve().parents[2] / "spec" / "test-vectors.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
