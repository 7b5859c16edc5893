"""Bar chart of NDCG@10 and recall@100 per method, from engine-eval `--out` (or dense_baseline
`--out`) JSON files: docs/relevance-*.png.

    /usr/bin/python3 scripts/relevance_plot.py --title "ESCI dev" --out ../docs/relevance-esci.png \\
        "BM25=/work/runs/esci-enc.json:bm25" "encoder hybrid=/work/runs/esci-enc.json:hybrid" ...
Each bar: LABEL=FILE:METHOD, the method's metrics in the file's "results" (a mean over index seeds
for engine-eval --index-seeds).
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bars", nargs="+", help="LABEL=FILE:METHOD")
    ap.add_argument("--title", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    labels, ndcg, recall = [], [], []
    for bar in args.bars:
        label, _, ref = bar.partition("=")
        path, _, method = ref.rpartition(":")
        with open(path, encoding="utf-8") as f:
            m = json.load(f)["results"][method]
        labels.append(label)
        ndcg.append(m["NDCG@10"])
        recall.append(m["recall@100"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(labels) + 1.4), dpi=100, sharey=True)
    for ax, values, name in ((axes[0], ndcg, "NDCG@10"), (axes[1], recall, "recall@100")):
        y = range(len(labels))
        ax.barh(y, values, color=["tab:gray" if "BM25" == lab else "tab:blue" for lab in labels])
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
        ax.set_yticks(list(y))
        ax.set_yticklabels(labels, fontsize=8)

        ax.set_xlim(0, 1)
        ax.set_title(name, fontsize=10)
    axes[0].invert_yaxis()  # first bar on top (the y axis is shared)
    fig.suptitle(args.title, fontsize=11)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
