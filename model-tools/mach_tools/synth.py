"""Synthetic catalog + query log: a small shop where queries use synonyms the titles never contain.

Each product is (brand, color, category) plus a material and a model code. Queries either reuse
title words ("acme red sofa") or say the same thing with synonyms ("crimson couch"), which lexical
search cannot match but a model trained on the query log can. Synonym combinations are split
between the training log and the held-out judgments, so the held-out set measures generalization.
"""
from __future__ import annotations

import os
import random
from typing import Dict, List, Tuple

BRANDS = ["acme", "zenith", "nordic", "apex", "summit", "harbor", "pioneer", "vertex", "cobalt",
          "meridian", "orion", "atlas"]
COLORS: Dict[str, List[str]] = {
    "red": ["crimson", "scarlet"], "blue": ["navy", "azure"], "green": ["emerald", "olive"],
    "black": ["ebony", "jet"], "white": ["ivory", "snowy"], "gray": ["slate", "charcoal"],
    "yellow": ["golden", "amber"], "brown": ["walnut", "chestnut"],
}
CATEGORIES: Dict[str, List[str]] = {
    "sofa": ["couch", "settee"], "refrigerator": ["fridge", "icebox"], "faucet": ["tap", "spigot"],
    "lamp": ["lantern", "luminaire"], "rug": ["carpet", "doormat"], "sneakers": ["trainers", "kicks"],
    "trousers": ["pants", "slacks"], "sweater": ["jumper", "pullover"], "backpack": ["rucksack", "knapsack"],
    "stroller": ["pram", "buggy"], "wrench": ["spanner", "grips"], "flashlight": ["torch", "beam"],
}
MATERIALS = ["oak", "steel", "cotton", "leather", "plastic", "wool", "bamboo", "aluminum"]


def generate(n_products: int = 300, seed: int = 42, heldout: float = 0.3):
    """Returns (products [(id, title)], train pairs [(query, id)], heldout judgments [(query, id, rel)])."""
    rng = random.Random(seed)
    combos = [(b, c, k) for b in BRANDS for c in COLORS for k in CATEGORIES]
    if n_products > len(combos):
        raise ValueError(f"at most {len(combos)} synthetic products")
    rng.shuffle(combos)
    products, attrs = [], []
    for i, (b, c, k) in enumerate(sorted(combos[:n_products])):
        model = rng.choice("ABCDEFGHKMNPRSTVX") + str(rng.randint(10, 99))
        material = rng.choice(MATERIALS)
        pid = f"P{i:05d}"
        products.append((pid, f"{b.title()} {c.title()} {material.title()} {k.title()} {model}"))
        attrs.append((pid, b, c, k, material, model))

    def ids(pred) -> List[str]:
        return [a[0] for a in attrs if pred(a)]

    train: List[Tuple[str, str]] = []
    held: List[Tuple[str, str, float]] = []
    # Lexical queries (title words): training only.
    for pid, b, c, k, m, model in attrs:
        train.append((f"{b} {k}", pid))
        train.append((f"{k} {model.lower()}", pid))
    for c in COLORS:
        for k in CATEGORIES:
            for pid in ids(lambda a: a[2] == c and a[3] == k):
                train.append((f"{c} {k}", pid))
    # Synonym queries: each (color synonym, category synonym) pair goes to train or held-out.
    for c, csyns in COLORS.items():
        for k, ksyns in CATEGORIES.items():
            matches = ids(lambda a: a[2] == c and a[3] == k)
            if not matches:
                continue
            for cs in csyns:
                for ks in ksyns:
                    q = f"{cs} {ks}"
                    if rng.random() < heldout:
                        held.extend((q, pid, 1.0) for pid in matches)
                    else:
                        train.extend((q, pid) for pid in matches)
    # Brand + category synonym: "acme couch".
    for pid, b, c, k, m, model in attrs:
        for ks in CATEGORIES[k]:
            q = f"{b} {ks}"
            if rng.random() < heldout:
                held.append((q, pid, 1.0))
            else:
                train.append((q, pid))
    rng.shuffle(train)
    return products, train, held


def write(out_dir: str, n_products: int = 300, seed: int = 42) -> Dict[str, str]:
    products, train, held = generate(n_products, seed)
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name)
             for name in ("products.tsv", "queries.tsv", "judgments-dev.tsv")}
    with open(paths["products.tsv"], "w", encoding="utf-8") as f:
        f.write("product_id\ttitle\n")
        f.writelines(f"{p}\t{t}\n" for p, t in products)
    with open(paths["queries.tsv"], "w", encoding="utf-8") as f:
        f.write("query\tproduct_id\n")
        f.writelines(f"{q}\t{p}\n" for q, p in train)
    with open(paths["judgments-dev.tsv"], "w", encoding="utf-8") as f:
        f.write("query\tproduct_id\trelevance\n")
        f.writelines(f"{q}\t{p}\t{r:g}\n" for q, p, r in held)
    return paths
