"""BERT WordPiece tokenization, as the sentence encoder's tokenizer.json specifies it.

The same algorithm runs in the plugin (WordPieceTokenizer.java); spec/test-vectors.json holds the
cases both test suites check. Steps (HF BertNormalizer + BertPreTokenizer + WordPiece):
clean text, space out CJK ideographs, lower-case, strip accents (NFD, drop Mn), split on whitespace
and on every punctuation character, then greedy longest-match-first word pieces with `##`.
"""
from __future__ import annotations

import json
import os
import unicodedata
from typing import Dict, List, Sequence


# Unicode White_Space (what Rust's char::is_whitespace tests, as the HF tokenizer does)
_WHITESPACE = frozenset([0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                         0x2028, 0x2029, 0x202F, 0x205F, 0x3000])


def _is_control(ch: str) -> bool:
    """Other (C*), unassigned included, but tab, newline and carriage return count as whitespace."""
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def _is_whitespace(ch: str) -> bool:
    return ord(ch) in _WHITESPACE


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B920 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def normalize(text: str) -> str:
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if _is_whitespace(ch):
            out.append(" ")
        elif _is_cjk(cp):
            out.append(" " + ch + " ")
        else:
            out.append(ch)
    stripped = "".join(c for c in unicodedata.normalize("NFD", "".join(out)) if unicodedata.category(c) != "Mn")
    # accents first, then case, in the HF normalizer's order; code point by code point as HF does
    # (str.lower() on the whole text would apply the final-sigma rule: HF lower-cases ΟΔΟΣ to οδοσ)
    return "".join(c.lower() for c in stripped)


def pre_tokenize(normalized: str) -> List[str]:
    words: List[str] = []
    for chunk in normalized.split(" "):  # normalize() turned every whitespace character into a space
        cur = []
        for ch in chunk:
            if _is_punctuation(ch):
                if cur:
                    words.append("".join(cur))
                    cur = []
                words.append(ch)
            else:
                cur.append(ch)
        if cur:
            words.append("".join(cur))
    return words


class WordPiece:
    def __init__(self, vocab: Sequence[str], unk: str = "[UNK]", cls: str = "[CLS]", sep: str = "[SEP]",
                 max_tokens: int = 128, max_chars_per_word: int = 100):
        self.vocab: List[str] = list(vocab)
        self.ids: Dict[str, int] = {t: i for i, t in enumerate(self.vocab)}
        self.unk, self.cls, self.sep = unk, cls, sep
        self.max_tokens, self.max_chars = max_tokens, max_chars_per_word
        self._cache: Dict[str, List[str]] = {}

    @staticmethod
    def from_tokenizer_json(path: str, max_tokens: int = 128) -> "WordPiece":
        with open(path, encoding="utf-8") as f:
            model = json.load(f)["model"]
        vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
        if [i for _, i in vocab] != list(range(len(vocab))):
            raise ValueError(f"{path}: vocabulary ids are not 0..{len(vocab) - 1}")
        return WordPiece([t for t, _ in vocab], unk=model.get("unk_token", "[UNK]"), max_tokens=max_tokens,
                         max_chars_per_word=model.get("max_input_chars_per_word", 100))

    @staticmethod
    def from_vocab_file(path: str, **kw) -> "WordPiece":
        with open(path, encoding="utf-8", newline="") as f:
            data = f.read()
        return WordPiece(data.split("\n")[:-1] if data.endswith("\n") else data.split("\n"), **kw)

    def write_vocab(self, path: str) -> None:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write("".join(t + "\n" for t in self.vocab))

    def _word(self, word: str) -> List[str]:
        got = self._cache.get(word)
        if got is not None:
            return got
        pieces: List[str] = []
        if len(word) > self.max_chars:
            pieces = [self.unk]
        else:
            start = 0
            while start < len(word):
                end, piece = len(word), None
                while start < end:
                    cand = word[start:end] if start == 0 else "##" + word[start:end]
                    if cand in self.ids:
                        piece = cand
                        break
                    end -= 1
                if piece is None:
                    pieces = [self.unk]
                    break
                pieces.append(piece)
                start = end
        if len(self._cache) < 500_000:
            self._cache[word] = pieces
        return pieces

    def tokens(self, text: str) -> List[str]:
        out: List[str] = []
        for w in pre_tokenize(normalize(text)):
            out.extend(self._word(w))
        return out

    def encode(self, text: str) -> List[int]:
        """[CLS] + word-piece ids (truncated to max_tokens - 2) + [SEP]."""
        body = [self.ids[t] for t in self.tokens(text)][: self.max_tokens - 2]
        return [self.ids[self.cls]] + body + [self.ids[self.sep]]

    def card(self, vocab_file: str = "vocab.txt") -> dict:
        return {"kind": "bert_wordpiece", "vocab": vocab_file, "clean_text": True, "handle_chinese_chars": True,
                "lowercase": True, "strip_accents": True, "unk_token": self.unk, "cls_token": self.cls,
                "sep_token": self.sep, "pad_id": 0, "max_tokens": self.max_tokens,
                "max_input_chars_per_word": self.max_chars}


def encoder_files(encoder_dir: str):
    """An encoder directory holds encoder.onnx and the HF tokenizer.json."""
    onnx_path, tok = os.path.join(encoder_dir, "encoder.onnx"), os.path.join(encoder_dir, "tokenizer.json")
    for p in (onnx_path, tok):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"encoder directory {encoder_dir}: no {os.path.basename(p)}")
    return onnx_path, tok
