"""Training: build an augmented (feature ids, product) set once, train all R heads, write a bundle."""
from __future__ import annotations

import json
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, asdict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mach_tools import metrics as M
from mach_tools.bundle import write_bundle
from mach_tools.data import Catalog, Pairs, UserError
from mach_tools.decode import label_buckets, rank_queries
from mach_tools.features import CachedFeaturizer, RaggedIds, flat_batch, pad_batch
from mach_tools.featurize import FeaturizerSpec, ProductHash, featurize_padded
from mach_tools.model import MachModel, MixedInput, QRInput, UniformInput, mixed_plan, qr_m_for_budget
from mach_tools.progress import bar as progress_bar


@dataclass
class Recipe:
    R: int = 16
    B: int = 1024
    H: int = 256
    hidden2: int = 0
    D: int = 1 << 18
    L: int = 128
    epochs: int = 5
    batch_size: int = 512
    lr: float = 0.01
    emb_lr: float = 0.1
    lr_decay: bool = True
    augment_per_product: int = 20
    max_span: int = 6
    word_dropout: float = 0.15
    title_prob: float = 0.6
    mix_prob: float = 0.2
    min_relevance: float = 0.0
    pair_weight: str = "relevance"  # or "uniform"
    pair_repeat: int = 1
    seed: int = 13
    threads: int = 2
    input_layer: str = "uniform"  # or "mixed", "qr" (docs/embeddings.md)
    emb_blocks: int = 4           # mixed: frequency blocks
    emb_alpha: float = 0.5        # mixed: width exponent, d_i ~ (mean count of block i)^alpha
    emb_budget: int = 0           # mixed/qr: input-layer bytes (0 = mixed: widest block H; qr: see qr_m)
    qr_m: int = 0                 # qr: remainder table rows (0 = from emb_budget, else sqrt(D))
    proj_lr: float = -1.0         # mixed: Adam lr of the block projections (< 0: lr / 10; 0: frozen)
    emb_drop_unseen: bool = False  # mixed: ids absent from the training set get no row
    proj_norm: str = "free"       # mixed: "fixed" keeps every projection row at its initial length


# ---------------------------------------------------------------- training set

def _span(tokens: List[str], rng: random.Random, r: Recipe) -> List[str]:
    """A pseudo-query: a contiguous span or an ordered subset of words, with word dropout."""
    n = len(tokens)
    k = rng.randint(1, min(n, r.max_span))
    if rng.random() < 0.5:
        s = rng.randint(0, n - k)
        out = tokens[s:s + k]
    else:
        out = [tokens[i] for i in sorted(rng.sample(range(n), k))]
    if len(out) > 1 and r.word_dropout > 0:
        kept = [t for t in out if rng.random() >= r.word_dropout]
        out = kept or [rng.choice(out)]
    return out


def build_training_set(catalog: Catalog, pairs: Optional[Pairs], recipe: Recipe, feat: CachedFeaturizer,
                       rng: random.Random, log=print):
    """Returns flat ids, offsets, product index per sample, weight per sample, counts by source."""
    index = catalog.index()
    ids, prods, weights = RaggedIds(), [], []
    counts = {"pairs": 0, "product_text": 0, "augmented": 0}
    if pairs is not None:
        max_rel = max(pairs.relevance) or 1.0
        for q, p, rel in zip(pairs.queries, pairs.product_ids, pairs.relevance):
            if rel < recipe.min_relevance:
                continue
            toks = feat.tokens(q)
            if not toks:
                continue
            w = rel / max_rel if recipe.pair_weight == "relevance" else 1.0
            for rep in range(recipe.pair_repeat):
                t = toks if rep == 0 else _span(toks, rng, Recipe(**{**asdict(recipe), "max_span": len(toks)}))
                ids.append(feat.ids_of_tokens(t))
                prods.append(index[p])
                weights.append(w)
                counts["pairs"] += 1
    t0 = time.time()
    for k in range(len(catalog)):
        fields = [feat.tokens(f) for f in catalog.fields[k]]
        fields = [f for f in fields if f]
        if not fields:
            continue
        title, others = fields[0], fields[1:]
        # The whole first field (title), and for richer catalogs all fields together.
        ids.append(feat.ids_of_tokens(title))
        prods.append(k)
        weights.append(1.0)
        counts["product_text"] += 1
        if others:
            ids.append(feat.ids_of_tokens([t for f in fields for t in f]))
            prods.append(k)
            weights.append(1.0)
            counts["product_text"] += 1
        for _ in range(recipe.augment_per_product):
            u = rng.random()
            if not others or u < recipe.title_prob:
                toks = _span(title, rng, recipe)
            elif u < recipe.title_prob + recipe.mix_prob:
                toks = _span(title, rng, recipe) + _span(rng.choice(others), rng, recipe)
            else:
                toks = _span(rng.choice(others), rng, recipe)
            ids.append(feat.ids_of_tokens(toks))
            prods.append(k)
            weights.append(1.0)
            counts["augmented"] += 1
        if k and k % 20000 == 0:
            log(f"  augmented {k}/{len(catalog)} products ({time.time() - t0:.0f}s)")
    if not len(ids):
        raise UserError("no training examples: the catalog text and pairs are empty")
    flat, offsets = ids.freeze()
    return flat, offsets, np.array(prods, dtype=np.int64), np.array(weights, dtype=np.float32), counts


# ---------------------------------------------------------------- input layer

def make_input_layer(recipe: Recipe, flat_ids: np.ndarray, log=print):
    """The recipe's input layer; the mixed layout is a function of the training set's id counts."""
    D, H = recipe.D, recipe.H
    try:
        if recipe.input_layer == "uniform":
            return UniformInput(D, H)
        if recipe.input_layer == "mixed":
            counts = np.bincount(flat_ids, minlength=D)[:D]
            plan = mixed_plan(counts, H, recipe.emb_blocks, recipe.emb_alpha, recipe.emb_budget or None,
                              drop_unseen=recipe.emb_drop_unseen)
            log(f"mixed input layer: blocks {plan['sizes']} rows, widths {plan['widths']}, {plan['bytes']} bytes, "
                f"{plan['unseen_rows']} unseen ids without a row")
            layer = MixedInput(plan, H)
            if recipe.proj_norm == "fixed":
                layer.fix_projection_norms()
            return layer
        if recipe.input_layer == "qr":
            m = recipe.qr_m or (qr_m_for_budget(D, H, recipe.emb_budget) if recipe.emb_budget
                                else max(2, math.isqrt(D)))
            log(f"quotient-remainder input layer: m={m}, tables {-(-D // m)} and {m} rows x {H}")
            return QRInput(D, H, m)
    except ValueError as e:
        raise UserError(f"input layer: {e}")
    raise UserError(f"unknown input layer {recipe.input_layer!r} (uniform, mixed or qr)")


def make_optimizers(model: MachModel, recipe: Recipe):
    """Lazy row Adam for each embedding table (at emb_lr); Adam for the dense layers (at lr) and for
    mixed blocks' projections (at proj_lr, by default lr / 10; 0 freezes them at their random start).
    Why slower projections: every example moves a block's projection while a rare row is trained a
    few times an epoch, so at the dense rate the rare rows go stale against it; at lr the 4x mixed
    layer lost 5.5-5.9% recall@100 against the uniform table, at lr / 10 0.8-1.4% (2 epochs;
    docs/embeddings.md also has 4 epochs, where a still lower rate keeps recall better).
    Each Adam group's `base_lr` is what the schedule scales."""
    tables = model.input_layer.sparse_tables()
    projections = list(getattr(model.input_layer, "projections", []))
    if recipe.proj_lr == 0:
        for p in projections:
            p.requires_grad_(False)
    special = tables + projections
    dense = [p for p in model.parameters() if p.requires_grad and all(p is not t for t in special)]
    groups = [{"params": dense, "base_lr": recipe.lr}]
    if projections and recipe.proj_lr != 0:
        groups.append({"params": projections, "base_lr": recipe.lr / 10 if recipe.proj_lr < 0 else recipe.proj_lr})
    opt_sparse = [RowAdam(t.data, lr=recipe.emb_lr) for t in tables]
    return opt_sparse, torch.optim.Adam([{**g, "lr": g["base_lr"]} for g in groups])


# ---------------------------------------------------------------- evaluation with the torch model

def torch_predictor(model: MachModel, spec: FeaturizerSpec, device: torch.device):
    feat = CachedFeaturizer(spec)

    def predict(texts: Sequence[str]) -> np.ndarray:
        r = RaggedIds()
        for t in texts:
            r.append(feat.ids(t))
        flat, off = r.freeze()
        x = torch.from_numpy(pad_batch(flat, off, np.arange(len(texts)))).to(device)
        with torch.no_grad():
            return model(x).float().cpu().numpy()
    return predict


def per_query_metrics(predict, labels: Sequence[str], buckets: np.ndarray, judged: Dict[str, Dict[str, float]],
                      gain_offset: float, relevant_min: float, aggregation: str = "mean") -> List[Dict[str, float]]:
    """The metrics of each judged query, in the order of `judged`."""
    queries = list(judged)
    ranked, judged_scores = rank_queries(queries, predict, labels, buckets, judged=judged, aggregation=aggregation)
    return [M.query_metrics(r, judged[q], gain_offset, relevant_min, js)
            for q, r, js in zip(queries, ranked, judged_scores)]


def evaluate_model(predict, labels: Sequence[str], buckets: np.ndarray, judged: Dict[str, Dict[str, float]],
                   gain_offset: float, relevant_min: float, aggregation: str = "mean") -> Dict[str, float]:
    return M.aggregate(per_query_metrics(predict, labels, buckets, judged, gain_offset, relevant_min, aggregation))


# ---------------------------------------------------------------- training loop

class RowAdam:
    """Lazy Adam for the embedding: updates only the rows a batch touched (like SparseAdam, without
    building and coalescing a sparse gradient, which cost more than the forward pass here)."""

    def __init__(self, weight: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.weight, self.lr, self.betas, self.eps = weight, lr, betas, eps
        self.m = torch.zeros_like(weight)
        self.v = torch.zeros_like(weight)
        self.t = 0

    @torch.no_grad()
    def step(self, rows: torch.Tensor, grad: torch.Tensor) -> None:
        b1, b2 = self.betas
        self.t += 1
        m = self.m[rows].mul_(b1).add_(grad, alpha=1 - b1)
        v = self.v[rows].mul_(b2).addcmul_(grad, grad, value=1 - b2)
        self.m[rows] = m
        self.v[rows] = v
        step = self.lr * math.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        self.weight[rows] -= step * m / (v.sqrt_().add_(self.eps))


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device available")
    return torch.device(name)


def train(catalog: Catalog, pairs: Optional[Pairs], recipe: Recipe, out_dir: str, name: str,
          dev: Optional[Dict[str, Dict[str, float]]] = None, gain_offset: float = 1.0,
          relevant_min: float = 2.5, device: str = "auto", force: bool = False, progress: bool = True,
          data_facts: Optional[dict] = None, log=print) -> dict:
    if os.path.exists(out_dir) and not force:
        raise UserError(f"{out_dir} already exists (pass --force to replace it)")
    torch.set_num_threads(recipe.threads)
    random.seed(recipe.seed)
    np.random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    dev_t = pick_device(device)
    spec = FeaturizerSpec(dimension=recipe.D, max_features=recipe.L)
    ph = ProductHash(buckets=recipe.B, seeds=ProductHash.default_seeds(recipe.R))
    feat = CachedFeaturizer(spec)

    t_start = time.time()
    flat, offsets, prods, weights, counts = build_training_set(catalog, pairs, recipe, feat, rng, log)
    t_features = time.time() - t_start
    n = len(prods)
    log(f"training set: {n} examples ({counts}), featurized in {t_features:.1f}s; device {dev_t}")
    buckets = label_buckets(catalog.ids, ph)  # [K, R]
    targets_all = torch.from_numpy(buckets)

    layer = make_input_layer(recipe, flat, log)
    model = MachModel(recipe.D, recipe.H, recipe.R, recipe.B, hidden2=recipe.hidden2, input_layer=layer).to(dev_t)
    opt_sparse, opt_dense = make_optimizers(model, recipe)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total_steps = steps_per_epoch * recipe.epochs

    def set_lr(step: int):
        f = 1.0 - step / total_steps if recipe.lr_decay else 1.0
        f = max(f, 0.05)
        for o in opt_sparse:
            o.lr = recipe.emb_lr * f
        for g in opt_dense.param_groups:
            g["lr"] = g["base_lr"] * f

    history: List[dict] = []
    perm_rng = np.random.default_rng(recipe.seed)
    step = 0
    predict = torch_predictor(model, spec, dev_t)
    train_seconds = 0.0
    for epoch in range(1, recipe.epochs + 1):
        model.train()
        t0 = time.time()
        perm = perm_rng.permutation(n)
        total_loss, total_w = 0.0, 0.0
        batches = range(0, n, recipe.batch_size)
        bar = progress_bar(batches, desc=f"epoch {epoch}/{recipe.epochs}", unit="batch", enabled=progress,
                           mininterval=2.0)
        for s in bar:
            rows = perm[s:s + recipe.batch_size]
            ids_np, starts_np = flat_batch(flat, offsets, rows)
            ids_t = torch.from_numpy(ids_np).to(dev_t)
            starts_t = torch.from_numpy(starts_np).to(dev_t)
            y = targets_all[prods[rows]].to(dev_t)  # [b, R]
            w = torch.from_numpy(weights[rows]).to(dev_t)
            set_lr(step)
            logits, updates = model.train_logits(ids_t, starts_t)  # [b, R, B]
            loss_per = F.cross_entropy(logits.reshape(-1, recipe.B), y.reshape(-1),
                                       reduction="none").view(-1, recipe.R).sum(1)
            loss = (loss_per * w).sum() / len(rows)
            opt_dense.zero_grad()
            loss.backward()
            for t, rows_touched, sub in updates:
                opt_sparse[t].step(rows_touched, sub.grad)
            opt_dense.step()
            if recipe.proj_norm == "fixed":
                model.input_layer.fix_projection_norms()
            step += 1
            total_loss += float((loss_per.detach() * w).sum())
            total_w += float(w.sum())
            if step % 20 == 0:
                bar.set_postfix(loss=f"{total_loss / max(total_w, 1e-9) / recipe.R:.3f}")
        secs = time.time() - t0
        train_seconds += secs
        rec = {"epoch": epoch, "loss_per_head": total_loss / max(total_w, 1e-9) / recipe.R,
               "seconds": round(secs, 2), "samples_per_s": round(n / secs, 1)}
        if dev:
            model.eval()
            te = time.time()
            rec["dev"] = evaluate_model(predict, catalog.ids, buckets, dev, gain_offset, relevant_min)
            rec["dev_seconds"] = round(time.time() - te, 2)
        history.append(rec)
        log(f"epoch {epoch}: loss/head {rec['loss_per_head']:.4f}, {secs:.1f}s, {rec['samples_per_s']:.0f} samples/s"
            + (f", dev NDCG@10 {rec['dev'].get('NDCG@10', 0):.4f} recall@100 {rec['dev'].get('recall@100', 0):.4f}"
               f" P@1 {rec['dev'].get('P@1', 0):.4f}" if dev else ""))

    model.eval()
    facts = {
        "data": data_facts or {},
        "examples": n, "examples_by_source": counts, "products": len(catalog),
        "recipe": asdict(recipe), "epochs": recipe.epochs,
        "device": str(dev_t) + (f" ({torch.cuda.get_device_name(dev_t)})" if dev_t.type == "cuda" else ""),
        "torch_threads": torch.get_num_threads(),
        "featurize_seconds": round(t_features, 1), "train_seconds": round(train_seconds, 1),
        "samples_per_s": round(n * recipe.epochs / max(train_seconds, 1e-9), 1),
        "final_loss_per_head": history[-1]["loss_per_head"],
        **model.sizes(),
    }
    if dev:
        facts["dev_metrics"] = history[-1]["dev"]
        facts["dev_conventions"] = {"gain_offset": gain_offset, "relevant_min": relevant_min}
    metrics_doc = {"history": history, **{k: v for k, v in facts.items() if k != "recipe"}}
    with tempfile.TemporaryDirectory() as td:
        mpath = os.path.join(td, "metrics.json")
        with open(mpath, "w", encoding="utf-8") as f:
            json.dump(metrics_doc, f, indent=1)
        ppath = os.path.join(td, "training-curve.png")
        extra = {"metrics.json": mpath}
        if plot_history(history, ppath, name):
            extra["training-curve.png"] = ppath
        parity_texts = _parity_texts(catalog, pairs, rng)
        card = write_bundle(out_dir, model.cpu(), name, catalog.ids, spec, ph, parity_texts, facts,
                            extra_files=extra, force=force)
    log(f"wrote {out_dir} ({bundle_bytes(out_dir) / 1e6:.1f} MB)")
    return card


def _parity_texts(catalog: Catalog, pairs: Optional[Pairs], rng: random.Random) -> List[str]:
    texts = []
    if pairs is not None and pairs.queries:
        texts += rng.sample(pairs.queries, min(3, len(pairs.queries)))
    texts += [catalog.fields[k][0] for k in rng.sample(range(len(catalog)), min(3, len(catalog)))]
    texts.append("Ünïcode ﬁ ½ test — 42")
    return list(dict.fromkeys(t for t in texts if t))[:8]


def bundle_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def plot_history(history: List[dict], path: str, title: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(epochs, [h["loss_per_head"] for h in history], "o-", color="tab:blue", label="train loss / head")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy per head", color="tab:blue")
    if history and "dev" in history[0]:
        ax2 = ax.twinx()
        for key, c in (("NDCG@10", "tab:red"), ("recall@100", "tab:green"), ("P@1", "tab:orange")):
            ax2.plot(epochs, [h["dev"].get(key, 0.0) for h in history], "s--", color=c, label="dev " + key)
        ax2.set_ylabel("dev metric")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="center right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
