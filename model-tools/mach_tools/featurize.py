"""Query featurizer and product hash: the Python half of the contract in spec/bundle-format.md.

The Java plugin (plugin/.../featurize) implements the same functions; both are checked against
spec/test-vectors.json, so any change here is a format change (bump the card's format_version).
"""
from __future__ import annotations

import re
import struct
import unicodedata
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence

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

    @property
    def family(self) -> Optional["HashFamily"]:
        """The hash family of these seeds, None when they are not a family's (spec "Hash families")
        or the hash is too large for one (R x B over 2^24 codes: no index-side serving)."""
        try:
            return HashFamily.of(self.seeds, self.buckets)
        except ValueError:
            return None

    def to_card(self, with_family: bool = True) -> dict:
        """The card's "product_hash"; with_family adds "family" when the seeds are a family's."""
        card = {"function": "murmur3_x86_32", "encoding": "utf-8", "seeds": list(self.seeds),
                "buckets": self.buckets}
        family = self.family if with_family else None
        if family is not None:
            card["family"] = family.name
        return card


def card_family(product_hash_card: dict) -> Optional["HashFamily"]:
    """The family of a card's "product_hash": derived from seeds and buckets (an old card has no
    "family" field). ValueError when a stated "family" does not match them, as the plugin refuses it."""
    family = HashFamily.of(product_hash_card.get("seeds", []), int(product_hash_card.get("buckets", 0)))
    stated = product_hash_card.get("family")
    if stated is not None:
        declared = HashFamily.parse(stated)
        if declared != family:
            raise ValueError(f"product_hash.family {stated!r} does not match the card's seeds and buckets "
                             f"({family.name if family else 'not a family'})")
    return family


_FAMILY_NAME = re.compile(r"murmur3_x86_32-r(\d{1,3})-b(\d{1,8})-s(\d{1,10})", re.ASCII)


@dataclass(frozen=True)
class HashFamily:
    """A named product hash (plugin HashFamily, spec/bundle-format.md "Hash families"): R repetitions
    into B buckets, repetition r hashing with seed (first_seed + 7919 r) mod 2^32. An index built with
    a family serves every model trained with it; code(r, b) = r * B + b is the index-time term."""
    repetitions: int
    buckets: int
    first_seed: int

    FUNCTION = "murmur3_x86_32"
    SEED_STEP = 7919
    MAX_REPETITIONS = 256
    MAX_CODES = 1 << 24

    def __post_init__(self):
        if not 1 <= self.repetitions <= self.MAX_REPETITIONS:
            raise ValueError(f"hash family repetitions must be in [1, {self.MAX_REPETITIONS}], got {self.repetitions}")
        if self.buckets < 2:
            raise ValueError(f"hash family buckets must be >= 2, got {self.buckets}")
        if self.repetitions * self.buckets > self.MAX_CODES:
            raise ValueError(f"hash family R x B must be at most {self.MAX_CODES}, got {self.repetitions} x {self.buckets}")
        if not 0 <= self.first_seed <= _MASK32:
            raise ValueError(f"hash family seed must be an unsigned 32-bit integer, got {self.first_seed}")

    @staticmethod
    def parse(name: str) -> "HashFamily":
        m = _FAMILY_NAME.fullmatch(name) if isinstance(name, str) else None
        if m is None:
            raise ValueError(f"unknown hash family [{name}]; a family is named murmur3_x86_32-r<R>-b<B>-s<first seed>, "
                             f"e.g. murmur3_x86_32-r16-b4096-s1296122696 (the model card's product_hash.family)")
        return HashFamily(int(m.group(1)), int(m.group(2)), int(m.group(3)))

    @staticmethod
    def of(seeds: Sequence[int], buckets: int) -> Optional["HashFamily"]:
        """The family of a product hash, or None when its seeds are not a family's."""
        if not seeds:
            return None
        s0 = int(seeds[0])
        if any(int(s) != (s0 + HashFamily.SEED_STEP * r) & _MASK32 for r, s in enumerate(seeds)):
            return None
        return HashFamily(len(seeds), int(buckets), s0)

    @property
    def name(self) -> str:
        return f"{self.FUNCTION}-r{self.repetitions}-b{self.buckets}-s{self.first_seed}"

    def seeds(self) -> List[int]:
        return [(self.first_seed + self.SEED_STEP * r) & _MASK32 for r in range(self.repetitions)]

    def product_hash(self) -> ProductHash:
        return ProductHash(buckets=self.buckets, seeds=self.seeds())

    def code(self, repetition: int, bucket: int) -> int:
        """The index-time code of bucket b of repetition r."""
        return repetition * self.buckets + bucket

    def codes_of(self, product_id: str) -> List[int]:
        """The R codes of one product, ascending (repetition order)."""
        return [self.code(r, b) for r, b in enumerate(self.product_hash().buckets_of(product_id))]
