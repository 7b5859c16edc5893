"""Training MACH heads over a frozen sentence encoder (bundle format 2).

Every training text (product titles and other fields as pseudo-queries, the query log's queries) is
embedded once by the encoder the bundle ships (cached on disk); the R heads then train on those
vectors: an epoch over ~100k examples takes seconds on a CPU.

The heads start as a sketch of the catalog (EncoderHeads.init_from_catalog: each bucket is the
normalized mean of its products' title vectors over a temperature), so the untrained model already
ranks like the encoder's cosine; training on the log then teaches it which products a shop's
queries lead to. Optionally (distill > 0) each example also learns the encoder's own soft ranking
of the catalog, summed into buckets: the dense retriever's view, compressed into R x B heads.

heads "fit" (spec/bundle-format.md, "aggregation"): the heads are instead fitted by least squares so
that mean_r C_r[h_r(k)] reproduces each product's vector P_k; with the card's "log_mean" estimator
MACH's score is then the encoder's cosine up to a per-query constant (exact when R*B >= K), in
R x B x d memory. tune_epochs > 0 first fine-tunes the query tower (the fp32 encoder, in torch,
mach_tools.bert) on the query log against the frozen catalog vectors; the bundle ships the tuned graph.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mach_tools.bundle import sha256_file, write_encoder_bundle
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
    temperature: Optional[float] = None  # sketch: bucket weights = normalized centroid / temperature (0.2);
    #                                      fit: logit scale (None: picked so a query's logit spread is ~15)
    heads: str = "sketch"         # "sketch" (aggregation mean) or "fit" (least squares, aggregation log_mean)
    fit_sweeps: int = 8           # block coordinate sweeps of the fit (each: one pass over the R repetitions)
    tune_epochs: int = 0          # fine-tune the query tower on the pairs first (0 = frozen encoder)
    tune_lr: float = 3e-5
    tune_batch: int = 64          # queries per step
    tune_temperature: float = 0.05  # full-catalog softmax of the tuning loss
    tune_min_relevance: float = 2.0  # pairs below this relevance are not tuning targets
    tune_pseudo_queries: int = 0  # per product and tuning epoch: title spans whose target is the product
    init: str = "catalog"         # or "random"
    product_fields: str = "title"  # "title": the first text field; "all": every field is a pseudo-query
    catalog_vectors: str = "title"  # a product's catalog vector: "title", or "title+text" (see catalog_vectors)
    noise: float = 0.0            # std of Gaussian noise added to each training vector (then renormalized)
    min_relevance: float = 0.0
    pair_weight: str = "relevance"  # or "uniform"
    title_weight: float = 1.0     # weight of a product's own text against a logged query (1.0 = equal)
    distill: float = 0.0          # weight of the encoder-teacher loss (0 = off)
    distill_temperature: float = 0.05
    distill_top: int = 64
    seed: int = 13
    threads: int = 2


CATALOG_VECTORS = ("title", "title+text")


def catalog_vectors(encoder, catalog: Catalog, mode: str, progress: bool) -> np.ndarray:
    """[K, d] unit vectors that stand for the products (the sketch's centroids, the fit's targets, the
    tuning's frozen side). "title": the title's embedding. "title+text": the normalized mean of the
    title's embedding and the embedding of all the product's text fields joined (the encoder reads its
    first max_tokens word pieces: the title, then bullets or description), so the title keeps its
    weight and the rest adds what it says (ESCI dev, docs/relevance.md)."""
    if mode not in CATALOG_VECTORS:
        raise UserError(f"--catalog-vectors must be one of {', '.join(CATALOG_VECTORS)}, got {mode!r}")
    titles = [catalog.title(k) for k in range(len(catalog))]
    vecs = encoder.embed(titles, progress=progress, desc="embedding catalog titles")
    if mode == "title+text":
        full = encoder.embed([catalog.text(k) for k in range(len(catalog))], progress=progress,
                             desc="embedding catalog texts")
        vecs = vecs + full
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    return vecs.astype(np.float32)


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


SKETCH_TEMPERATURE = 0.2
# The log_mean floor keeps 7 decades (ln 1e7 ~ 16.1) of each repetition's probabilities: a fitted
# model's temperature keeps typical queries' logit spread below that, so the floor never binds.
FIT_LOGIT_SPREAD = 15.0


class TorchTower:
    """The fine-tuned query tower as an embedder (mach_tools.bert; the ONNX graph written from it
    gives the same vectors within ~1e-7)."""

    def __init__(self, bert, tokenizer):
        self.bert, self.tokenizer = bert, tokenizer

    def embed(self, texts: Sequence[str], progress: bool = False, desc: str = "embed") -> np.ndarray:
        from mach_tools.bert import embed_texts
        return embed_texts(self.bert, self.tokenizer, list(texts)).numpy()


def heads_predictor(heads: EncoderHeads, encoder):
    def predict(texts: Sequence[str]) -> np.ndarray:
        x = torch.from_numpy(encoder.embed(list(texts)))
        with torch.no_grad():
            return heads(x).numpy()
    return predict


def fit_heads(vectors: torch.Tensor, buckets: torch.Tensor, B: int, sweeps: int, log=None) -> tuple:
    """Least-squares heads: C [R, B, E] minimizing sum_k ||mean_r C_r[h_r(k)] - P_k||^2, by block
    coordinate descent from the catalog sketch. Each product sits in one bucket per repetition, so with
    the other repetitions fixed, repetition r's optimal buckets are the means of
    R * P_k - sum_{r' != r} C_r'[h_r'(k)] over their members (an empty bucket stays a zero vector).
    Returns (C, history of {"sweep", "mse", "cosine"})."""
    P = vectors.float()
    K, E = P.shape
    R = buckets.shape[1]
    counts = torch.stack([torch.bincount(buckets[:, r], minlength=B).float() for r in range(R)])
    C = torch.stack([F.normalize(torch.zeros(B, E).index_add_(0, buckets[:, r], P), dim=1) for r in range(R)])
    total = torch.zeros(K, E)
    for r in range(R):
        total += C[r][buckets[:, r]]

    def record(sweep):
        v = total / R
        rec = {"sweep": sweep, "mse": round(float(((v - P) ** 2).sum(1).mean()), 6),
               "cosine": round(float(F.cosine_similarity(v, P, dim=1).mean()), 6)}
        if log:
            log(f"fit sweep {sweep}: reconstruction mse {rec['mse']:.4f}, mean cosine {rec['cosine']:.4f}")
        return rec

    history = [record(0)]
    for sweep in range(1, sweeps + 1):
        for r in range(R):
            total -= C[r][buckets[:, r]]
            C[r] = torch.zeros(B, E).index_add_(0, buckets[:, r], R * P - total) / counts[r][:, None].clamp(min=1)
            total += C[r][buckets[:, r]]
        history.append(record(sweep))
    return C, history


def fit_temperature(C: torch.Tensor, queries: torch.Tensor) -> float:
    """A logit scale that keeps the 95th percentile, over typical queries and repetitions, of a
    repetition's logit spread (max_b - min_b of q . C_r[b] / T) at FIT_LOGIT_SPREAD."""
    with torch.no_grad():
        lg = torch.einsum("qe,rbe->qrb", queries.float(), C)
        spread = (lg.max(-1).values - lg.min(-1).values).flatten()
    return max(float(torch.quantile(spread, 0.95)) / FIT_LOGIT_SPREAD, 1e-6)


def dense_metrics(Q: torch.Tensor, P: torch.Tensor, labels: Sequence[str], dev: Dict[str, Dict[str, float]],
                  gain_offset: float, relevant_min: float) -> Dict[str, float]:
    """The query tower against the catalog vectors, exact cosine ranking: the dev metrics of tuning."""
    from mach_tools import metrics as M
    from mach_tools.decode import top_k
    per = []
    for s in range(0, len(Q), 256):
        idx, _ = top_k((Q[s:s + 256] @ P.T).numpy(), 100)
        for row, q in zip(idx, list(dev)[s:s + 256]):
            per.append(M.query_metrics([labels[i] for i in row], dev[q], gain_offset, relevant_min))
    return M.aggregate(per)


def tuning_examples(catalog: Catalog, pairs: Optional[Pairs], recipe: EncoderRecipe, gain_offset: float):
    """The query tower's fixed examples: each logged query with its judged products as soft targets
    (gain relevance - gain_offset, pairs at or above tune_min_relevance). Returns {query: [(k, gain)]}."""
    index = catalog.index()
    groups: Dict[str, List[tuple]] = {}
    if pairs is not None:
        for q, p, rel in zip(pairs.queries, pairs.product_ids, pairs.relevance):
            gain = rel - gain_offset
            if q.strip() and p in index and rel >= recipe.tune_min_relevance and gain > 0:
                groups.setdefault(q, []).append((index[p], gain))
    return groups


def pseudo_queries(catalog: Catalog, per_product: int, rng: random.Random) -> List[tuple]:
    """per_product pseudo-queries of every product with a title: a contiguous span or an ordered subset
    of the title's words with word dropout (the hashed trainer's augmentation, train._span), each
    targeting its product alone. Drawn afresh every epoch. Returns [(text, [(k, 1.0)])]."""
    from mach_tools.train import Recipe, _span
    spans = Recipe()
    out = []
    for k in range(len(catalog)):
        words = catalog.title(k).split()
        for _ in range(per_product if words else 0):
            out.append((" ".join(_span(words, rng, spans)), [(k, 1.0)]))
    return out


def tune_query_tower(bert, tokenizer, P: torch.Tensor, catalog: Catalog, pairs: Optional[Pairs],
                     recipe: EncoderRecipe, dev, gain_offset: float, relevant_min: float, progress: bool,
                     log) -> List[dict]:
    """Fine-tunes `bert` (in place) so that a query's embedding ranks its products first among the
    frozen catalog vectors P: the logged queries (tuning_examples) and, with tune_pseudo_queries,
    pseudo-queries from the product titles (pseudo_queries: a catalog without a query log can tune
    too); full-catalog softmax at tune_temperature against the normalized targets, AdamW with 50
    warm-up steps then linear decay; word embeddings frozen.
    Returns the history: per epoch the loss and (with dev) the dense dev metrics."""
    from mach_tools.bert import embed_texts, token_batch
    groups = tuning_examples(catalog, pairs, recipe, gain_offset)
    logged = list(groups.items())
    if not logged and not recipe.tune_pseudo_queries:
        raise UserError(f"--tune-query-encoder: no pair has relevance >= {recipe.tune_min_relevance} and a "
                        f"positive gain (relevance - {gain_offset:g}), and no --tune-pseudo-queries")
    n_pseudo = recipe.tune_pseudo_queries * sum(1 for k in range(len(catalog)) if catalog.title(k))
    if not logged and not n_pseudo:
        raise UserError("--tune-pseudo-queries: no product has a title to draw pseudo-queries from")
    rng = random.Random(recipe.seed)
    for prm in bert.word.parameters():
        prm.requires_grad = False
    opt = torch.optim.AdamW([p for p in bert.parameters() if p.requires_grad], lr=recipe.tune_lr, weight_decay=0.01)
    per_epoch = (len(logged) + n_pseudo + recipe.tune_batch - 1) // recipe.tune_batch
    steps = recipe.tune_epochs * per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / steps))
    dev_q = list(dev) if dev else []

    def record(epoch, loss, secs):
        rec = {"epoch": epoch, "loss": loss, "seconds": round(secs, 1)}
        if dev_q:
            rec["dev_dense"] = dense_metrics(embed_texts(bert, tokenizer, dev_q), P, catalog.ids, dev,
                                             gain_offset, relevant_min)
            log(f"query tower epoch {epoch}: " + (f"loss {loss:.4f}, {secs:.0f}s, " if loss is not None else "")
                + f"dense dev NDCG@10 {rec['dev_dense'].get('NDCG@10', 0):.4f} "
                  f"recall@100 {rec['dev_dense'].get('recall@100', 0):.4f}")
        return rec

    log(f"tuning the query tower on {len(logged)} logged queries and {n_pseudo} pseudo-queries per epoch, "
        f"{recipe.tune_epochs} epoch(s) of {per_epoch} steps")
    history = [record(0, None, 0.0)]
    bert.train()
    for epoch in range(1, recipe.tune_epochs + 1):
        t0 = time.time()
        examples = logged + (pseudo_queries(catalog, recipe.tune_pseudo_queries, rng) if n_pseudo else [])
        perm = np.random.RandomState(recipe.seed + epoch).permutation(len(examples))
        total = 0.0
        bar = progress_bar(range(0, len(examples), recipe.tune_batch), desc=f"tune {epoch}/{recipe.tune_epochs}",
                           unit="batch", enabled=progress, mininterval=2.0)
        for s in bar:
            batch = [examples[j] for j in perm[s:s + recipe.tune_batch]]
            target = torch.zeros(len(batch), len(P))
            for row, (_, products) in enumerate(batch):
                for k, g in products:
                    target[row, k] += g
            target /= target.sum(1, keepdim=True)
            logp = F.log_softmax(bert.embed(*token_batch(tokenizer, [q for q, _ in batch])) @ P.T
                                 / recipe.tune_temperature, -1)
            loss = -(target * logp).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(batch)
        history.append(record(epoch, total / len(examples), time.time() - t0))
        bert.train()
    bert.eval()
    return history


def fp32_source(encoder: SentenceEncoder, tune_from: Optional[str]) -> str:
    """The fp32 encoder.onnx the query tower is tuned from: --tune-from, the --encoder itself when fp32,
    else its fp32 sibling directory (all-minilm-l6-v2-q -> all-minilm-l6-v2)."""
    from mach_tools.bert import _param_map
    import onnx
    if tune_from:
        candidates = [tune_from if tune_from.endswith(".onnx") else os.path.join(tune_from, "encoder.onnx")]
    else:
        d = os.path.dirname(encoder.onnx_path)
        candidates = [encoder.onnx_path]
        if d.endswith("-q"):
            candidates.append(os.path.join(d[:-2], "encoder.onnx"))
    for c in candidates:
        if os.path.isfile(c):
            try:
                _param_map(onnx.load(c, load_external_data=False).graph)
                return c
            except ValueError:
                continue
    raise UserError("--tune-query-encoder needs the fp32 encoder graph (the int8 one cannot be fine-tuned); looked "
                    f"at {', '.join(candidates)}: give its directory with --tune-from DIR")


def train_encoder(catalog: Catalog, pairs: Optional[Pairs], recipe: EncoderRecipe, encoder: SentenceEncoder,
                  out_dir: str, name: str, dev: Optional[Dict[str, Dict[str, float]]] = None,
                  gain_offset: float = 1.0, relevant_min: float = 2.5, device: str = "auto", force: bool = False,
                  progress: bool = True, data_facts: Optional[dict] = None, log=print,
                  tune_from: Optional[str] = None) -> dict:
    if os.path.exists(out_dir) and not force:
        raise UserError(f"{out_dir} already exists (pass --force to replace it)")
    if recipe.heads not in ("sketch", "fit"):
        raise UserError(f"--heads must be sketch or fit, got {recipe.heads!r}")
    if recipe.heads == "fit" and (recipe.epochs or recipe.init != "catalog" or recipe.hidden or recipe.distill):
        raise UserError("--heads fit sets the heads by least squares: give --epochs 0 (training them by cross-entropy "
                        "afterwards is not supported) and no --init random, --hidden or --distill")
    if recipe.init == "catalog" and recipe.hidden:
        raise UserError("--init catalog needs heads directly on the embedding: use --hidden 0 or --init random")
    if recipe.tune_epochs and pairs is None and not recipe.tune_pseudo_queries:
        raise UserError("--tune-query-encoder needs --pairs (a query log) or --tune-pseudo-queries N")
    source = fp32_source(encoder, tune_from) if recipe.tune_epochs else None
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
    catalog_vecs = torch.from_numpy(catalog_vectors(encoder, catalog, recipe.catalog_vectors, progress))
    tower, tune_history, tuned_dir = encoder, None, None
    if source:
        from mach_tools.bert import from_onnx, write_onnx
        bert = from_onnx(source)
        t1 = time.time()
        tune_history = tune_query_tower(bert, encoder.tokenizer, catalog_vecs, catalog, pairs, recipe, dev,
                                        gain_offset, relevant_min, progress, log)
        tune_seconds = time.time() - t1
        tuned_dir = tempfile.mkdtemp(prefix="mach-tuned-encoder-")
        write_onnx(bert, source, os.path.join(tuned_dir, "encoder.onnx"))
        tuning = {"base": os.path.basename(os.path.dirname(source)), "base_sha256": sha256_file(source),
                  "catalog_vectors_sha256": encoder.sha256, "epochs": recipe.tune_epochs, "lr": recipe.tune_lr,
                  "batch": recipe.tune_batch, "temperature": recipe.tune_temperature,
                  "min_relevance": recipe.tune_min_relevance,
                  "pseudo_queries_per_product": recipe.tune_pseudo_queries, "seconds": round(tune_seconds, 1)}
        bundle_encoder = SentenceEncoder(os.path.join(tuned_dir, "encoder.onnx"), encoder.tokenizer,
                                         facts={"name": encoder.facts.get("name", "encoder"), "variant": "fp32-tuned",
                                                "tuning": tuning})
        tower = TorchTower(bert, encoder.tokenizer)
        X = torch.from_numpy(tower.embed(texts)) if recipe.epochs else None
    else:
        bundle_encoder = encoder
        # the dev queries with the training texts, in one batched pass (the cache then serves them)
        more = (texts if recipe.epochs else []) + (list(dev) if dev else [])
        embedded = encoder.embed(more, progress=progress, desc="embedding") if more else None
        X = torch.from_numpy(embedded[:len(texts)]) if recipe.epochs else None
    t_embed = time.time() - t0
    n = len(texts)
    log(f"training set: {n} examples ({counts}), embedded in {t_embed:.1f}s; device {dev_t}")

    heads = EncoderHeads(encoder.dimension, recipe.R, recipe.B, hidden=recipe.hidden)
    fit_history, temperature = None, recipe.temperature
    if recipe.heads == "fit":
        t1 = time.time()
        C, fit_history = fit_heads(catalog_vecs, bucket_t, recipe.B, recipe.fit_sweeps, log)
        if temperature is None:
            sample = torch.from_numpy(tower.embed(list(dev)[:512])) if dev else \
                catalog_vecs[torch.randperm(len(catalog_vecs))[:512]]
            temperature = fit_temperature(C, sample)
        with torch.no_grad():
            heads.heads.weight.copy_(C.reshape(recipe.R * recipe.B, -1) / temperature)
        log(f"heads fitted in {time.time() - t1:.1f}s; logit scale 1/{temperature:.4g}")
    elif recipe.init == "catalog":
        temperature = temperature or SKETCH_TEMPERATURE
        heads.init_from_catalog(catalog_vecs, bucket_t, temperature)
    aggregation = "log_mean" if recipe.heads == "fit" else "mean"
    heads = heads.to(dev_t)
    opt = torch.optim.Adam(heads.parameters(), lr=recipe.lr)
    y_all = bucket_t[torch.from_numpy(prods)]  # [n, R]
    w_all = torch.from_numpy(weights)
    teacher = catalog_vecs.to(dev_t) if recipe.distill > 0 else None
    predict = heads_predictor(heads, tower)

    history: List[dict] = []

    def dev_record(epoch: int, loss: Optional[float], secs: float) -> dict:
        rec = {"epoch": epoch, "loss_per_head": loss, "seconds": round(secs, 2)}
        if dev:
            heads.eval()
            rec["dev"] = evaluate_model(predict, catalog.ids, buckets, dev, gain_offset, relevant_min, aggregation)
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
        "recipe": {**asdict(recipe), "temperature": temperature}, "epochs": recipe.epochs, "encoder": encoder.facts,
        "heads": recipe.heads, "aggregation": aggregation,
        "device": str(dev_t), "torch_threads": torch.get_num_threads(),
        "embed_seconds": round(t_embed, 1), "train_seconds": round(train_seconds, 1), **heads.sizes(),
    }
    if fit_history:
        facts["fit"] = {"sweeps": fit_history, "temperature": temperature}
    if tune_history:
        facts["query_tower"] = {**bundle_encoder.facts["tuning"], "history": tune_history}
    if dev:
        facts["dev_metrics"] = history[-1]["dev"]
        facts["dev_conventions"] = {"gain_offset": gain_offset, "relevant_min": relevant_min}
    rng = random.Random(recipe.seed)
    parity_texts = list(dict.fromkeys(
        (rng.sample(pairs.queries, min(3, len(pairs.queries))) if pairs is not None and pairs.queries else [])
        + [catalog.title(k) for k in rng.sample(range(len(catalog)), min(3, len(catalog)))]
        + ["Ünïcode ﬁ ½ test — 42", "北京 crème brûlée"]))[:8]
    try:
        with tempfile.TemporaryDirectory() as td:
            mpath = os.path.join(td, "metrics.json")
            with open(mpath, "w", encoding="utf-8") as f:
                json.dump({"history": history, **{k: v for k, v in facts.items() if k != "recipe"}}, f, indent=1)
            extra = {"metrics.json": mpath}
            ppath = os.path.join(td, "training-curve.png")
            curve = [h for h in history if h["loss_per_head"] is not None]
            if curve and plot_history(curve, ppath, name):
                extra["training-curve.png"] = ppath
            elif tune_history and plot_tuning(tune_history, ppath, name):
                extra["training-curve.png"] = ppath
            card = write_encoder_bundle(out_dir, heads, name, catalog.ids, bundle_encoder, ph, parity_texts, facts,
                                        extra_files=extra, force=force, aggregation=aggregation)
    finally:
        if tuned_dir:
            shutil.rmtree(tuned_dir, ignore_errors=True)
    log(f"wrote {out_dir} ({bundle_bytes(out_dir) / 1e6:.1f} MB)")
    return card


def plot_tuning(history: List[dict], path: str, name: str) -> bool:
    """The query tower's loss and dense dev NDCG@10 per epoch (False when matplotlib is missing)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ep = [h["epoch"] for h in history if h["loss"] is not None]
    ax.plot(ep, [h["loss"] for h in history if h["loss"] is not None], "o-", label="tuning loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if "dev_dense" in history[0]:
        ax2 = ax.twinx()
        ax2.plot([h["epoch"] for h in history], [h["dev_dense"].get("NDCG@10", 0) for h in history], "s--", color="C1",
                 label="dense dev NDCG@10")
        ax2.set_ylabel("dense dev NDCG@10")
    ax.set_title(f"{name}: query tower")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


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
