"""int8 output heads: rewrite a bundle's [H, R*B] head layer to 8-bit integer weights.

The head layer is the bulk of a MACH network's compute per query (R*B*H multiply-adds, 67 MB of
float32 weights at R=16, B=4096, H=256, read once per query). Here its Gemm becomes
    DynamicQuantizeLinear(x) -> MatMulInteger(x_q, W_q, x_zp) -> Cast -> Mul(x_scale * w_scale) -> Add(bias)
with W_q int8, symmetric per output column (w_scale[j] = max|W[:, j]| / 63, see WEIGHT_MAX), and the activations
quantized per query to uint8 (ONNX DynamicQuantizeLinear). Standard ONNX operators that ONNX Runtime
runs with its integer GEMM kernels: the plugin serves the result unchanged (same input and output).
The bundle's parity.json is recomputed from the quantized graph itself (NumPy evaluator) with a looser
tolerance, because activation rounding at a .5 boundary may differ between implementations.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

from mach_tools.bundle import check_bundle, copy_unchanged_files, finish_bundle, load_card, rewrite_parity, staged_bundle
from mach_tools.data import UserError

PARITY_TOLERANCE = 1e-3
# An int8 encoder's 36 quantized projections round activations per run; ONNX Runtime's fused integer
# kernels and the NumPy evaluator that writes parity.json then differ by a few thousandths in the
# embedding, which sharp heads (fitted heads: logit spread ~15) turn into up to ~0.01 in a probability
# (seen: 0.1040 vs 0.1105). Parity still catches a wrong tokenizer or graph (differences ~0.1-1).
ENCODER_PARITY_TOLERANCE = 0.02


def _head_gemm(graph):
    """The Gemm whose weight is an initializer feeding the Reshape to [batch, R, B]: the output heads."""
    inits = {t.name for t in graph.initializer}
    gemms = [n for n in graph.node if n.op_type == "Gemm" and n.input[1] in inits]
    if not gemms:
        raise UserError("model.onnx has no Gemm with constant weights (the output heads); nothing to quantize")
    return gemms[-1]


# Weights use 7 of their 8 bits (|q| <= 63). x86 CPUs without VNNI (AVX2) multiply uint8 x int8 in
# pairs summed into int16 with saturation (vpmaddubsw): 2 x 255 x 127 overflows it and ONNX Runtime's
# result then depends on the CPU (seen: 0.115 against 0.147 exact). 2 x 255 x 64 = 32640 fits, so
# every CPU computes the exact integer product. ONNX Runtime's own quantizer calls this reduce_range.
WEIGHT_MAX = 63


def quantize_weights(w: np.ndarray):
    """[N, H] float32 (Gemm with transB) -> ([H, N] int8, [N] float32 scale), symmetric per output
    column, |q| <= WEIGHT_MAX."""
    scale = np.abs(w).max(axis=1) / float(WEIGHT_MAX)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)
    return np.ascontiguousarray(q.T), scale


def _int8_matmul(p: str, x: str, wq: np.ndarray, wscale: np.ndarray, y: str):
    """(initializers, nodes) computing y = x @ W with W int8 [in, out] (scale per output column) and x
    quantized to uint8 per run: DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(x_scale * w_scale)."""
    inits = [numpy_helper.from_array(wq, f"{p}.weight"), numpy_helper.from_array(wscale, f"{p}.weight_scale")]
    nodes = [
        helper.make_node("DynamicQuantizeLinear", [x], [f"{p}/x_q", f"{p}/x_scale", f"{p}/x_zp"], name=f"{p}/quantize_x"),
        helper.make_node("MatMulInteger", [f"{p}/x_q", f"{p}.weight", f"{p}/x_zp"], [f"{p}/acc"], name=f"{p}/matmul"),
        helper.make_node("Cast", [f"{p}/acc"], [f"{p}/acc_f"], to=TensorProto.FLOAT, name=f"{p}/cast"),
        helper.make_node("Mul", [f"{p}/x_scale", f"{p}.weight_scale"], [f"{p}/scale"], name=f"{p}/scales"),
        helper.make_node("Mul", [f"{p}/acc_f", f"{p}/scale"], [y], name=f"{p}/dequantize"),
    ]
    return inits, nodes


def _quantize_matmuls(model: onnx.ModelProto, only: Optional[str] = None) -> int:
    """Every MatMul whose weight is a 2-D float initializer (named `only`, if given) becomes the int8
    form of _int8_matmul; returns how many did."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    nodes, dropped, added = [], set(), []
    for n in g.node:
        w = inits.get(n.input[1]) if n.op_type == "MatMul" and len(n.input) == 2 else None
        if w is None or len(w.dims) != 2 or w.data_type != TensorProto.FLOAT or only not in (None, w.name):
            nodes.append(n)
            continue
        wf = numpy_helper.to_array(w).astype(np.float32)  # [in, out]
        wq, wscale = quantize_weights(np.ascontiguousarray(wf.T))
        new_inits, new_nodes = _int8_matmul(f"{n.name or w.name}_int8", n.input[0], wq, wscale, n.output[0])
        nodes += new_nodes
        added += new_inits
        dropped.add(w.name)
    still_used = {i for n in nodes for i in n.input}
    del g.node[:]
    g.node.extend(nodes)
    kept = [t for t in g.initializer if t.name not in dropped or t.name in still_used]
    del g.initializer[:]
    g.initializer.extend(kept + added)
    return len(dropped)


def quantize_encoder_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every MatMul of a float sentence encoder whose weight is a 2-D initializer (the six projections
    of each BERT layer) becomes the int8 form of _int8_matmul, as ONNX Runtime's dynamic quantization
    does; attention's activation-by-activation MatMuls stay float."""
    if not _quantize_matmuls(model):
        raise UserError("encoder.onnx has no float MatMul with constant weights; nothing to quantize")
    onnx.checker.check_model(model)
    return model


def quantize_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """The heads' Gemm becomes int8 (and, for low-rank heads, `mach_tools compress`, their projection
    MatMul before it)."""
    from mach_tools.compress import PROJECTION
    _quantize_matmuls(model, only=PROJECTION)
    g = model.graph
    gemm = _head_gemm(g)
    attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
    if attrs.get("transB", 0) != 1 or attrs.get("transA", 0) != 0 or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        raise UserError(f"unexpected head Gemm attributes {attrs}; expected transB=1 (PyTorch Linear)")
    inits = {t.name: t for t in g.initializer}
    w = numpy_helper.to_array(inits[gemm.input[1]]).astype(np.float32)
    wq, wscale = quantize_weights(w)
    x, bias, y = gemm.input[0], (gemm.input[2] if len(gemm.input) > 2 else None), gemm.output[0]
    p = "heads_int8"
    new_inits, nodes = _int8_matmul(p, x, wq, wscale, f"{p}/logits" if bias else y)
    if bias:
        nodes.append(helper.make_node("Add", [f"{p}/logits", bias], [y], name=f"{p}/bias"))
    i = list(g.node).index(gemm)
    kept = [n for n in g.node if n is not gemm]
    del g.node[:]
    g.node.extend(kept[:i] + nodes + kept[i:])
    weight_name = gemm.input[1]
    remaining = [t for t in g.initializer if t.name != weight_name]
    del g.initializer[:]
    g.initializer.extend(remaining + new_inits)
    onnx.checker.check_model(model)
    return model


ENCODER_SCHEME = ("every projection MatMul: weights int8 (7-bit range, |q| <= 63) symmetric per output column; "
                  "activations uint8 per run (DynamicQuantizeLinear); embeddings, LayerNorm and attention float")


def int8_weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the int8 weights and their float32 scales in `model`: the int8 heads (both MatMuls of
    low-rank heads)."""
    inits = {t.name: t for t in model.graph.initializer}
    total = 0
    for t in inits.values():
        if t.data_type == TensorProto.INT8:
            total += int(np.prod(t.dims))
            scale = inits.get(t.name + "_scale")
            total += 4 * int(np.prod(scale.dims)) if scale is not None else 0
    return total


def quantize_bundle(src: str, out: str, force: bool = False, name: Optional[str] = None, encoder: bool = False) -> dict:
    """Writes the int8 copy of bundle `src` to `out` (atomically, checked); returns its card. The heads
    are quantized unless they already are; with `encoder` (format 2) the sentence encoder's projections too."""
    card = load_card(src)
    heads = card.get("heads", {}).get("dtype") != "int8"
    if encoder and "encoder" not in card:
        raise UserError(f"{src}: --encoder: a format {card.get('format_version')} bundle has no sentence encoder")
    if not heads and not encoder:
        raise UserError(f"{src}: the heads are already int8")
    problems = check_bundle(src, numeric=False)
    if problems:
        raise UserError(f"{src}: not a valid bundle: {'; '.join(problems)}")
    with staged_bundle(out, force) as (out, tmp):
        rewritten = ([card["onnx"]["file"]] if heads else []) + ([card["encoder"]["file"]] if encoder else [])
        copy_unchanged_files(src, tmp, card, rewritten)
        model = onnx.load(os.path.join(src, card["onnx"]["file"]))
        if heads:
            model = quantize_model(model)
            onnx.save(model, os.path.join(tmp, card["onnx"]["file"]))
        if encoder:
            enc = quantize_encoder_model(onnx.load(os.path.join(src, card["encoder"]["file"])))
            onnx.save(enc, os.path.join(tmp, card["encoder"]["file"]))
        # from the rewritten graphs (format 2: the encoder and the heads)
        rewrite_parity(src, tmp, card, max(PARITY_TOLERANCE, ENCODER_PARITY_TOLERANCE if encoder else 0.0))
        card = dict(card)
        if name:
            card["name"] = name
        if heads:
            card["heads"] = {"dtype": "int8", "scheme": "weights int8 (7-bit range, |q| <= 63) symmetric per output "
                             "column; activations uint8 per query (DynamicQuantizeLinear)" +
                             ("; low-rank: both MatMuls" if "low_rank" in card else ""),
                             "bytes": int8_weight_bytes(model)}
        if encoder:
            variant = str(card["encoder"]["variant"])
            card["encoder"] = dict(card["encoder"], quantized=ENCODER_SCHEME,
                                   variant=variant.replace("fp32", "int8") if "fp32" in variant else variant + "-int8")
        return finish_bundle(tmp, out, card)
