"""Fast batch featurization on top of the reference featurizer (featurize.py).

Training featurizes millions of augmented texts. Hashing is the slow part in pure Python, so this
caches feature string -> id and works on token lists (augmentations pick and drop tokens). The
output is identical to featurize.featurize(" ".join(tokens)): tests check it.
"""
from __future__ import annotations

from array import array
from typing import Dict, List, Sequence, Tuple

import numpy as np

from mach_tools.featurize import FeaturizerSpec, feature_id, features_of_tokens, normalize, tokenize


class CachedFeaturizer:
    def __init__(self, spec: FeaturizerSpec):
        self.spec = spec
        self._ids: Dict[str, int] = {}

    def _id(self, feature: str) -> int:
        i = self._ids.get(feature)
        if i is None:
            i = self._ids[feature] = feature_id(feature, self.spec)
        return i

    def tokens(self, text: str) -> List[str]:
        return tokenize(normalize(text))

    def ids_of_tokens(self, tokens: Sequence[str]) -> List[int]:
        """Feature ids in contract order (featurize.features_of_tokens), hashes cached."""
        return [self._id(f) for f in features_of_tokens(tokens, self.spec.max_features)]

    def ids(self, text: str) -> List[int]:
        return self.ids_of_tokens(self.tokens(text))


class RaggedIds:
    """Variable-length id lists stored flat (int32 + offsets): millions of samples in little memory."""

    def __init__(self):
        self._flat = array("i")
        self._lengths = array("i")

    def append(self, ids: Sequence[int]) -> None:
        self._flat.extend(ids)
        self._lengths.append(len(ids))

    def freeze(self) -> Tuple[np.ndarray, np.ndarray]:
        flat = np.frombuffer(self._flat, dtype=np.int32).copy()
        lengths = np.frombuffer(self._lengths, dtype=np.int32).astype(np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return flat, offsets

    def __len__(self) -> int:
        return len(self._lengths)


def pad_batch(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray, width: int = 0,
              padding_id: int = 0) -> np.ndarray:
    """[len(rows), width] int64, right-padded; width 0 = the batch's longest row (at least 1)."""
    starts, ends = offsets[rows], offsets[rows + 1]
    lengths = ends - starts
    w = width or max(1, int(lengths.max(initial=0)))
    out = np.full((len(rows), w), padding_id, dtype=np.int64)
    col = np.arange(w)
    mask = col[None, :] < np.minimum(lengths, w)[:, None]
    src = (starts[:, None] + col[None, :])[mask]
    out[mask] = flat[src]
    return out


def flat_batch(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The rows' ids concatenated (int64) and each row's start in that array (EmbeddingBag input)."""
    starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
    bag_starts = np.zeros(len(rows), dtype=np.int64)
    np.cumsum(lengths[:-1], out=bag_starts[1:])
    idx = np.repeat(starts - bag_starts, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)
    return flat[idx].astype(np.int64), bag_starts


def featurize_texts(texts: Sequence[str], feat: CachedFeaturizer) -> Tuple[np.ndarray, np.ndarray]:
    r = RaggedIds()
    for t in texts:
        r.append(feat.ids(t))
    return r.freeze()
