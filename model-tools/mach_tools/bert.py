"""all-MiniLM-L6-v2 (a 6-layer BERT) in PyTorch, built from the initializers of its fp32 ONNX graph.

Debian's torch cannot run ONNX, and fine-tuning needs gradients: this module rebuilds the encoder in
torch from the very weights the plugin runs (parity with the NumPy ONNX evaluator ~1e-7), and writes
fine-tuned weights back into a copy of the same graph (same nodes, inputs and outputs), so the plugin
runs a tuned encoder unchanged. Only the fp32 graph can be read: the int8 one holds quantized weights.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

# torch module name -> ONNX initializer name of the HF export, for the tensors that are not MatMuls.
_LINEARS = [("q", "attention.self.query"), ("k", "attention.self.key"), ("v", "attention.self.value"),
            ("o", "attention.output.dense"), ("i", "intermediate.dense"), ("out", "output.dense")]


class Layer(nn.Module):
    def __init__(self, d: int, heads: int, ff: int):
        super().__init__()
        self.h = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1 = nn.LayerNorm(d, eps=1e-12)
        self.i = nn.Linear(d, ff)
        self.out = nn.Linear(ff, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        dh = D // self.h

        def split(t):
            return t.view(B, T, self.h, dh).transpose(1, 2)
        a = torch.softmax(split(self.q(x)) @ split(self.k(x)).transpose(-1, -2) / math.sqrt(dh) + bias, -1)
        x = self.ln1(x + self.o((a @ split(self.v(x))).transpose(1, 2).reshape(B, T, D)))
        return self.ln2(x + self.out(F.gelu(self.i(x))))


class Bert(nn.Module):
    def __init__(self, vocab: int = 30522, d: int = 384, layers: int = 6, heads: int = 12, ff: int = 1536,
                 positions: int = 512):
        super().__init__()
        self.word = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(positions, d)
        self.typ = nn.Embedding(2, d)
        self.ln = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList(Layer(d, heads, ff) for _ in range(layers))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """last_hidden_state [batch, T, d] (token type 0 everywhere, as the plugin feeds it)."""
        T = ids.shape[1]
        x = self.ln(self.word(ids) + self.pos.weight[:T][None] + self.typ.weight[0][None, None])
        bias = (1.0 - mask[:, None, None, :].float()) * -10000.0  # the HF export's additive mask
        for layer in self.layers:
            x = layer(x, bias)
        return x

    def embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked mean pooling then L2 normalization: the sentence embedding (as encoder.pool)."""
        m = mask[..., None].float()
        e = (self.forward(ids, mask) * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(e, dim=-1)


def _param_map(graph) -> Dict[str, Tuple[str, bool]]:
    """torch state_dict key -> (ONNX initializer name, stored transposed). The MatMul weights of the
    export carry generated names (onnx::MatMul_NNN): they are taken in node order, 6 per layer."""
    init = {t.name for t in graph.initializer}
    mats = [n.input[1] for n in graph.node if n.op_type == "MatMul" and n.input[1] in init]
    layers = len(mats) // len(_LINEARS)
    if layers == 0 or len(mats) != layers * len(_LINEARS):
        raise ValueError(f"not a BERT fp32 graph: {len(mats)} MatMul weights (an int8 graph cannot be fine-tuned)")
    m = {"word.weight": ("embeddings.word_embeddings.weight", False),
         "pos.weight": ("embeddings.position_embeddings.weight", False),
         "typ.weight": ("embeddings.token_type_embeddings.weight", False),
         "ln.weight": ("embeddings.LayerNorm.weight", False), "ln.bias": ("embeddings.LayerNorm.bias", False)}
    for layer in range(layers):
        p = f"encoder.layer.{layer}."
        for j, (ours, theirs) in enumerate(_LINEARS):
            m[f"layers.{layer}.{ours}.weight"] = (mats[layer * len(_LINEARS) + j], True)
            m[f"layers.{layer}.{ours}.bias"] = (p + theirs + ".bias", False)
        for ours, theirs in (("ln1", "attention.output.LayerNorm"), ("ln2", "output.LayerNorm")):
            m[f"layers.{layer}.{ours}.weight"] = (p + theirs + ".weight", False)
            m[f"layers.{layer}.{ours}.bias"] = (p + theirs + ".bias", False)
    missing = [v for v, _ in m.values() if v not in init]
    if missing:
        raise ValueError(f"not a BERT fp32 graph: no initializer {missing[0]}")
    return m


def from_onnx(path: str) -> Bert:
    """The torch BERT of an fp32 ONNX export (sizes read from its initializers)."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path)
    mapping = _param_map(model.graph)
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    word = arrays["embeddings.word_embeddings.weight"]
    pos = arrays["embeddings.position_embeddings.weight"]
    layers = len([k for k in mapping if k.endswith(".q.weight")])
    ff = arrays[mapping["layers.0.i.bias"][0]].shape[0]
    d = word.shape[1]
    # 12 attention heads: all-MiniLM-L6-v2 and BERT-base (the count is not an initializer)
    bert = Bert(vocab=word.shape[0], d=d, layers=layers, heads=12, ff=ff, positions=pos.shape[0])
    bert.load_state_dict({k: torch.tensor((arrays[n].T if t else arrays[n]).copy()) for k, (n, t) in mapping.items()})
    return bert


def write_onnx(bert: Bert, source: str, path: str) -> None:
    """Writes `source` (the fp32 graph `bert` came from) to `path` with bert's weights as its
    initializers: same nodes, same inputs and outputs."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(source)
    mapping = _param_map(model.graph)
    state = bert.state_dict()
    by_name = {n: (k, t) for k, (n, t) in mapping.items()}
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.name in by_name:
            k, transposed = by_name[tensor.name]
            a = state[k].detach().cpu().numpy().astype("float32")
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(a.T.copy() if transposed else a, tensor.name))
    onnx.save(model, path)


def token_batch(tokenizer, texts: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) [n, T] of texts, right-padded with 0."""
    ids: List[List[int]] = [tokenizer.encode(t) for t in texts]
    T = max(len(r) for r in ids)
    x = torch.zeros(len(ids), T, dtype=torch.long)
    mask = torch.zeros_like(x)
    for j, r in enumerate(ids):
        x[j, :len(r)] = torch.tensor(r)
        mask[j, :len(r)] = 1
    return x, mask


@torch.no_grad()
def embed_texts(bert: Bert, tokenizer, texts: Sequence[str], batch: int = 128) -> torch.Tensor:
    """[n, d] sentence embeddings in eval mode (batches sorted by length: little padding)."""
    was = bert.training
    bert.eval()
    order = sorted(range(len(texts)), key=lambda j: len(texts[j]))
    out = torch.zeros(len(texts), bert.word.weight.shape[1])
    for s in range(0, len(order), batch):
        chunk = order[s:s + batch]
        out[chunk] = bert.embed(*token_batch(tokenizer, [texts[j] for j in chunk]))
    bert.train(was)
    return out
