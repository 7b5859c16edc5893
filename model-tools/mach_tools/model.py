"""The MACH network: hashed features -> shared embedding -> all R heads as one linear layer."""
from __future__ import annotations

import torch
from torch import nn


class MachModel(nn.Module):
    """feature_ids [batch, L] int64 (0 = padding) -> probabilities [batch, R, B] (softmax over B).

    The input layer is a sparse linear map over hashed features: a gather of embedding rows, summed
    and divided by the number of non-padding ids (EmbeddingBag with padding_idx does not export to
    ONNX). Then ReLU, an optional hidden layer, and the R heads batched as one [H, R*B] matrix.
    """

    def __init__(self, dimension: int, hidden: int, repetitions: int, buckets: int,
                 hidden2: int = 0, padding_id: int = 0):
        super().__init__()
        self.R, self.B, self.padding_id = repetitions, buckets, padding_id
        self.embedding = nn.Embedding(dimension, hidden)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.hidden = nn.Linear(hidden, hidden2) if hidden2 else None
        self.heads = nn.Linear(hidden2 or hidden, repetitions * buckets)

    def logits(self, feature_ids: torch.Tensor) -> torch.Tensor:
        mask = (feature_ids != self.padding_id).to(self.embedding.weight.dtype)
        summed = (self.embedding(feature_ids) * mask.unsqueeze(-1)).sum(dim=1)
        count = mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        return self.head_logits(summed / count)

    def head_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """[batch, H] mean feature embedding -> [batch, R, B] logits (shared by training's fast path)."""
        h = torch.relu(pooled + self.bias)
        if self.hidden is not None:
            h = torch.relu(self.hidden(h))
        return self.heads(h).view(-1, self.R, self.B)

    def forward(self, feature_ids: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(feature_ids), dim=-1)
