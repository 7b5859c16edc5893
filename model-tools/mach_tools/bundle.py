"""Writing and checking model bundles (spec/bundle-format.md): format version 1 (hashed n-gram
features -> network) and version 2 (sentence encoder -> MACH heads)."""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx
import torch

from mach_tools.data import UserError
from mach_tools.decode import aggregation_of
from mach_tools.featurize import FeaturizerSpec, ProductHash, card_family, featurize, featurize_padded
from mach_tools.model import EncoderHeads, MachModel

FORMAT_VERSION = 1  # hashed features
ENCODER_FORMAT_VERSION = 2  # sentence encoder + heads
INPUT_NAME, OUTPUT_NAME = "feature_ids", "probabilities"
EMBEDDING_NAME = "embedding"
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
    _export(model, torch.ones(2, max_features, dtype=torch.int64), INPUT_NAME, path)


def export_heads_onnx(heads: EncoderHeads, path: str) -> None:
    """The heads of an encoder bundle: embedding float32 [batch, E] -> probabilities [batch, R, B]."""
    _export(heads, torch.zeros(2, heads.E), EMBEDDING_NAME, path)


def _export(model, dummy: torch.Tensor, input_name: str, path: str) -> None:
    model = model.eval().cpu()
    import warnings
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch 1.13 warns about prim::Constant shape inference
        torch.onnx.export(model, dummy, path, opset_version=17, input_names=[input_name],
                          output_names=[OUTPUT_NAME], do_constant_folding=True,
                          dynamic_axes={input_name: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
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


_ONNX_DTYPES = {"int64": onnx.TensorProto.INT64, "float32": onnx.TensorProto.FLOAT}


def card_inputs(card: dict) -> List[dict]:
    """The network's inputs as the card names them: v1 has one `input`, v2 a list `inputs`."""
    ox = card["onnx"]
    return list(ox["inputs"]) if "inputs" in ox else [ox["input"]]


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
    want_ins = card_inputs(card)
    if len(ins) != len(want_ins) or len(m.graph.output) != 1:
        return [f"model.onnx has {len(ins)} inputs and {len(m.graph.output)} outputs, "
                f"expected {len(want_ins)} and 1"]
    pairs = [(vi, f"input {vi.name}", want) for vi, want in zip(ins, want_ins)]
    pairs.append((m.graph.output[0], "output", expect["output"]))
    for vi, key, want in pairs:
        if vi.name != want["name"]:
            problems.append(f"ONNX {key} is named {vi.name}, card says {want['name']}")
        if vi.type.tensor_type.elem_type != _ONNX_DTYPES.get(want.get("dtype")):
            problems.append(f"ONNX {key} has element type {vi.type.tensor_type.elem_type}, card says {want.get('dtype')}")
        got = _io_shape(vi)
        if len(got) != len(want["shape"]) or any(w != -1 and g != w for g, w in zip(got, want["shape"])):
            problems.append(f"ONNX {key} shape {got} differs from the card's {want['shape']}")
    if m.opset_import[0].version != expect.get("opset", 17):
        problems.append(f"ONNX opset {m.opset_import[0].version}, card says {expect.get('opset')}")
    return problems


def parity_case(text: str, probs: np.ndarray, top: int, **inputs) -> dict:
    """One parity.json case: the text, its network inputs (feature_ids / token_ids) and, per
    repetition, the `top` highest buckets of probs [R, B] (descending, stable) with their values."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return {"text": text, **inputs, "top_buckets": order.tolist(),
            "top_probs": [[float(probs[r, b]) for b in row] for r, row in enumerate(order)]}


def make_parity(model: MachModel, texts: Sequence[str], spec: FeaturizerSpec, top: int = 5,
                tolerance: float = 1e-4) -> dict:
    model = model.eval().cpu()
    with torch.no_grad():
        probs = model(torch.tensor(featurize_padded(texts, spec), dtype=torch.int64)).numpy()
    cases = [parity_case(t, p, top, feature_ids=featurize(t, spec)) for t, p in zip(texts, probs)]
    return {"tolerance": tolerance, "top": top, "cases": cases}


def _write_labels_and_extras(tmp: str, labels: Sequence[str], extra_files: Optional[Dict[str, str]]) -> None:
    with open(os.path.join(tmp, "labels.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(p + "\n" for p in labels)
    for fname, src in (extra_files or {}).items():
        shutil.copyfile(src, os.path.join(tmp, fname))


def _card_head(version: int, name: str, net, product_hash: ProductHash) -> dict:
    """The fields every card starts with (net: the MachModel or EncoderHeads written)."""
    return {"format_version": version, "name": name,
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "R": net.R, "B": net.B, "H": net.H, "product_hash": product_hash.to_card()}


def write_bundle(out_dir: str, model: MachModel, name: str, labels: Sequence[str], spec: FeaturizerSpec,
                 product_hash: ProductHash, parity_texts: Sequence[str], training: dict,
                 extra_files: Optional[Dict[str, str]] = None, force: bool = False) -> dict:
    """Writes the bundle into a temporary sibling directory, checks it, then renames it into place,
    so a failure leaves no half-written bundle. extra_files: name -> path of a file to copy in."""
    with staged_bundle(out_dir, force) as (out_dir, tmp):
        export_onnx(model, os.path.join(tmp, "model.onnx"), spec.max_features)
        _write_labels_and_extras(tmp, labels, extra_files)
        with open(os.path.join(tmp, "parity.json"), "w", encoding="utf-8") as f:
            json.dump(make_parity(model, parity_texts, spec), f, ensure_ascii=False, indent=1)
        card = {
            **_card_head(FORMAT_VERSION, name, model, product_hash),
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


def make_encoder_parity(bundle_dir: str, card: dict, texts: Sequence[str], top: int = 5,
                        tolerance: float = 2e-3) -> dict:
    """Parity of an encoder bundle, computed from its own files (encoder.onnx and model.onnx through
    the NumPy evaluator, each text alone as the plugin embeds a query). The tolerance covers
    ONNX Runtime's int8 kernels rounding activations differently at a .5 boundary."""
    from mach_tools.encoder import SentenceEncoder
    from mach_tools.onnx_numpy import OnnxNumpyModel
    enc = SentenceEncoder.from_bundle(bundle_dir, card)
    heads = OnnxNumpyModel(os.path.join(bundle_dir, card["onnx"]["file"]))
    cases = []
    for t in texts:
        ids = enc.tokenizer.encode(t)
        p = heads.run({EMBEDDING_NAME: enc.embed_ids([ids])})[OUTPUT_NAME][0]
        cases.append(parity_case(t, p, top, token_ids=ids))
    return {"tolerance": tolerance, "top": top, "cases": cases}


def copy_unchanged_files(src: str, tmp: str, card: dict, rewritten: Sequence[str]) -> None:
    """Copies every file the card lists from bundle `src` into the staging dir `tmp`, but for
    `rewritten` and parity.json (a derived bundle writes those itself)."""
    for f in card["files"]:
        if f not in rewritten and f != "parity.json":
            shutil.copyfile(os.path.join(src, f), os.path.join(tmp, f))


def make_hashed_parity(bundle_dir: str, card: dict, texts: Sequence[str], top: int = 5,
                       tolerance: float = 1e-4) -> dict:
    """Parity of a hashed (format 1) bundle computed from its own model.onnx (NumPy evaluator) and the
    card's featurizer, each text alone as the plugin runs a query (int8 heads quantize activations per
    run): for a graph rewritten after training (int8 or low-rank heads)."""
    from mach_tools.onnx_numpy import OnnxNumpyModel
    net = OnnxNumpyModel(os.path.join(bundle_dir, card["onnx"]["file"]))
    spec = FeaturizerSpec.from_card(card["featurizer"])
    ox = card["onnx"]
    cases = []
    for t in texts:
        p = net.run({ox["input"]["name"]: np.array(featurize_padded([t], spec), dtype=np.int64)})[ox["output"]["name"]][0]
        cases.append(parity_case(t, p, top, feature_ids=featurize(t, spec)))
    return {"tolerance": tolerance, "top": top, "cases": cases}


def rewrite_parity(src: str, tmp: str, card: dict, min_tolerance: float = 0.0) -> None:
    """parity.json of the staged bundle `tmp` (either format), recomputed from its own graphs on the
    texts and top of `src`'s parity.json, at `src`'s tolerance or `min_tolerance`, whichever is looser."""
    with open(os.path.join(src, "parity.json"), encoding="utf-8") as f:
        parity = json.load(f)
    make = make_encoder_parity if card.get("format_version") == ENCODER_FORMAT_VERSION else make_hashed_parity
    new = make(tmp, card, [c["text"] for c in parity["cases"]], top=int(parity["top"]),
               tolerance=max(float(parity["tolerance"]), min_tolerance))
    with open(os.path.join(tmp, "parity.json"), "w", encoding="utf-8") as f:
        json.dump(new, f, ensure_ascii=False, indent=1)


def write_encoder_bundle(out_dir: str, heads: EncoderHeads, name: str, labels: Sequence[str], encoder,
                         product_hash: ProductHash, parity_texts: Sequence[str], training: dict,
                         extra_files: Optional[Dict[str, str]] = None, force: bool = False,
                         aggregation: str = "mean") -> dict:
    """A format-2 bundle: encoder.onnx (copied as shipped), vocab.txt, the heads as model.onnx.
    encoder: a mach_tools.encoder.SentenceEncoder. Staged and checked like write_bundle.
    aggregation: the estimator the heads are for; "mean" is written as an absent field."""
    with staged_bundle(out_dir, force) as (out_dir, tmp):
        shutil.copyfile(encoder.onnx_path, os.path.join(tmp, "encoder.onnx"))
        encoder.tokenizer.write_vocab(os.path.join(tmp, "vocab.txt"))
        export_heads_onnx(heads, os.path.join(tmp, "model.onnx"))
        _write_labels_and_extras(tmp, labels, extra_files)
        card = {
            **_card_head(ENCODER_FORMAT_VERSION, name, heads, product_hash),
            "input": "encoder",
            "encoder": encoder.card(),
            "onnx": {"file": "model.onnx", "opset": 17,
                     "inputs": [{"name": EMBEDDING_NAME, "dtype": "float32", "shape": [-1, heads.E]}],
                     "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [-1, heads.R, heads.B]}},
            "labels": {"file": "labels.txt", "count": len(labels)},
            "training": training,
            "files": None,  # filled by finish_bundle
        }
        if aggregation != "mean":
            card["aggregation"] = aggregation
        with open(os.path.join(tmp, "parity.json"), "w", encoding="utf-8") as f:
            json.dump(make_encoder_parity(tmp, card, parity_texts), f, ensure_ascii=False, indent=1)
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
    """Input-layer kind and bytes (a card without `input_layer` has the uniform D x H float32 table;
    an encoder bundle's heads read the encoder's embedding: no input layer of their own) and the size
    of model.onnx on disk."""
    if "featurizer" not in card:
        layer = {"kind": "encoder", "bytes": 0}
    else:
        layer = card.get("input_layer") or {"kind": "uniform",
                                            "bytes": 4 * int(card["featurizer"]["dimension"]) * int(card["H"])}
    return {"input_layer": layer.get("kind"), "input_layer_bytes": layer.get("bytes"),
            "model_onnx_bytes": os.path.getsize(os.path.join(bundle_dir, card["onnx"]["file"]))}


def read_labels(bundle_dir: str, card: dict) -> List[str]:
    with open(os.path.join(bundle_dir, card["labels"]["file"]), encoding="utf-8", newline="") as f:
        data = f.read()
    return data.split("\n")[:-1] if data.endswith("\n") else data.split("\n")


def onnx_predictor(bundle_dir: str, card: dict):
    """texts -> probabilities [n, R, B] by running the bundle's ONNX graphs (NumPy evaluator) with
    the card's featurizer or encoder: what the plugin computes, without ONNX Runtime. A graph that
    quantizes its activations per run (int8 heads: DynamicQuantizeLinear) runs one query at a time, as
    the plugin runs it: over a batch the scale would follow the batch's largest activation."""
    from mach_tools.onnx_numpy import OnnxNumpyModel
    net = OnnxNumpyModel(os.path.join(bundle_dir, card["onnx"]["file"]))
    in_name, out_name = card_inputs(card)[0]["name"], card["onnx"]["output"]["name"]
    per_query = any(n.op_type == "DynamicQuantizeLinear" for n in net.model.graph.node)

    def run(x: np.ndarray) -> np.ndarray:
        if not per_query:
            return net.run({in_name: x})[out_name]
        return np.concatenate([net.run({in_name: x[i:i + 1]})[out_name] for i in range(len(x))])

    if card.get("format_version") == ENCODER_FORMAT_VERSION:
        from mach_tools.encoder import SentenceEncoder
        enc = SentenceEncoder.from_bundle(bundle_dir, card)
        return lambda texts: run(enc.embed(list(texts)))
    from mach_tools.features import CachedFeaturizer, RaggedIds, pad_batch
    spec = FeaturizerSpec.from_card(card["featurizer"])
    feat = CachedFeaturizer(spec)

    def predict(texts: Sequence[str]) -> np.ndarray:
        r = RaggedIds()
        for t in texts:
            r.append(feat.ids(t))
        flat, off = r.freeze()
        return run(pad_batch(flat, off, np.arange(len(texts)), width=spec.max_features, padding_id=spec.padding_id))
    return predict


# The mach query parameters a card's optional query_defaults may set (spec/bundle-format.md), with the
# plugin's rules: (kind, allowed values or (min, max)).
QUERY_DEFAULTS = {
    "top_n": ("int", (1, 10000)), "decoding": ("enum", ("auto", "exact", "candidates")),
    "buckets_per_repetition": ("int", (1, 100000)), "min_repetitions": ("int", (1, 2 ** 31 - 1)),
    "score": ("enum", ("mean", "calibrated")), "normalize": ("bool", None),
    "combine": ("enum", ("filter", "boost", "hybrid")), "normalization": ("enum", ("none", "min_max")),
    "mach_weight": ("number", None), "lexical_window": ("int", (1, 10000)),
    "scored_buckets": ("int", (1, 2 ** 24)), "rest_buckets": ("enum", ("quantized", "residual")),
}
# query_defaults.index_side: the defaults of index-side (bucket_field) queries; top_n and decoding do
# not apply there. The plugin takes its fusion keys instead of the top level's and the other keys from
# the top level where it leaves them out.
INDEX_SIDE_DEFAULTS = {k: v for k, v in QUERY_DEFAULTS.items() if k not in ("top_n", "decoding")}


def _valid(v, kind: str, allowed) -> bool:
    number = isinstance(v, (int, float)) and not isinstance(v, bool)  # JSON: true is not 1
    if kind == "int":
        return number and isinstance(v, int) and allowed[0] <= v <= allowed[1]
    if kind == "enum":
        return isinstance(v, str) and v in allowed
    if kind == "bool":
        return isinstance(v, bool)
    return number and math.isfinite(v)


def check_query_defaults(d, where: str = "query_defaults", known: dict = QUERY_DEFAULTS) -> List[str]:
    """The problems of a card's query_defaults (and its index_side block), by the rules the plugin
    applies to a query's parameters."""
    if not isinstance(d, dict):
        return [f"{where} must be a JSON object, got {'null' if d is None else type(d).__name__}"]
    p = []
    for k, v in d.items():
        if k == "index_side" and known is QUERY_DEFAULTS:
            p += check_query_defaults(v, f"{where}.index_side", INDEX_SIDE_DEFAULTS)
            continue
        if k not in known:
            p.append(f"{where}: unknown parameter {k!r}; known: {sorted(known)}")
            continue
        kind, allowed = known[k]
        if not _valid(v, kind, allowed):
            p.append(f"{where}: bad {k} {v!r} ({kind}{'' if allowed is None else ' ' + str(allowed)})")
    if p:
        return p
    min_max = d.get("normalization") == "min_max"
    if d.get("decoding") == "exact" and d.get("min_repetitions", 1) > 1:
        p.append(f"{where}: min_repetitions applies to candidate decoding only")
    if min_max and d.get("combine") == "filter":
        p.append(f"{where}: normalization min_max applies to combine boost and hybrid, not filter")
    if "lexical_window" in d and not min_max:
        p.append(f"{where}: lexical_window applies only with normalization min_max")
    w = d.get("mach_weight")
    if w is not None and (not 0 <= w <= 1 if min_max else w <= 0):
        p.append(f"{where}: mach_weight {w} must be {'between 0 and 1 with min_max' if min_max else '> 0'}")
    return p


def write_query_defaults(bundle_dir: str, defaults: dict) -> dict:
    """Sets the card's query_defaults: mach.json replaced atomically (it is not among the checksummed
    files), then the whole bundle checked again; on a problem the previous card is put back."""
    problems = check_query_defaults(defaults)
    if problems:
        raise UserError("; ".join(problems))
    path = os.path.join(bundle_dir, "mach.json")
    card = load_card(bundle_dir)
    with open(path, encoding="utf-8") as f:
        before = f.read()
    card["query_defaults"] = defaults

    def replace(text: str) -> None:
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)

    replace(json.dumps(card, ensure_ascii=False, indent=1) + "\n")
    problems = check_bundle(bundle_dir)
    if problems:
        replace(before)
        raise UserError(f"{bundle_dir} does not check with the new query_defaults (card left as it was): " + "; ".join(problems))
    return card


def check_bundle(bundle_dir: str, numeric: bool = True) -> List[str]:
    """Every rule of spec/bundle-format.md that a reader must enforce; numeric also re-runs
    parity.json through the bundle's ONNX graphs (NumPy evaluator) and its featurizer or tokenizer.
    Returns the problems."""
    try:
        card = load_card(bundle_dir)
    except UserError as e:
        return [str(e)]
    p: List[str] = []
    version = card.get("format_version")
    if version not in (FORMAT_VERSION, ENCODER_FORMAT_VERSION):
        return [f"unknown format_version {version!r} (this reader knows {FORMAT_VERSION} and {ENCODER_FORMAT_VERSION})"]
    encoder = version == ENCODER_FORMAT_VERSION
    try:
        R, B = int(card["R"]), int(card["B"])
        ph, ox, lab, files = card["product_hash"], card["onnx"], card["labels"], card["files"]
        fz = card["featurizer"] if not encoder else None
        enc = card["encoder"] if encoder else None
        needed = [ox["file"], lab["file"], "parity.json"] + ([enc["file"], enc["tokenizer"]["vocab"]] if encoder else [])
    except (KeyError, TypeError, ValueError) as e:
        return [f"mach.json: missing or bad field {e}"]
    if ph.get("function") != "murmur3_x86_32":
        p.append(f"unknown product hash function {ph.get('function')!r}")
    if len(ph.get("seeds", [])) != R:
        p.append(f"product_hash has {len(ph.get('seeds', []))} seeds, R is {R}")
    if ph.get("buckets") != B:
        p.append(f"product_hash.buckets {ph.get('buckets')} differs from B {B}")
    if "family" in ph:
        try:
            card_family(ph)
        except (ValueError, TypeError) as e:
            p.append(str(e))
    if fz is not None:
        for k, v in KNOWN_FEATURIZER.items():
            if fz.get(k) != v:
                p.append(f"unknown featurizer {k} {fz.get(k)!r}")
    if encoder:
        if card.get("input") != "encoder":
            p.append(f"unknown input {card.get('input')!r} (this reader knows 'encoder')")
        if enc["tokenizer"].get("kind") != "bert_wordpiece":
            p.append(f"unknown tokenizer kind {enc['tokenizer'].get('kind')!r}")
        if enc.get("pooling") != "mean" or enc.get("normalize") != "l2":
            p.append("encoder pooling must be mean and normalize l2")
    if "mach.json" in files:
        p.append("files must not list mach.json")
    if "query_defaults" in card:
        p += check_query_defaults(card["query_defaults"])
    try:
        aggregation_of(card)
    except ValueError as e:
        p.append(str(e))
    for f in set(needed) | set(files):
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
    with open(os.path.join(bundle_dir, "parity.json"), encoding="utf-8") as f:
        parity = json.load(f)
    net = OnnxNumpyModel(os.path.join(bundle_dir, ox["file"]))
    in_name, out_name = card_inputs(card)[0]["name"], ox["output"]["name"]
    if encoder:
        from mach_tools.encoder import SentenceEncoder
        sentence = SentenceEncoder.from_bundle(bundle_dir, card)
    else:
        spec = FeaturizerSpec.from_card(fz)
    for case in parity["cases"]:
        if encoder:
            ids = sentence.tokenizer.encode(case["text"])
            if ids != case["token_ids"]:
                p.append(f"parity: tokenizer ids differ for {case['text']!r}")
                continue
            x = sentence.embed_ids([ids])
        else:
            if featurize(case["text"], spec) != case["feature_ids"]:
                p.append(f"parity: featurizer ids differ for {case['text']!r}")
                continue
            x = np.array(featurize_padded([case["text"]], spec), dtype=np.int64)
        out = net.run({in_name: x})[out_name][0]
        got = np.take_along_axis(out, np.array(case["top_buckets"]), axis=1)
        err = float(np.abs(got - np.array(case["top_probs"])).max())
        if err > parity["tolerance"]:
            p.append(f"parity: ONNX output differs from the trainer's by {err:.2e} for {case['text']!r}")
    return p
