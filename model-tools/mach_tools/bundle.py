"""Writing and checking model bundles (spec/bundle-format.md, format version 1)."""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx
import torch

from mach_tools.data import UserError
from mach_tools.featurize import FeaturizerSpec, ProductHash, featurize, featurize_padded
from mach_tools.model import MachModel

FORMAT_VERSION = 1
INPUT_NAME, OUTPUT_NAME = "feature_ids", "probabilities"
KNOWN_FEATURIZER = {"normalization": "nfkc_lower", "tokenization": "unicode_letter_number_runs",
                    "hash": "murmur3_x86_32"}


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_onnx(model: MachModel, path: str, max_features: int) -> None:
    """ONNX opset 17, dynamic batch; R and B written as fixed output dims so readers can check them."""
    model = model.eval().cpu()
    dummy = torch.ones(2, max_features, dtype=torch.int64)
    import warnings
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch 1.13 warns about prim::Constant shape inference
        torch.onnx.export(model, dummy, path, opset_version=17, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], do_constant_folding=True,
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    m = onnx.load(path)
    dims = m.graph.output[0].type.tensor_type.shape.dim
    for d, v in zip(list(dims)[1:], (model.R, model.B)):
        d.Clear()
        d.dim_value = v
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.checker.check_model(m)
    onnx.save(m, path)


def _io_shape(value_info) -> List[int]:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim]


def check_onnx(path: str, card: dict) -> List[str]:
    """Problems between model.onnx and the card: names, dtypes, fixed dims (after shape inference)."""
    problems = []
    try:
        m = onnx.load(path)
        onnx.checker.check_model(m)
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    except Exception as e:  # onnx raises several types; the message is what matters
        return [f"model.onnx is not a valid ONNX model: {str(e).splitlines()[0]}"]
    init = {t.name for t in m.graph.initializer}
    ins = [i for i in m.graph.input if i.name not in init]
    expect = card["onnx"]
    if len(ins) != 1 or len(m.graph.output) != 1:
        return [f"model.onnx has {len(ins)} inputs and {len(m.graph.output)} outputs, expected 1 and 1"]
    for vi, key, dtype in ((ins[0], "input", onnx.TensorProto.INT64), (m.graph.output[0], "output", onnx.TensorProto.FLOAT)):
        want = expect[key]
        if vi.name != want["name"]:
            problems.append(f"ONNX {key} is named {vi.name}, card says {want['name']}")
        if vi.type.tensor_type.elem_type != dtype:
            problems.append(f"ONNX {key} has element type {vi.type.tensor_type.elem_type}, card says {want['dtype']}")
        got = _io_shape(vi)
        if len(got) != len(want["shape"]) or any(w != -1 and g != w for g, w in zip(got, want["shape"])):
            problems.append(f"ONNX {key} shape {got} differs from the card's {want['shape']}")
    if m.opset_import[0].version != expect.get("opset", 17):
        problems.append(f"ONNX opset {m.opset_import[0].version}, card says {expect.get('opset')}")
    return problems


def make_parity(model: MachModel, texts: Sequence[str], spec: FeaturizerSpec, top: int = 5,
                tolerance: float = 1e-4) -> dict:
    model = model.eval().cpu()
    with torch.no_grad():
        probs = model(torch.tensor(featurize_padded(texts, spec), dtype=torch.int64)).numpy()
    cases = []
    for t, p in zip(texts, probs):
        order = np.argsort(-p, axis=1, kind="stable")[:, :top]
        cases.append({"text": t, "feature_ids": featurize(t, spec),
                      "top_buckets": order.tolist(),
                      "top_probs": [[float(p[r, b]) for b in row] for r, row in enumerate(order)]})
    return {"tolerance": tolerance, "top": top, "cases": cases}


def write_bundle(out_dir: str, model: MachModel, name: str, labels: Sequence[str], spec: FeaturizerSpec,
                 product_hash: ProductHash, parity_texts: Sequence[str], training: dict,
                 extra_files: Optional[Dict[str, str]] = None, force: bool = False) -> dict:
    """Writes the bundle into a temporary sibling directory, checks it, then renames it into place,
    so a failure leaves no half-written bundle. extra_files: name -> path of a file to copy in."""
    with staged_bundle(out_dir, force) as (out_dir, tmp):
        export_onnx(model, os.path.join(tmp, "model.onnx"), spec.max_features)
        with open(os.path.join(tmp, "labels.txt"), "w", encoding="utf-8", newline="\n") as f:
            f.writelines(p + "\n" for p in labels)
        with open(os.path.join(tmp, "parity.json"), "w", encoding="utf-8") as f:
            json.dump(make_parity(model, parity_texts, spec), f, ensure_ascii=False, indent=1)
        for fname, src in (extra_files or {}).items():
            shutil.copyfile(src, os.path.join(tmp, fname))
        card = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "R": model.R, "B": model.B, "H": model.H,
            "product_hash": product_hash.to_card(),
            "featurizer": spec.to_card(),
            "onnx": {"file": "model.onnx", "opset": 17,
                     "input": {"name": INPUT_NAME, "dtype": "int64", "shape": [-1, spec.max_features]},
                     "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [-1, model.R, model.B]}},
            "labels": {"file": "labels.txt", "count": len(labels)},
            "input_layer": model.input_card(),
            "training": training,
            "files": None,  # filled by finish_bundle
        }
        return finish_bundle(tmp, out_dir, card)


@contextlib.contextmanager
def staged_bundle(out_dir: str, force: bool):
    """Yields (absolute out_dir, tmp): a new temporary sibling directory of out_dir to write a bundle
    in, which finish_bundle then moves into place; removed if the block fails, so a failure leaves no
    half-written bundle. Refuses an existing out_dir unless force."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not force:
        raise UserError(f"{out_dir} already exists (pass --force to replace it)")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(out_dir) + "-", dir=parent)
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the search engine may run as another user
    try:
        yield out_dir, tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def finish_bundle(tmp: str, out_dir: str, card: dict) -> dict:
    """The last step of writing a bundle in the directory `tmp`: lists every file's sha256 in the card,
    writes mach.json, checks the whole bundle (parity re-run included), then moves it to `out_dir`
    (replacing an existing one only once the new one is complete)."""
    card["files"] = {f: sha256_file(os.path.join(tmp, f)) for f in sorted(os.listdir(tmp)) if f != "mach.json"}
    with open(os.path.join(tmp, "mach.json"), "w", encoding="utf-8") as f:
        json.dump(card, f, ensure_ascii=False, indent=1)
        f.write("\n")
    problems = check_bundle(tmp, numeric=True)
    if problems:
        raise RuntimeError("the written bundle failed its own check: " + "; ".join(problems))
    if os.path.exists(out_dir):
        old = out_dir + ".old-" + os.path.basename(tmp)
        os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        shutil.rmtree(old)
    else:
        os.rename(tmp, out_dir)
    return card


def load_card(bundle_dir: str) -> dict:
    path = os.path.join(bundle_dir, "mach.json")
    if not os.path.isdir(bundle_dir):
        raise UserError(f"{bundle_dir}: not a bundle directory")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(f"{bundle_dir}: no mach.json (not a model bundle)")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: invalid JSON ({e})")


def sizes(bundle_dir: str, card: dict) -> dict:
    """Input-layer kind and bytes (a card without `input_layer` has the uniform D x H float32 table)
    and the size of model.onnx on disk."""
    layer = card.get("input_layer") or {"kind": "uniform",
                                        "bytes": 4 * int(card["featurizer"]["dimension"]) * int(card["H"])}
    return {"input_layer": layer.get("kind"), "input_layer_bytes": layer.get("bytes"),
            "model_onnx_bytes": os.path.getsize(os.path.join(bundle_dir, card["onnx"]["file"]))}


def read_labels(bundle_dir: str, card: dict) -> List[str]:
    with open(os.path.join(bundle_dir, card["labels"]["file"]), encoding="utf-8", newline="") as f:
        data = f.read()
    return data.split("\n")[:-1] if data.endswith("\n") else data.split("\n")


def onnx_predictor(bundle_dir: str, card: dict):
    """texts -> probabilities [n, R, B] by running the bundle's model.onnx (NumPy evaluator) on the
    card's featurizer: what the plugin computes, without ONNX Runtime."""
    from mach_tools.features import CachedFeaturizer, RaggedIds, pad_batch
    from mach_tools.onnx_numpy import OnnxNumpyModel
    spec = FeaturizerSpec.from_card(card["featurizer"])
    net = OnnxNumpyModel(os.path.join(bundle_dir, card["onnx"]["file"]))
    feat = CachedFeaturizer(spec)
    in_name, out_name = card["onnx"]["input"]["name"], card["onnx"]["output"]["name"]

    def predict(texts: Sequence[str]) -> np.ndarray:
        r = RaggedIds()
        for t in texts:
            r.append(feat.ids(t))
        flat, off = r.freeze()
        x = pad_batch(flat, off, np.arange(len(texts)), width=spec.max_features, padding_id=spec.padding_id)
        return net.run({in_name: x})[out_name]
    return predict


def check_bundle(bundle_dir: str, numeric: bool = True) -> List[str]:
    """Every rule of spec/bundle-format.md that a reader must enforce; numeric also re-runs
    parity.json through model.onnx (NumPy evaluator) and the featurizer. Returns the problems."""
    try:
        card = load_card(bundle_dir)
    except UserError as e:
        return [str(e)]
    p: List[str] = []
    if card.get("format_version") != FORMAT_VERSION:
        return [f"unknown format_version {card.get('format_version')!r} (this reader knows {FORMAT_VERSION})"]
    try:
        R, B = int(card["R"]), int(card["B"])
        ph, fz, ox, lab, files = (card["product_hash"], card["featurizer"], card["onnx"], card["labels"],
                                  card["files"])
    except (KeyError, TypeError, ValueError) as e:
        return [f"mach.json: missing or bad field {e}"]
    if ph.get("function") != "murmur3_x86_32":
        p.append(f"unknown product hash function {ph.get('function')!r}")
    if len(ph.get("seeds", [])) != R:
        p.append(f"product_hash has {len(ph.get('seeds', []))} seeds, R is {R}")
    if ph.get("buckets") != B:
        p.append(f"product_hash.buckets {ph.get('buckets')} differs from B {B}")
    for k, v in KNOWN_FEATURIZER.items():
        if fz.get(k) != v:
            p.append(f"unknown featurizer {k} {fz.get(k)!r}")
    for f in ("mach.json",):
        if f in files:
            p.append("files must not list mach.json")
    for f in {ox.get("file"), lab.get("file"), "parity.json"} | set(files):
        if not os.path.isfile(os.path.join(bundle_dir, f)):
            p.append(f"missing file {f}")
        elif f in files and sha256_file(os.path.join(bundle_dir, f)) != files[f]:
            p.append(f"sha256 mismatch for {f}")
        elif f not in files:
            p.append(f"{f} is not listed in files")
    if p:
        return p
    labels = read_labels(bundle_dir, card)
    if len(labels) != lab.get("count"):
        p.append(f"labels.txt has {len(labels)} ids, card says {lab.get('count')}")
    if len(set(labels)) != len(labels) or any(not x or "\r" in x for x in labels):
        p.append("labels.txt ids must be non-empty, unique and free of line breaks")
    p += check_onnx(os.path.join(bundle_dir, ox["file"]), card)
    if p or not numeric:
        return p
    from mach_tools.onnx_numpy import OnnxNumpyModel
    spec = FeaturizerSpec.from_card(fz)
    with open(os.path.join(bundle_dir, "parity.json"), encoding="utf-8") as f:
        parity = json.load(f)
    net = OnnxNumpyModel(os.path.join(bundle_dir, ox["file"]))
    for case in parity["cases"]:
        ids = featurize(case["text"], spec)
        if ids != case["feature_ids"]:
            p.append(f"parity: featurizer ids differ for {case['text']!r}")
            continue
        x = np.array(featurize_padded([case["text"]], spec), dtype=np.int64)
        out = net.run({ox["input"]["name"]: x})[ox["output"]["name"]][0]
        got = np.take_along_axis(out, np.array(case["top_buckets"]), axis=1)
        err = float(np.abs(got - np.array(case["top_probs"])).max())
        if err > parity["tolerance"]:
            p.append(f"parity: ONNX output differs from PyTorch by {err:.2e} for {case['text']!r}")
    return p
