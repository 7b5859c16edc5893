"""Training MACH heads over a frozen sentence encoder (bundle format 2).

Every training text (product titles and other fields as pseudo-queries, the query log's queries) is
embedded once by the encoder the bundle ships (cached on disk); the R heads then train on those
vectors: an epoch over ~100k examples takes seconds on a CPU.

The heads start as a sketch of the catalog (EncoderHeads.init_from_catalog: each bucket is the
normalized mean of its products' title vectors over a temperature), so the untrained model already
ranks like the encoder's cosine; training on the log then teaches it which products a shop's
queries lead to. Optionally (distill > 0) each example also learns the encoder's own soft ranking
of the catalog, summed into buckets: the dense retriever's view, compressed into R x B heads.
"""
from __future__ import annotations

import json
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mach_tools.bundle import write_encoder_bundle
from mach_tools.data import Catalog, Pairs, UserError
from mach_tools.decode import label_buckets
from mach_tools.encoder import SentenceEncoder
from mach_tools.featurize import ProductHash
from mach_tools.model import EncoderHeads
from mach_tools.progress import bar as progress_bar
from mach_tools.train import bundle_bytes, evaluate_model, pick_device, plot_history


@dataclass
class EncoderRecipe:
    R: int = 16
    B: int = 4096
    hidden: int = 0               # optional ReLU layer before the heads (0 = heads on the embedding)
    epochs: int = 5
    batch_size: int = 256
    lr: float = 0.001
    temperature: float = 0.2      # catalog sketch: bucket weights = normalized centroid / temperature
    init: str = "catalog"         # or "random"
    product_fields: str = "title"  # "title": the first text field; "all": every field is a pseudo-query
    noise: float = 0.0            # std of Gaussian noise added to each training vector (then renormalized)
    min_relevance: float = 0.0
    pair_weight: str = "relevance"  # or "uniform"
    title_weight: float = 1.0     # weight of a product's own text against a logged query (1.0 = equal)
    distill: float = 0.0          # weight of the encoder-teacher loss (0 = off)
    distill_temperature: float = 0.05
    distill_top: int = 64
    seed: int = 13
    threads: int = 2


def training_texts(catalog: Catalog, pairs: Optional[Pairs], recipe: EncoderRecipe):
    """(texts, product index, weight, counts by source). Products: the title, and with
    product_fields "all" every other non-empty field (bullet lists split per line); pairs: the query."""
    texts: List[str] = []
    prods: List[int] = []
    weights: List[float] = []
    counts = {"pairs": 0, "product_text": 0}
    for k in range(len(catalog)):
        fields = [f for f in catalog.fields[k] if f]
        chosen = fields[:1] if recipe.product_fields == "title" else \
            [line.strip() for f in fields for line in f.split("\n") if line.strip()]
        for t in dict.fromkeys(chosen):
            texts.append(t)
            prods.append(k)
            weights.append(recipe.title_weight)
            counts["product_text"] += 1
    if pairs is not None:
        index = catalog.index()
        max_rel = max(pairs.relevance) or 1.0
        for q, p, rel in zip(pairs.queries, pairs.product_ids, pairs.relevance):
            if rel < recipe.min_relevance or not q.strip():
                continue
            texts.append(q)
            prods.append(index[p])
            weights.append(rel / max_rel if recipe.pair_weight == "relevance" else 1.0)
            counts["pairs"] += 1
    if not texts:
        raise UserError("no training examples: the catalog text and pairs are empty")
    return texts, np.array(prods, dtype=np.int64), np.array(weights, dtype=np.float32), counts


def heads_predictor(heads: EncoderHeads, encoder: SentenceEncoder):
    def predict(texts: Sequence[str]) -> np.ndarray:
        x = torch.from_numpy(encoder.embed(list(texts)))
        with torch.no_grad():
            return heads(x).numpy()
    return predict


def train_encoder(catalog: Catalog, pairs: Optional[Pairs], recipe: EncoderRecipe, encoder: SentenceEncoder,
                  out_dir: str, name: str, dev: Optional[Dict[str, Dict[str, float]]] = None,
                  gain_offset: float = 1.0, relevant_min: float = 2.5, device: str = "auto", force: bool = False,
                  progress: bool = True, data_facts: Optional[dict] = None, log=print) -> dict:
    if os.path.exists(out_dir) and not force:
        raise UserError(f"{out_dir} already exists (pass --force to replace it)")
    if recipe.init == "catalog" and recipe.hidden:
        raise UserError("--init catalog needs heads directly on the embedding: use --hidden 0 or --init random")
    torch.set_num_threads(recipe.threads)
    random.seed(recipe.seed)
    np.random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    dev_t = pick_device(device)
    ph = ProductHash(buckets=recipe.B, seeds=ProductHash.default_seeds(recipe.R))
    buckets = label_buckets(catalog.ids, ph)  # [K, R]
    bucket_t = torch.from_numpy(buckets)

    t0 = time.time()
    texts, prods, weights, counts = training_texts(catalog, pairs, recipe)
    titles = [next((f for f in fields if f), "") for fields in catalog.fields]
    embedded = encoder.embed(titles + texts + (list(dev) if dev else []), progress=progress, desc="embedding")
    catalog_vecs = torch.from_numpy(embedded[:len(titles)])
    X = torch.from_numpy(embedded[len(titles):len(titles) + len(texts)])
    t_embed = time.time() - t0
    n = len(texts)
    log(f"training set: {n} examples ({counts}), embedded in {t_embed:.1f}s; device {dev_t}")

    heads = EncoderHeads(encoder.dimension, recipe.R, recipe.B, hidden=recipe.hidden)
    if recipe.init == "catalog":
        heads.init_from_catalog(catalog_vecs, bucket_t, recipe.temperature)
    heads = heads.to(dev_t)
    opt = torch.optim.Adam(heads.parameters(), lr=recipe.lr)
    y_all = bucket_t[torch.from_numpy(prods)]  # [n, R]
    w_all = torch.from_numpy(weights)
    teacher = catalog_vecs.to(dev_t) if recipe.distill > 0 else None
    predict = heads_predictor(heads, encoder)

    history: List[dict] = []

    def dev_record(epoch: int, loss: Optional[float], secs: float) -> dict:
        rec = {"epoch": epoch, "loss_per_head": loss, "seconds": round(secs, 2)}
        if dev:
            heads.eval()
            rec["dev"] = evaluate_model(predict, catalog.ids, buckets, dev, gain_offset, relevant_min)
            log(f"epoch {epoch}: " + (f"loss/head {loss:.4f}, {secs:.1f}s, " if loss is not None else "untrained, ")
                + f"dev NDCG@10 {rec['dev'].get('NDCG@10', 0):.4f} recall@100 {rec['dev'].get('recall@100', 0):.4f}")
        return rec

    history.append(dev_record(0, None, 0.0))
    train_seconds = 0.0
    for epoch in range(1, recipe.epochs + 1):
        heads.train()
        t1 = time.time()
        perm = torch.randperm(n)
        total, total_w = 0.0, 0.0
        batches = range(0, n, recipe.batch_size)
        bar = progress_bar(batches, desc=f"epoch {epoch}/{recipe.epochs}", unit="batch", enabled=progress,
                           mininterval=2.0)
        for s in bar:
            rows = perm[s:s + recipe.batch_size]
            x, y, w = X[rows].to(dev_t), y_all[rows].to(dev_t), w_all[rows].to(dev_t)
            if recipe.noise > 0:
                x = F.normalize(x + recipe.noise * torch.randn_like(x), dim=1)
            logits = heads.logits(x)
            ce = F.cross_entropy(logits.reshape(-1, recipe.B), y.reshape(-1), reduction="none").view(-1, recipe.R).sum(1)
            loss = (ce * w).sum() / len(rows)
            if teacher is not None:
                loss = loss + recipe.distill * distill_loss(logits, x, teacher, bucket_t.to(dev_t), recipe)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float((ce.detach() * w).sum())
            total_w += float(w.sum())
        secs = time.time() - t1
        train_seconds += secs
        history.append(dev_record(epoch, total / max(total_w, 1e-9) / recipe.R, secs))

    heads = heads.eval().cpu()
    facts = {
        "data": data_facts or {}, "examples": n, "examples_by_source": counts, "products": len(catalog),
        "recipe": asdict(recipe), "epochs": recipe.epochs, "encoder": encoder.facts,
        "device": str(dev_t), "torch_threads": torch.get_num_threads(),
        "embed_seconds": round(t_embed, 1), "train_seconds": round(train_seconds, 1), **heads.sizes(),
    }
    if dev:
        facts["dev_metrics"] = history[-1]["dev"]
        facts["dev_conventions"] = {"gain_offset": gain_offset, "relevant_min": relevant_min}
    rng = random.Random(recipe.seed)
    parity_texts = list(dict.fromkeys(
        (rng.sample(pairs.queries, min(3, len(pairs.queries))) if pairs is not None and pairs.queries else [])
        + [titles[k] for k in rng.sample(range(len(catalog)), min(3, len(catalog)))]
        + ["Ünïcode ﬁ ½ test — 42", "北京 crème brûlée"]))[:8]
    with tempfile.TemporaryDirectory() as td:
        mpath = os.path.join(td, "metrics.json")
        with open(mpath, "w", encoding="utf-8") as f:
            json.dump({"history": history, **{k: v for k, v in facts.items() if k != "recipe"}}, f, indent=1)
        extra = {"metrics.json": mpath}
        ppath = os.path.join(td, "training-curve.png")
        curve = [h for h in history if h["loss_per_head"] is not None]
        if curve and plot_history(curve, ppath, name):
            extra["training-curve.png"] = ppath
        card = write_encoder_bundle(out_dir, heads, name, catalog.ids, encoder, ph, parity_texts, facts,
                                    extra_files=extra, force=force)
    log(f"wrote {out_dir} ({bundle_bytes(out_dir) / 1e6:.1f} MB)")
    return card


def distill_loss(logits: torch.Tensor, x: torch.Tensor, catalog: torch.Tensor, buckets: torch.Tensor,
                 recipe: EncoderRecipe) -> torch.Tensor:
    """Cross-entropy against the encoder's own soft ranking of the catalog (softmax of cosines over
    its top products), summed into each repetition's buckets."""
    with torch.no_grad():
        v, i = (x @ catalog.T / recipe.distill_temperature).topk(min(recipe.distill_top, len(catalog)), dim=1)
        p = torch.softmax(v, dim=1)
        target = torch.zeros_like(logits)
        for r in range(recipe.R):
            target[:, r, :].scatter_add_(1, buckets[i, r], p)
    return -(target * torch.log_softmax(logits, dim=-1)).sum(dim=(1, 2)).mean()
