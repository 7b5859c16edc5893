"""A small NumPy evaluator for the ONNX graphs this package exports.

There is no onnxruntime for Python on these machines; this runs model.onnx itself (not the PyTorch
module) so that `evaluate` and `inspect --check` measure exactly what the plugin serves, and it runs
the sentence encoder of an encoder bundle (all-MiniLM-L6-v2, fp32 or int8, opset 11) to embed
training texts with the very graph the plugin serves. Only the operators those graphs use are
supported; anything else is refused by name.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64, 9: np.bool_, 11: np.float64}


def _attrs(node) -> Dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _reduce_sum(x, axes, keepdims, noop_with_empty_axes=0):
    if axes is None or len(axes) == 0:
        if noop_with_empty_axes:
            return x
        return x.sum(keepdims=bool(keepdims))
    return x.sum(axis=tuple(int(a) for a in axes), keepdims=bool(keepdims))


def _div(a, b):
    """ONNX Div: integer inputs divide with truncation toward zero (NumPy's // floors)."""
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(np.asarray(b).dtype, np.integer):
        q = np.abs(a) // np.abs(b)
        return np.where((a < 0) != (np.asarray(b) < 0), -q, q).astype(a.dtype)
    return a / b


def _gemm(a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0):
    a = a.T if transA else a
    b = b.T if transB else b
    y = alpha * (a @ b)
    if c is not None:
        y = y + beta * c
    return y.astype(np.float32)


def _dynamic_quantize_linear(x):
    """ONNX DynamicQuantizeLinear: uint8, the range always including 0, round half to even."""
    x = x.astype(np.float32)
    lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = np.float32((hi - lo) / 255.0)
    if scale == 0:
        return np.zeros(x.shape, np.uint8), scale, np.uint8(0)
    zp = np.uint8(np.clip(np.rint(np.float32(0 - lo) / scale), 0, 255))
    y = np.clip(np.rint(x / scale) + zp, 0, 255).astype(np.uint8)
    return y, scale, zp


def _matmul_integer(a, b, a_zp=None, b_zp=None):
    """ONNX MatMulInteger: int32 result of (a - a_zp) @ (b - b_zp), exact. float32 BLAS when every
    partial sum stays below 2^24 (inner dim x max|a| x max|b|: the encoder's 384-wide products of
    uint8 and int8), else float64 (exact below 2^53)."""
    a = a.astype(np.float32) - (0 if a_zp is None else np.float32(a_zp))
    b = b.astype(np.float32) - (0 if b_zp is None else np.asarray(b_zp, np.float32))
    if a.shape[-1] * float(np.abs(a).max(initial=0)) * float(np.abs(b).max(initial=0)) >= (1 << 24):
        a, b = a.astype(np.float64), b.astype(np.float64)
    return _matmul(a, b).astype(np.int32)


def _matmul(a, b):
    """ONNX MatMul. A batch of rows times one matrix goes to BLAS as one 2-D product: NumPy's
    stacked matmul loops over the leading dimensions without BLAS (~20x slower here)."""
    if a.ndim > 2 and b.ndim == 2:
        return (np.ascontiguousarray(a).reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[-1])
    return a @ b


def _erf(x):
    import torch  # NumPy has no erf; torch is a dependency of model-tools anyway
    return torch.erf(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def _slice(x, starts, ends, axes=None, steps=None):
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    idx = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        idx[int(a)] = slice(int(s), int(e), int(st))
    return x[tuple(idx)]


def _dequantize_linear(x, scale, zp=None, axis=1):
    scale = np.asarray(scale, np.float32)
    y = x.astype(np.float32) - (0 if zp is None else np.asarray(zp).astype(np.float32))
    if scale.ndim == 1 and scale.size > 1:  # per-axis
        shape = [1] * x.ndim
        shape[axis] = -1
        return (y * scale.reshape(shape)).astype(np.float32)
    return (y * scale).astype(np.float32)


class OnnxNumpyModel:
    def __init__(self, path_or_model):
        self.model = path_or_model if isinstance(path_or_model, onnx.ModelProto) else onnx.load(path_or_model)
        g = self.model.graph
        self.init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.inputs = [i.name for i in g.input if i.name not in self.init]
        self.outputs = [o.name for o in g.output]
        for n in g.node:
            if n.op_type not in self._OPS:
                raise ValueError(f"model.onnx uses operator {n.op_type}, which the NumPy evaluator does not support")

    def run(self, feeds: Dict[str, np.ndarray], outputs: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
        """The graph's outputs, or the tensors named in `outputs` (any intermediate ones: the run stops
        once they are all computed)."""
        want = list(outputs) if outputs is not None else self.outputs
        env = dict(self.init)
        env.update(feeds)
        for n in self.model.graph.node:
            if all(o in env for o in want):
                break
            args = [env[i] if i else None for i in n.input]
            outs = self._OPS[n.op_type](self, args, _attrs(n))
            for name, v in zip(n.output, outs if isinstance(outs, tuple) else (outs,)):
                env[name] = v
        return {o: env[o] for o in want}

    def _reduce_sum_op(self, a, at):
        axes = a[1] if len(a) > 1 and a[1] is not None else at.get("axes")
        return _reduce_sum(a[0], axes, at.get("keepdims", 1), at.get("noop_with_empty_axes", 0))

    def _reshape(self, a, at):
        shape = [int(s) for s in a[1]]
        shape = [a[0].shape[i] if s == 0 and not at.get("allowzero", 0) else s for i, s in enumerate(shape)]
        return a[0].reshape(shape)

    def _clip(self, a, at):
        x = a[0]
        lo = a[1] if len(a) > 1 and a[1] is not None else None
        hi = a[2] if len(a) > 2 and a[2] is not None else None
        return np.clip(x, lo, hi) if (lo is not None or hi is not None) else x

    _OPS = {
        "Constant": lambda s, a, at: numpy_helper.to_array(at["value"]) if "value" in at else np.array(at.get("value_float", at.get("value_int"))),
        "Identity": lambda s, a, at: a[0],
        "Equal": lambda s, a, at: np.equal(a[0], a[1]),
        "Not": lambda s, a, at: np.logical_not(a[0]),
        "Cast": lambda s, a, at: a[0].astype(_DTYPES[at["to"]]),
        "Gather": lambda s, a, at: np.take(a[0], a[1], axis=at.get("axis", 0)),
        "Unsqueeze": lambda s, a, at: np.expand_dims(a[0], tuple(int(x) for x in (a[1] if len(a) > 1 else at["axes"]))),
        "Mul": lambda s, a, at: a[0] * a[1],
        "Div": lambda s, a, at: _div(a[0], a[1]),
        "Add": lambda s, a, at: a[0] + a[1],
        "Sub": lambda s, a, at: a[0] - a[1],
        "Relu": lambda s, a, at: np.maximum(a[0], 0).astype(a[0].dtype),
        "MatMul": lambda s, a, at: _matmul(a[0], a[1]),
        "Gemm": lambda s, a, at: _gemm(*a, **{k: v for k, v in at.items()}),
        "Transpose": lambda s, a, at: np.transpose(a[0], at.get("perm")),
        "ReduceSum": _reduce_sum_op,
        "Reshape": _reshape,
        "Clip": _clip,
        "Softmax": lambda s, a, at: _softmax(a[0], at.get("axis", -1)),
        "ReduceMean": lambda s, a, at: a[0].mean(axis=tuple(int(x) for x in at["axes"]), keepdims=bool(at.get("keepdims", 1))),
        "Pow": lambda s, a, at: np.power(a[0], a[1]).astype(a[0].dtype),
        "Sqrt": lambda s, a, at: np.sqrt(a[0]),
        "Erf": lambda s, a, at: _erf(a[0]),
        "Shape": lambda s, a, at: np.array(a[0].shape, dtype=np.int64),
        "Concat": lambda s, a, at: np.concatenate(a, axis=at["axis"]),
        "Slice": lambda s, a, at: _slice(a[0], *a[1:]) if len(a) > 1 else _slice(a[0], at["starts"], at["ends"], at.get("axes")),
        "DequantizeLinear": lambda s, a, at: _dequantize_linear(*a, axis=at.get("axis", 1)),
        "DynamicQuantizeLinear": lambda s, a, at: _dynamic_quantize_linear(a[0]),
        "MatMulInteger": lambda s, a, at: _matmul_integer(*a),
    }
