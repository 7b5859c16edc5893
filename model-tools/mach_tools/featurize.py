"""Query featurizer and product hash: the Python half of the contract in spec/bundle-format.md.

The Java plugin (plugin/.../featurize) implements the same functions; both are checked against
spec/test-vectors.json, so any change here is a format change (bump the card's format_version).
"""
from __future__ import annotations

import struct
import unicodedata
from dataclasses import dataclass, field
from typing import Iterator, List, Sequence

_MASK32 = 0xFFFFFFFF
_C1 = 0xCC9E2D51
_C2 = 0x1B873593


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK32


def murmur3_x86_32(data: bytes, seed: int) -> int:
    """MurmurHash3 x86 32-bit, unsigned result (same as Lucene's StringHelper.murmurhash3_x86_32)."""
    h = seed & _MASK32
    n_blocks = len(data) // 4
    for (k,) in struct.iter_unpack("<I", data[: n_blocks * 4]):
        k = (k * _C1) & _MASK32
        k = _rotl32(k, 15)
        k = (k * _C2) & _MASK32
        h ^= k
        h = _rotl32(h, 13)
        h = (h * 5 + 0xE6546B64) & _MASK32
    tail = data[n_blocks * 4:]
    k = 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if len(tail) >= 1:
        k ^= tail[0]
        k = (k * _C1) & _MASK32
        k = _rotl32(k, 15)
        k = (k * _C2) & _MASK32
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK32
    h ^= h >> 16
    return h


def normalize(text: str) -> str:
    """NFKC, then full lower-casing (Python str.lower == Java toLowerCase(Locale.ROOT))."""
    return unicodedata.normalize("NFKC", text).lower()


def _is_token_char(ch: str) -> bool:
    # Unicode general categories L* (letters) and N* (numbers).
    return unicodedata.category(ch)[0] in "LN"


def tokenize(normalized: str) -> List[str]:
    """Maximal runs of letter/number code points."""
    tokens, current = [], []
    for ch in normalized:
        if _is_token_char(ch):
            current.append(ch)
        elif current:
            tokens.append("".join(current))
            current = []
    if current:
        tokens.append("".join(current))
    return tokens


def _all_features(tokens: Sequence[str]) -> Iterator[str]:
    """Word unigrams, then word bigrams, then char trigrams of '^token$', lazily, duplicates included."""
    for t in tokens:
        yield "w:" + t
    for a, b in zip(tokens, tokens[1:]):
        yield "b:" + a + " " + b
    for t in tokens:
        padded = "^" + t + "$"
        for i in range(len(padded) - 2):
            yield "c:" + padded[i:i + 3]


def features_of_tokens(tokens: Sequence[str], max_features: int) -> List[str]:
    """The contract's feature strings of a token list: de-duplicated, first occurrence kept,
    truncated to max_features (so trigrams are dropped first on long text)."""
    seen, out = set(), []
    for f in _all_features(tokens):
        if f not in seen:
            seen.add(f)
            out.append(f)
            if len(out) == max_features:
                break
    return out


def feature_strings(text: str, max_features: int) -> List[str]:
    """Feature strings of a text: normalize, tokenize, features_of_tokens."""
    return features_of_tokens(tokenize(normalize(text)), max_features)


@dataclass(frozen=True)
class FeaturizerSpec:
    """The card's "featurizer" object."""
    dimension: int = 1 << 18
    max_features: int = 128
    seed: int = 0x5EED
    padding_id: int = 0

    def to_card(self) -> dict:
        return {
            "normalization": "nfkc_lower",
            "tokenization": "unicode_letter_number_runs",
            "features": ["word", "word_bigram", "char_trigram"],
            "hash": "murmur3_x86_32",
            "seed": self.seed,
            "dimension": self.dimension,
            "max_features": self.max_features,
            "padding_id": self.padding_id,
        }

    @staticmethod
    def from_card(card: dict) -> "FeaturizerSpec":
        return FeaturizerSpec(dimension=int(card["dimension"]), max_features=int(card["max_features"]),
                              seed=int(card["seed"]), padding_id=int(card.get("padding_id", 0)))


def feature_id(feature: str, spec: FeaturizerSpec) -> int:
    """Ids 1..D-1; 0 is padding."""
    return 1 + murmur3_x86_32(feature.encode("utf-8"), spec.seed) % (spec.dimension - 1)


def featurize(text: str, spec: FeaturizerSpec) -> List[int]:
    """Feature ids of one text, unpadded (length <= max_features). Ids may repeat (hash collisions)."""
    return [feature_id(f, spec) for f in feature_strings(text, spec.max_features)]


def featurize_padded(texts: Sequence[str], spec: FeaturizerSpec) -> List[List[int]]:
    """[len(texts), max_features] ids, right-padded with padding_id: the ONNX input."""
    rows = []
    for t in texts:
        ids = featurize(t, spec)
        rows.append(ids + [spec.padding_id] * (spec.max_features - len(ids)))
    return rows


@dataclass(frozen=True)
class ProductHash:
    """The card's "product_hash" object: bucket of product id p in repetition r."""
    buckets: int
    seeds: Sequence[int] = field(default_factory=tuple)

    @staticmethod
    def default_seeds(repetitions: int, base: int = 0x4D414348) -> List[int]:
        return [(base + 7919 * r) & _MASK32 for r in range(repetitions)]

    def bucket(self, product_id: str, r: int) -> int:
        return murmur3_x86_32(product_id.encode("utf-8"), self.seeds[r]) % self.buckets

    def buckets_of(self, product_id: str) -> List[int]:
        data = product_id.encode("utf-8")
        return [murmur3_x86_32(data, s) % self.buckets for s in self.seeds]

    def to_card(self) -> dict:
        return {"function": "murmur3_x86_32", "encoding": "utf-8", "seeds": list(self.seeds),
                "buckets": self.buckets}
