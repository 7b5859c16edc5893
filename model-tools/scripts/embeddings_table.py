"""Markdown rows for docs/embeddings.md: one bundle per argument, each with its `evaluate --out` JSON
next to it as <bundle>-eval.json or given as BUNDLE=EVAL.json.
  usage: python3 scripts/embeddings_table.py /work/models/emb-uniform=/work/runs/emb/uniform-eval.json ...
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mach_tools.bundle import load_card, sizes  # noqa: E402


def row(bundle: str, eval_json: str, base: dict) -> str:
    card = load_card(bundle)
    sz = sizes(bundle, card)
    layer = card.get("input_layer", {"kind": "uniform"})
    if layer["kind"] == "mixed":
        what = "mixed, widths " + "/".join(str(b["width"]) for b in layer["blocks"])
        recipe = card.get("training", {}).get("recipe", {})
        # bundles from before --proj-lr trained the projections at --lr; since then the default is lr / 10
        proj_lr = recipe.get("proj_lr", recipe.get("lr", 0))
        what += f", proj lr {proj_lr if proj_lr >= 0 else recipe.get('lr', 0) / 10:g}"
        if recipe.get("proj_norm", "free") != "free":
            what += f", proj norm {recipe['proj_norm']}"
        if layer.get("unseen_ids"):
            what += f", {layer['unseen_ids']:,} unseen ids without a row"
    elif layer["kind"] == "qr":
        what = f"qr, m={layer['m']} ({layer['tables'][0]['rows']} x {layer['tables'][1]['rows']} rows)"
    else:
        what = "uniform"
    m = json.load(open(eval_json, encoding="utf-8"))["metrics"]
    with open(os.path.join(bundle, "metrics.json"), encoding="utf-8") as f:
        secs = json.load(f)["train_seconds"]
    ratio = base["bytes"] / sz["input_layer_bytes"]

    def rel(k):
        return f"{m[k]:.4f} ({(m[k] / base[k] - 1) * 100:+.1f}%)" if base.get(k) else f"{m[k]:.4f}"
    return (f"| {card['name']} | {what} | {sz['input_layer_bytes']:,} ({ratio:.1f}x smaller) | "
            f"{sz['model_onnx_bytes']:,} | {m['P@1']:.4f} | {rel('recall@100')} | {rel('NDCG@10')} | {secs:.0f} |")


def main(argv):
    pairs = [a.split("=", 1) if "=" in a else (a, a.rstrip("/") + "-eval.json") for a in argv]
    base = {}
    out = ["| model | input layer | input-layer bytes | model.onnx bytes | P@1 | recall@100 | NDCG@10 | train s |",
           "|---|---|---|---|---|---|---|---|"]
    for i, (b, e) in enumerate(pairs):
        if i == 0:  # the first bundle is the baseline
            m = json.load(open(e, encoding="utf-8"))["metrics"]
            base = {"bytes": sizes(b, load_card(b))["input_layer_bytes"], "recall@100": m["recall@100"],
                    "NDCG@10": m["NDCG@10"]}
        out.append(row(b, e, base))
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
