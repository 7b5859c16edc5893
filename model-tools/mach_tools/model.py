"""The MACH network: hashed features -> input layer (mean of feature embeddings) -> all R heads as
one linear layer.

The input layer is one of three kinds (docs/embeddings.md):
- uniform: one D x H table (the default);
- mixed: mixed-dimension blocks (Ginart et al. 2019): ids partitioned by training frequency, block i
  a table of width d_i projected up to H; the id -> row mapping is an int32 table in the graph;
- qr: quotient-remainder compositional embedding (Shi et al. 2019): Q[id // m] * R[id % m].
Every kind computes the masked sum of its rows' H-wide embeddings; MachModel divides by the count.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INIT_STD = 0.1
# A sparse update: (index of the table in sparse_tables(), rows touched, gradient-carrying sub-table).
SparseUpdate = Tuple[int, torch.Tensor, torch.Tensor]


def _bag_sums(values: torch.Tensor, bag_starts: torch.Tensor) -> torch.Tensor:
    """[N, w] per-id embeddings -> [bags, w] sums per bag (bags given by start offsets)."""
    n = torch.arange(values.shape[0], device=values.device)
    return F.embedding_bag(n, values, bag_starts, mode="sum")


class UniformInput(nn.Module):
    kind = "uniform"

    def __init__(self, dimension: int, hidden: int):
        super().__init__()
        self.D, self.H = dimension, hidden
        self.weight = nn.Parameter(torch.empty(dimension, hidden).normal_(std=INIT_STD))

    def sparse_tables(self) -> List[nn.Parameter]:
        return [self.weight]

    def masked_sum(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (F.embedding(ids, self.weight) * mask.unsqueeze(-1)).sum(dim=1)

    def train_sum(self, flat: torch.Tensor, bag_starts: torch.Tensor):
        """Training path: gathers only the batch's distinct rows, so backward yields a small dense
        gradient for them (applied by a lazy row optimizer)."""
        rows, inverse = torch.unique(flat, return_inverse=True)
        sub = self.weight.detach()[rows].requires_grad_()
        return F.embedding_bag(inverse, sub, bag_starts, mode="sum"), [(0, rows, sub)]

    def card(self) -> dict:
        return {"kind": self.kind, "rows": self.D, "width": self.H}


# ---------------------------------------------------------------- mixed-dimension blocks

def mixed_plan(counts: np.ndarray, hidden: int, blocks: int = 4, alpha: float = 0.5,
               budget_bytes: Optional[int] = None, min_width: int = 1, drop_unseen: bool = False) -> dict:
    """The block layout, a pure function of the per-id frequency table `counts` [D].

    Ids are ranked by count (descending, ties by id) and cut into `blocks` contiguous rank ranges
    ending at ranks ..., D/16, D/4, D (blocks=4: D/64, 3D/64, 3D/16, 3D/4 rows), so the
    rare and unseen ids, the bulk of a hashed feature space, sit in the narrow last block.
    With drop_unseen the blocks end at the last id seen in training: an unseen id gets no row and
    adds nothing (training never moved its row anyway), and its bytes go to the seen ids' widths.
    Block i's width is d_i = lambda * p_i^alpha, capped at H, with p_i the mean count of its ids:
    lambda makes the most frequent block H wide, or, with budget_bytes, is the largest value whose
    input layer (tables + projections + the int32 id table) fits the budget.
    """
    counts = np.asarray(counts, dtype=np.int64)
    D = len(counts)
    if blocks < 1 or blocks > D:
        raise ValueError(f"blocks must be between 1 and D={D}, got {blocks}")
    order = np.lexsort((np.arange(D), -counts))  # rank -> id
    ends = []
    for j in range(blocks):
        e = max(D >> min(62, 2 * (blocks - 1 - j)), (ends[-1] if ends else 0) + 1)
        ends.append(min(e, D - (blocks - 1 - j)))  # at least one row per block
    if drop_unseen:
        seen = int((counts > 0).sum())
        if seen < blocks:
            raise ValueError(f"only {seen} ids occur in the training set: too few for {blocks} blocks")
        # both sequences rise strictly and end at >= j + 1, so their minimum does too: blocks stay
        # contiguous and non-empty, and the last one ends at `seen`
        ends = [min(e, seen - (blocks - 1 - j)) for j, e in enumerate(ends)]
    starts = [0] + ends[:-1]
    sizes = [e - s for s, e in zip(starts, ends)]
    pop = np.array([max(counts[order[s:e]].mean(), 1e-3) for s, e in zip(starts, ends)])  # unseen: tiny

    def widths(lam: float) -> List[int]:
        return [int(min(hidden, max(min_width, round(lam * p ** alpha)))) for p in pop]

    def nbytes(ws: Sequence[int]) -> int:
        return mixed_bytes(sizes, ws, hidden, D)

    lam_full = hidden / pop[0] ** alpha
    if budget_bytes is None:
        ws = widths(lam_full)
    else:
        if nbytes(widths(0.0)) > budget_bytes:
            raise ValueError(f"budget {budget_bytes} bytes is below the smallest mixed layout "
                             f"({nbytes(widths(0.0))} bytes with width {min_width} everywhere)")
        lo, hi = 0.0, hidden / pop.min() ** alpha + 1.0  # widths(hi) is H everywhere
        for _ in range(100):  # bisection on lambda; widths are monotone in it
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if nbytes(widths(mid)) <= budget_bytes else (lo, mid)
        ws = widths(lo)
    return {"order": order, "starts": starts, "sizes": sizes, "widths": ws,
            "mean_counts": [float(p) for p in pop], "alpha": alpha, "budget_bytes": budget_bytes,
            "bytes": nbytes(ws), "unseen_rows": D - ends[-1]}


def mixed_bytes(sizes: Sequence[int], widths: Sequence[int], hidden: int, dimension: int) -> int:
    """float32 tables + projections (none for a full-width block) + the int32 id -> rank table."""
    return 4 * sum(n * w + (w * hidden if w < hidden else 0) for n, w in zip(sizes, widths)) + 4 * dimension


class MixedInput(nn.Module):
    """Block i holds the ids of rank [start_i, start_i + n_i): its rows are d_i wide, projected to H by
    a d_i x H matrix. In the graph: rank = rank_of[id] (an int32 initializer), then per block
    local = clip(rank - start_i, 0, n_i - 1), member = (local == rank - start_i)."""
    kind = "mixed"

    def __init__(self, plan: dict, hidden: int):
        super().__init__()
        order = plan["order"]
        self.D, self.H = len(order), hidden
        rank_of = np.empty(self.D, dtype=np.int32)
        rank_of[order] = np.arange(self.D, dtype=np.int32)
        self.register_buffer("rank_of", torch.from_numpy(rank_of))
        self.starts, self.sizes, self.widths = list(plan["starts"]), list(plan["sizes"]), list(plan["widths"])
        self.plan_facts = {k: plan[k] for k in ("mean_counts", "alpha", "budget_bytes", "unseen_rows")}
        self.tables = nn.ParameterList(
            [nn.Parameter(torch.empty(n, w).normal_(std=INIT_STD)) for n, w in zip(self.sizes, self.widths)])
        # Projections keep a row's H-wide image at the uniform table's scale (std ~ INIT_STD).
        self.projections = nn.ParameterList(
            [nn.Parameter(torch.empty(w, hidden).normal_(std=1 / math.sqrt(w))) for w in self.widths if w < hidden])

    def sparse_tables(self) -> List[nn.Parameter]:
        return list(self.tables)

    @torch.no_grad()
    def fix_projection_norms(self) -> None:
        """Every projection row back to length sqrt(H / d_i), its expected length at the random start
        (--proj-norm fixed). Why: a row's length scales how far the rows of its block move in H-space
        per Adam step; left free (proj lr 0.0003, 4 epochs) they grew ~2x, so the narrow rows trained
        twice as fast as the uniform table's rows (and that run overfit). Fixed, they only rotate."""
        for p in self.projections:
            p.mul_(math.sqrt(self.H / p.shape[0]) / p.norm(dim=1, keepdim=True).clamp_min(1e-12))

    def _project(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if self.widths[i] == self.H:
            return x
        return x @ self.projections[sum(1 for w in self.widths[:i] if w < self.H)]

    def _locate(self, ids: torch.Tensor, i: int):
        rel = self.rank_of[ids] - self.starts[i]
        local = rel.clamp(0, self.sizes[i] - 1)
        return local.long(), local == rel

    def masked_sum(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        total = None
        for i, table in enumerate(self.tables):
            local, member = self._locate(ids, i)
            m = mask * member.to(mask.dtype)
            part = self._project(i, (F.embedding(local, table) * m.unsqueeze(-1)).sum(dim=1))
            total = part if total is None else total + part
        return total

    def train_sum(self, flat: torch.Tensor, bag_starts: torch.Tensor):
        total, updates = None, []
        for i, table in enumerate(self.tables):
            local, member = self._locate(flat.long(), i)
            pos = member.nonzero().squeeze(1)
            if len(pos) == 0:
                continue
            rows, inverse = torch.unique(local[pos], return_inverse=True)
            sub = table.detach()[rows].requires_grad_()
            index = torch.zeros_like(flat, dtype=torch.long)
            index[pos] = inverse
            weight = member.to(sub.dtype)  # non-members point at row 0 with weight 0
            part = F.embedding_bag(index, sub, bag_starts, mode="sum", per_sample_weights=weight)
            part = self._project(i, part)
            total = part if total is None else total + part
            updates.append((i, rows, sub))
        if total is None:
            total = torch.zeros(len(bag_starts), self.H, device=flat.device)
        return total, updates

    def card(self) -> dict:
        return {"kind": self.kind, "rows": self.D, "width": self.H,
                "blocks": [{"rows": n, "width": w, "projected": w < self.H, "mean_count": round(c, 3)}
                           for n, w, c in zip(self.sizes, self.widths, self.plan_facts["mean_counts"])],
                "alpha": self.plan_facts["alpha"], "budget_bytes": self.plan_facts["budget_bytes"],
                "unseen_ids": self.plan_facts["unseen_rows"],  # ids ranked after every block: no row, add 0
                "id_table": "int32 rank per id; blocks are contiguous rank ranges in this order"}


# ---------------------------------------------------------------- quotient-remainder

def qr_bytes(dimension: int, hidden: int, m: int) -> int:
    return 4 * hidden * (-(-dimension // m) + m)


def qr_m_for_budget(dimension: int, hidden: int, budget_bytes: int) -> int:
    """The largest m (fewest ids sharing a remainder row) whose two tables fit the budget."""
    lo = max(2, int(math.isqrt(dimension)))
    if qr_bytes(dimension, hidden, lo) > budget_bytes:
        raise ValueError(f"budget {budget_bytes} bytes is below the smallest quotient-remainder layout "
                         f"({qr_bytes(dimension, hidden, lo)} bytes at m={lo})")
    hi = dimension - 1
    while lo < hi:  # bytes grow with m above sqrt(D)
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if qr_bytes(dimension, hidden, mid) <= budget_bytes else (lo, mid - 1)
    return lo


class QRInput(nn.Module):
    """embedding(id) = Q[id // m] * R[id % m] (element-wise): every id < D gets a distinct pair of
    rows, the width stays H, so no projection is needed. Q starts near 1, so training starts from
    R alone (ids sharing a remainder share a row) and Q learns to tell them apart."""
    kind = "qr"

    def __init__(self, dimension: int, hidden: int, m: int):
        super().__init__()
        if not 2 <= m < dimension:
            raise ValueError(f"m must be between 2 and D-1={dimension - 1}, got {m}")
        self.D, self.H, self.m = dimension, hidden, m
        self.q = nn.Parameter(torch.empty(-(-dimension // m), hidden).normal_(mean=1.0, std=INIT_STD))
        self.r = nn.Parameter(torch.empty(m, hidden).normal_(std=INIT_STD))

    def sparse_tables(self) -> List[nn.Parameter]:
        return [self.q, self.r]

    def _split(self, ids: torch.Tensor):
        q = torch.div(ids, self.m, rounding_mode="trunc")  # ids >= 0: trunc = floor; ONNX Div
        return q, ids - q * self.m

    def masked_sum(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, r = self._split(ids)
        return (F.embedding(q, self.q) * F.embedding(r, self.r) * mask.unsqueeze(-1)).sum(dim=1)

    def train_sum(self, flat: torch.Tensor, bag_starts: torch.Tensor):
        q, r = self._split(flat.long())
        qrows, qinv = torch.unique(q, return_inverse=True)
        rrows, rinv = torch.unique(r, return_inverse=True)
        qsub = self.q.detach()[qrows].requires_grad_()
        rsub = self.r.detach()[rrows].requires_grad_()
        return _bag_sums(qsub[qinv] * rsub[rinv], bag_starts), [(0, qrows, qsub), (1, rrows, rsub)]

    def card(self) -> dict:
        return {"kind": self.kind, "rows": self.D, "width": self.H, "m": self.m, "combine": "multiply",
                "tables": [{"rows": self.q.shape[0], "index": "id // m"}, {"rows": self.m, "index": "id % m"}]}


def input_bytes(layer: nn.Module) -> int:
    """Bytes of the input layer's parameters and buffers (what it adds to model.onnx)."""
    return sum(t.numel() * t.element_size() for t in list(layer.parameters()) + list(layer.buffers()))


class MachModel(nn.Module):
    """feature_ids [batch, L] int64 (0 = padding) -> probabilities [batch, R, B] (softmax over B).

    The input layer gathers feature embeddings, sums them and divides by the number of non-padding
    ids (EmbeddingBag with padding_idx does not export to ONNX). Then ReLU, an optional hidden
    layer, and the R heads batched as one [H, R*B] matrix.
    """

    def __init__(self, dimension: int, hidden: int, repetitions: int, buckets: int,
                 hidden2: int = 0, padding_id: int = 0, input_layer: Optional[nn.Module] = None):
        super().__init__()
        self.R, self.B, self.H, self.padding_id = repetitions, buckets, hidden, padding_id
        self.input_layer = input_layer if input_layer is not None else UniformInput(dimension, hidden)
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.hidden = nn.Linear(hidden, hidden2) if hidden2 else None
        self.heads = nn.Linear(hidden2 or hidden, repetitions * buckets)

    def logits(self, feature_ids: torch.Tensor) -> torch.Tensor:
        mask = (feature_ids != self.padding_id).to(self.bias.dtype)
        summed = self.input_layer.masked_sum(feature_ids, mask)
        count = mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        return self.head_logits(summed / count)

    def train_logits(self, flat_ids: torch.Tensor, bag_starts: torch.Tensor):
        """Training forward pass over a flat batch (bags given by start offsets, no padding): same
        function as logits() on the padded batch; also returns the sparse updates to apply."""
        summed, updates = self.input_layer.train_sum(flat_ids, bag_starts)
        ends = torch.cat([bag_starts[1:], torch.tensor([len(flat_ids)], device=bag_starts.device)])
        count = (ends - bag_starts).clamp(min=1).to(summed.dtype).unsqueeze(1)
        return self.head_logits(summed / count), updates

    def head_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """[batch, H] mean feature embedding -> [batch, R, B] logits."""
        h = torch.relu(pooled + self.bias)
        if self.hidden is not None:
            h = torch.relu(self.hidden(h))
        return self.heads(h).view(-1, self.R, self.B)

    def forward(self, feature_ids: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(feature_ids), dim=-1)

    def sizes(self) -> dict:
        """Input-layer and whole-network bytes (float32 parameters, int32 id tables)."""
        total = sum(t.numel() * t.element_size() for t in list(self.parameters()) + list(self.buffers()))
        return {"input_layer_bytes": input_bytes(self.input_layer), "model_bytes": total}

    def input_card(self) -> dict:
        return {**self.input_layer.card(), "bytes": input_bytes(self.input_layer)}


class EncoderHeads(nn.Module):
    """The MACH heads of an encoder bundle: embedding [batch, E] (the sentence encoder's pooled,
    L2-normalized vector) -> probabilities [batch, R, B], all R heads as one [E, R*B] matrix
    (optionally after one ReLU hidden layer).

    init_from_catalog sets each bucket's weights to the normalized mean of its products' vectors
    divided by a temperature: with no training at all the heads then score a query by its cosine to
    the bucket's members, a count-min sketch of the encoder's view of the catalog."""

    def __init__(self, dimension: int, repetitions: int, buckets: int, hidden: int = 0):
        super().__init__()
        self.E, self.R, self.B, self.H = dimension, repetitions, buckets, hidden or dimension
        self.hidden = nn.Linear(dimension, hidden) if hidden else None
        self.heads = nn.Linear(hidden or dimension, repetitions * buckets)
        nn.init.normal_(self.heads.weight, std=0.01)
        nn.init.zeros_(self.heads.bias)

    @torch.no_grad()
    def init_from_catalog(self, product_vectors: torch.Tensor, buckets: torch.Tensor, temperature: float) -> None:
        """product_vectors [K, E], buckets [K, R] (bucket of each product per repetition)."""
        if self.hidden is not None:
            raise ValueError("catalog initialization needs heads directly on the embedding (no hidden layer)")
        for r in range(self.R):
            c = torch.zeros(self.B, self.E).index_add_(0, buckets[:, r], product_vectors.float())
            self.heads.weight[r * self.B:(r + 1) * self.B] = F.normalize(c, dim=1) / temperature

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        h = embedding if self.hidden is None else torch.relu(self.hidden(embedding))
        return self.heads(h).view(-1, self.R, self.B)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(embedding), dim=-1)

    def sizes(self) -> dict:
        return {"model_bytes": sum(t.numel() * t.element_size() for t in self.parameters())}
