"""Low-rank heads: replace a bundle's [d -> R*B] head layer by two smaller ones.

The heads are one Gemm, logits = q W^T + b with W [R*B, d], then a softmax per repetition. q is what
the heads read: the sentence encoder's embedding (bundle format 2, d = 384) or the hashed network's
hidden vector (format 1: the ReLU after the input layer, or after its hidden layer; d = H or hidden2).
Here W^T becomes P V with P [d, k] and V [k, R*B]: d*k + k*R*B multiply-adds per query instead of
d*R*B (k = 128, d = 384: ~3x fewer). The graph keeps its input and output: MatMul(q, P) ->
Gemm(., V^T, b) -> the same Reshape and Softmax, so the plugin serves it unchanged, and
`mach_tools quantize` makes both int8.

The fit uses the query distribution: Sigma = E[q q^T] over the q of the `--pairs` queries (each
distinct query once, through the bundle's own encoder or featurizer and graph), and
- `pca` (default): P = the top-k eigenvectors of Sigma (the queries' principal directions), V = P^T W^T;
- `query-svd`: the rank-k P V minimizing E_q ||q W^T - q P V||^2, i.e. the truncated SVD
  of Sigma^{1/2} W^T: with its left singular vectors U_k, P = Sigma^{-1/2} U_k and
  V = U_k^T Sigma^{1/2} W^T. The expected squared error is the sum of the dropped squared singular
  values (over n queries), which the card reports as a fraction of E||q W^T||^2 (for both fits).
The smaller logit error does not always rank better: on Home Depot's encoder model pca is 0.0045
NDCG@10 better at k 128 and level at k 192, hence the default; on the hashed model query-svd is 0.0033
better at k 128 (docs/performance.md).
Before the fit each repetition's mean bucket row is taken out of W (softmax over a repetition's
buckets ignores a logit shift common to all of them, so the probabilities are unchanged and no rank
is spent on it); the bias stays as it is.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from mach_tools.bundle import (ENCODER_FORMAT_VERSION, FORMAT_VERSION, card_inputs, check_bundle, copy_unchanged_files,
                               finish_bundle, load_card, rewrite_parity, staged_bundle)
from mach_tools.data import UserError

FITS = ("pca", "query-svd")
PROJECTION = "heads_low_rank.projection"


def center_repetitions(w: np.ndarray, R: int) -> np.ndarray:
    """[R*B, d] -> the same with each repetition's mean row subtracted (same softmax per repetition)."""
    v = w.reshape(R, -1, w.shape[1])
    return (v - v.mean(axis=1, keepdims=True)).reshape(w.shape)


def second_moment(x: np.ndarray) -> np.ndarray:
    """[n, d] query embeddings -> Sigma = X^T X / n (float64)."""
    x = x.astype(np.float64)
    return x.T @ x / max(len(x), 1)


def fit_low_rank(w: np.ndarray, sigma: np.ndarray, rank: int, fit: str = "pca") -> Tuple[np.ndarray, np.ndarray, dict]:
    """W [N, d] (Gemm with transB: logits = q W^T), Sigma [d, d], rank k <= d ->
    (P [d, k], V [k, N], facts) with P V ~ W^T. facts["relative_error"]: the expected
    ||q W^T - q P V||^2 / ||q W^T||^2 under Sigma (what the fit predicts for the queries it saw)."""
    d = w.shape[1]
    if not 1 <= rank <= d:
        raise UserError(f"rank must be between 1 and {d}, got {rank}")
    if fit not in FITS:
        raise UserError(f"unknown fit {fit!r} (known: {', '.join(FITS)})")
    wt = w.astype(np.float64).T  # [d, N]
    lam, e = np.linalg.eigh(sigma)
    lam, e = lam[::-1], e[:, ::-1]
    if fit == "pca":
        p = e[:, :rank]
        v = p.T @ wt
    else:
        # Sigma^{1/2} and its pseudo-inverse, eigenvalues floored relative to the largest (a direction no
        # query takes costs nothing to drop)
        lam = np.maximum(lam, 0.0)
        keep = lam > lam[0] * 1e-12
        root = np.where(keep, np.sqrt(lam), 0.0)
        inv_root = np.where(keep, 1.0 / np.where(keep, np.sqrt(lam), 1.0), 0.0)
        s_half = (e * root) @ e.T
        s_inv_half = (e * inv_root) @ e.T
        m = s_half @ wt  # [d, N]
        g = m @ m.T  # [d, d] = U S^2 U^T
        s2, u = np.linalg.eigh(g)
        s2, u = s2[::-1], u[:, ::-1]
        uk = u[:, :rank]
        p = s_inv_half @ uk
        v = uk.T @ m
    err = wt - p @ v
    total = float(np.einsum("ij,ij->", sigma, wt @ wt.T))
    lost = float(np.einsum("ij,ij->", sigma, err @ err.T))
    facts = {"rank": rank, "fit": fit, "relative_error": lost / total if total > 0 else 0.0}
    return p.astype(np.float32), v.astype(np.float32), facts


def heads_gemm(model: onnx.ModelProto):
    """The heads: the one Gemm with constant weights (PyTorch Linear: transB=1) whose output the Reshape to
    [batch, R, B] reads, in both bundle formats (format 1: after the hashed input layer's ReLU or the
    hidden layer; format 2: on the embedding). Refuses int8 or already low-rank heads and anything else."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    if PROJECTION in inits or any(n.op_type == "MatMulInteger" for n in g.node):
        raise UserError("model.onnx's heads are already low-rank or int8: compress the float bundle, then "
                        "`mach_tools quantize` the result")
    producers = {o: n for n in g.node for o in n.output}
    gemms = [producers.get(n.input[0]) for n in g.node if n.op_type == "Reshape"]
    gemms = [n for n in gemms if n is not None and n.op_type == "Gemm" and n.input[1] in inits]
    if len(gemms) != 1:
        raise UserError("model.onnx has no single float Gemm (the heads) feeding the Reshape to [batch, R, B]; "
                        "nothing to compress")
    gemm = gemms[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
    if attrs.get("transB", 0) != 1 or attrs.get("transA", 0) != 0 or attrs.get("alpha", 1.0) != 1.0:
        raise UserError(f"model.onnx's heads Gemm is not a PyTorch Linear (transB=1; got attributes {attrs}); "
                        "nothing to compress")
    return gemm, inits[gemm.input[1]]


def low_rank_model(model: onnx.ModelProto, p: np.ndarray, v: np.ndarray) -> onnx.ModelProto:
    """The heads Gemm(x, W, b) becomes MatMul(x, P) -> Gemm(., V^T, b); the rest of the graph is kept."""
    g = model.graph
    gemm, weight = heads_gemm(model)
    z = "heads_low_rank/z"
    proj = helper.make_node("MatMul", [gemm.input[0], PROJECTION], [z], name="heads_low_rank/project")
    i = list(g.node).index(gemm)
    gemm.input[0] = z
    g.node.insert(i, proj)
    new_w = numpy_helper.from_array(np.ascontiguousarray(v.T.astype(np.float32)), weight.name)
    inits = [new_w if t.name == weight.name else t for t in g.initializer]
    del g.initializer[:]
    g.initializer.extend(inits + [numpy_helper.from_array(np.ascontiguousarray(p.astype(np.float32)), PROJECTION)])
    onnx.checker.check_model(model)
    return model


def heads_inputs(model: onnx.ModelProto, feeds: dict, batch: int = 512) -> np.ndarray:
    """What the heads Gemm reads (its input tensor, [n, d]) for the graph inputs `feeds` ([n, ...] each),
    by the NumPy evaluator, in batches, without computing the heads themselves."""
    from mach_tools.onnx_numpy import OnnxNumpyModel
    gemm, _ = heads_gemm(model)
    net = OnnxNumpyModel(model)
    n = len(next(iter(feeds.values())))
    parts = [net.run({k: v[s:s + batch] for k, v in feeds.items()}, outputs=[gemm.input[0]])[gemm.input[0]]
             for s in range(0, n, batch)]
    return np.concatenate(parts).astype(np.float32)


def _train_queries(pairs_path: str):
    from mach_tools.data import read_pairs
    seen, out = set(), []
    for q in read_pairs(pairs_path).queries:
        if q and q not in seen:
            seen.add(q)
            out.append(q)
    if not out:
        raise UserError(f"{pairs_path}: no queries")
    return out


def _graph_feeds(src: str, card: dict, queries, embed_cache: Optional[str], progress: bool) -> dict:
    """The heads graph's input for each query: the sentence encoder's embedding (format 2) or the padded
    hashed feature ids (format 1)."""
    in_name = card_inputs(card)[0]["name"]
    if card["format_version"] == ENCODER_FORMAT_VERSION:
        from mach_tools.encoder import SentenceEncoder
        enc = SentenceEncoder.from_bundle(src, card, cache_dir=embed_cache)
        return {in_name: enc.embed(queries, progress=progress, desc="embed queries")}
    from mach_tools.featurize import FeaturizerSpec, featurize_padded
    return {in_name: np.array(featurize_padded(queries, FeaturizerSpec.from_card(card["featurizer"])), dtype=np.int64)}


def compress_bundle(src: str, out: str, rank: int, pairs: str, fit: str = "pca", force: bool = False,
                    name: Optional[str] = None, embed_cache: Optional[str] = None, progress: bool = True) -> dict:
    """Writes the low-rank copy of bundle `src` (format 1 or 2, float heads) to `out` (atomically,
    checked); returns its card."""
    card = load_card(src)
    if card.get("format_version") not in (FORMAT_VERSION, ENCODER_FORMAT_VERSION):
        raise UserError(f"{src}: unknown bundle format {card.get('format_version')!r} (compress knows "
                        f"{FORMAT_VERSION}, hashed features, and {ENCODER_FORMAT_VERSION}, encoder)")
    if card.get("heads", {}).get("dtype") == "int8":
        raise UserError(f"{src}: the heads are int8; compress the float bundle, then `mach_tools quantize` the result")
    if "low_rank" in card:
        raise UserError(f"{src}: the heads are already low-rank (rank {card['low_rank'].get('rank')})")
    if fit not in FITS:
        raise UserError(f"--fit must be one of {', '.join(FITS)}, got {fit!r}")
    if os.path.exists(out) and not force:
        raise UserError(f"{os.path.abspath(out)} already exists (pass --force to replace it)")
    if not os.path.isfile(pairs):
        raise UserError(f"--pairs {pairs}: no such file")
    problems = check_bundle(src, numeric=False)
    if problems:
        raise UserError(f"{src}: not a valid bundle: {'; '.join(problems)}")
    model = onnx.load(os.path.join(src, card["onnx"]["file"]))
    gemm, weight = heads_gemm(model)  # refuse before the slow part
    d, activations = int(weight.dims[1]), gemm.input[0]
    if not 0 < rank < d:
        raise UserError(f"--rank must be between 1 and {d - 1} (the heads read {d} values per query), got {rank}")
    queries = _train_queries(pairs)
    x = heads_inputs(model, _graph_feeds(src, card, queries, embed_cache, progress))
    R, B = int(card["R"]), int(card["B"])
    w = center_repetitions(numpy_helper.to_array(weight).astype(np.float32), R)
    p, v, facts = fit_low_rank(w, second_moment(x), rank, fit)
    with staged_bundle(out, force) as (out, tmp):
        copy_unchanged_files(src, tmp, card, [card["onnx"]["file"]])
        onnx.save(low_rank_model(model, p, v), os.path.join(tmp, card["onnx"]["file"]))
        card = dict(card)
        if name:
            card["name"] = name
        fitted_on = {"pairs": pairs, "queries": len(queries), "activations": activations}
        if "encoder" in card:
            fitted_on["encoder"] = card["encoder"]["file"]
        card["low_rank"] = {
            **facts, "relative_error": round(facts["relative_error"], 6), "fitted_on": fitted_on,
            "macs": d * rank + rank * R * B, "full_macs": d * R * B,
            "centered": "each repetition's mean bucket row subtracted before the fit (same probabilities)"}
        rewrite_parity(src, tmp, card)
        return finish_bundle(tmp, out, card)
