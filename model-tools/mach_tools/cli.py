"""mach-tools command line: synth, train, evaluate, inspect.

Bad input ends with a one-line "error: ..." on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields
from typing import List, Optional

from mach_tools.data import UserError


def _positive(kind):
    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {kind.__name__}: {s!r}")
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {s}")
        return v
    return parse


def _bytes(s: str) -> int:
    """A byte count: a plain integer or one with a K, M or G suffix (powers of 1024), e.g. 64M."""
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:].upper(), 1)
    try:
        v = int(float(s[:-1] if mult > 1 else s) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a byte count (e.g. 67108864 or 64M): {s!r}")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {s}")
    return v


def _non_negative(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}")
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {s}")
    return v


def _add_conventions(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=["homedepot", "esci", "synth"],
                   help="metric conventions: homedepot (gain = relevance-1, relevant >= 2.5), "
                        "esci (gain = relevance, relevant >= 3), synth (gain = relevance, relevant >= 1)")
    p.add_argument("--gain-offset", type=float, help="NDCG gain = relevance - offset (default 1, as Home Depot)")
    p.add_argument("--relevant-min", type=float, help="relevance counted as relevant (default 2.5)")


def _conventions(args) -> tuple:
    from mach_tools.metrics import PRESETS
    base = PRESETS[args.preset] if args.preset else PRESETS["homedepot"]
    go = args.gain_offset if args.gain_offset is not None else base["gain_offset"]
    rm = args.relevant_min if args.relevant_min is not None else base["relevant_min"]
    return go, rm


def _add_catalog(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--catalog", required=required,
                   help="products: TSV with a header (id column + text columns) or NDJSON (.ndjson/.jsonl)")
    p.add_argument("--id-field", default="product_id", help="product id column/field (default product_id)")
    p.add_argument("--text-fields", help="comma-separated text fields, title first "
                                         "(default: TSV all other columns, NDJSON title)")


def _read_catalog(args):
    from mach_tools.data import read_catalog
    tf = [f.strip() for f in args.text_fields.split(",") if f.strip()] if args.text_fields else None
    return read_catalog(args.catalog, args.id_field, tf)


def build_parser() -> argparse.ArgumentParser:
    from mach_tools.train import Recipe
    d = Recipe()
    ap = argparse.ArgumentParser(prog="mach-tools", description="Train, export and evaluate MACH retrieval models.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("synth", help="write a synthetic catalog, query log and held-out judgments")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--products", type=_positive(int), default=300)
    s.add_argument("--seed", type=int, default=42)

    from mach_tools.train_encoder import EncoderRecipe
    t = sub.add_parser("train", help="train on pairs + catalog, write a model bundle")
    _add_catalog(t)
    t.add_argument("--pairs", help="query-product TSV (query, product_id[, relevance]); omit to train on product text only")
    t.add_argument("--dev", help="judgments TSV evaluated after each epoch (over the whole catalog)")
    t.add_argument("--out", required=True, help="bundle directory to create")
    t.add_argument("--name", help="model name in the card (default: the bundle directory's name)")
    t.add_argument("--force", action="store_true", help="replace an existing bundle directory")
    t.add_argument("--skip-unknown", action="store_true", help="drop pairs whose product is not in the catalog")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument("--no-progress", action="store_true")
    _add_conventions(t)
    for name, kind, help_ in (
            ("R", int, "repetitions (hash functions / heads)"), ("B", int, "buckets per repetition"),
            ("H", int, "embedding width"), ("D", int, "feature hash dimension"),
            ("L", int, "max features per text"), ("epochs", int, None), ("batch-size", int, None),
            ("lr", float, "Adam learning rate (dense layers)"), ("emb-lr", float, "SparseAdam learning rate (embedding)"),
            ("augment-per-product", int, "augmented pseudo-queries per product"),
            ("max-span", int, "max words in a pseudo-query"), ("word-dropout", float, None),
            ("min-relevance", float, "drop pairs below this relevance"),
            ("pair-repeat", int, "copies of each pair (copies after the first get word dropout)"),
            ("hidden2", int, "optional extra hidden layer width (0 = none)"),
            ("seed", int, None), ("threads", int, "torch CPU threads")):
        dest = name.replace("-", "_")
        default = getattr(d, dest)
        kind_ = _positive(kind) if dest not in ("word_dropout", "min_relevance", "hidden2", "seed",
                                                "augment_per_product", "epochs") else kind
        # None = not given: the recipe's default (hashed and encoder models differ for R, B, lr, ...)
        enc_default = getattr(EncoderRecipe, dest, None)
        shown = f"default {default}" + (f"; with --encoder {enc_default}" if enc_default not in (None, default) else "")
        t.add_argument("--" + name, dest=dest, type=kind_, default=None,
                       help=(help_ + " " if help_ else "") + f"({shown})")
    t.add_argument("--pair-weight", choices=["relevance", "uniform"])
    t.add_argument("--input-layer", choices=["uniform", "mixed", "qr"],
                   help="uniform D x H table (default), mixed-dimension frequency blocks, or "
                        "quotient-remainder tables (docs/embeddings.md)")
    t.add_argument("--emb-blocks", type=_positive(int), help=f"mixed: frequency blocks (default {d.emb_blocks})")
    t.add_argument("--emb-alpha", type=_non_negative,
                   help=f"mixed: block width ~ (mean id count)^alpha, 0 = equal widths (default {d.emb_alpha})")
    t.add_argument("--emb-budget", type=_bytes,
                   help="mixed/qr: input-layer size in bytes, K/M/G suffixes allowed (mixed default: the "
                        "most frequent block H wide; qr default: see --qr-m)")
    t.add_argument("--qr-m", type=_positive(int), help="qr: rows of the remainder table, id %% m "
                                                       "(default: the largest m that fits --emb-budget, else sqrt(D))")
    t.add_argument("--proj-lr", type=_non_negative,
                   help="mixed: Adam learning rate of the block projections, 0 = frozen random projections "
                        "(default: --lr / 10)")
    t.add_argument("--proj-norm", choices=["free", "fixed"],
                   help="mixed: 'fixed' keeps every projection row at its initial length, so the projections "
                        "rotate but do not grow (default free)")
    t.add_argument("--emb-drop-unseen", action="store_const", const=True, default=None,
                   help="mixed: ids that never occur in the training set get no row (they add nothing) "
                        "and their bytes widen the blocks of the seen ids")
    t.add_argument("--no-lr-decay", action="store_true", help="constant learning rate")
    de = EncoderRecipe()
    enc = t.add_argument_group("encoder models (bundle format 2): MACH heads over a pretrained sentence encoder")
    enc.add_argument("--encoder", metavar="DIR",
                     help="train heads over this sentence encoder (a directory with encoder.onnx and tokenizer.json, "
                          "e.g. plugin/target/encoders/all-minilm-l6-v2-q after ./mvnw verify) instead of the "
                          "hashed n-gram network")
    enc.add_argument("--embed-cache", metavar="DIR", help="keep the encoder's embeddings of training texts here, "
                                                          "reused by later runs with the same encoder")
    enc.add_argument("--temperature", type=_positive(float),
                     help="sketch heads: bucket weights = normalized centroid / temperature (default 0.2); fit heads: "
                          "the logit scale, ranking-neutral (default: picked so that a typical query's logit spread "
                          "per repetition is ~15, within log_mean's 7-decade floor)")
    enc.add_argument("--heads", choices=["sketch", "fit"],
                     help="sketch (default): normalized bucket centroids, trainable by --epochs, decoded by the mean "
                          "of probabilities; fit: least-squares heads whose log-mean score reproduces the encoder's "
                          "cosine (card aggregation log_mean; needs --epochs 0)")
    enc.add_argument("--fit-sweeps", type=_positive(int), help=f"--heads fit: block coordinate sweeps (default {de.fit_sweeps})")
    enc.add_argument("--tune-query-encoder", dest="tune_epochs", type=int, metavar="EPOCHS",
                     help="first fine-tune the query tower (the fp32 encoder, in torch) for EPOCHS on --pairs against "
                          "the frozen catalog vectors of --encoder; the bundle ships the tuned fp32 graph (default 0)")
    enc.add_argument("--tune-pseudo-queries", type=_positive(int), metavar="N",
                     help="query tower: also N pseudo-queries per product and epoch (spans of the title, target: the "
                          "product), so a catalog without a query log can tune too (default 0)")
    enc.add_argument("--tune-lr", type=_positive(float), help=f"query tower AdamW learning rate (default {de.tune_lr})")
    enc.add_argument("--tune-batch", type=_positive(int), help=f"query tower: queries per step (default {de.tune_batch})")
    enc.add_argument("--tune-from", metavar="DIR",
                     help="the fp32 encoder directory (or .onnx) to tune (default: --encoder if fp32, else its "
                          "sibling without the -q suffix)")
    enc.add_argument("--init", choices=["catalog", "random"], help=f"head initialization (default {de.init})")
    enc.add_argument("--product-fields", choices=["title", "all"],
                     help=f"product texts used as pseudo-queries: the title, or every field and bullet line "
                          f"(default {de.product_fields})")
    enc.add_argument("--catalog-vectors", choices=["title", "title+text"],
                     help=f"what stands for a product: its title's embedding, or the normalized mean of that and "
                          f"the embedding of all its text fields joined (default {de.catalog_vectors})")
    enc.add_argument("--hidden", type=int, help="encoder models: a ReLU hidden layer of this width before the heads "
                                                "(default 0 = none; needs --init random)")
    enc.add_argument("--noise", type=_non_negative, help=f"Gaussian noise on training vectors (default {de.noise})")
    enc.add_argument("--title-weight", type=_non_negative,
                     help=f"weight of a product's own text against a logged query (default {de.title_weight})")
    enc.add_argument("--distill", type=_non_negative,
                     help=f"weight of learning the encoder's own soft ranking of the catalog (default {de.distill})")

    e = sub.add_parser("evaluate", help="rank the whole label set for judged queries with model.onnx")
    e.add_argument("bundle")
    e.add_argument("--judgments", required=True, help="TSV: query, product_id, relevance")
    e.add_argument("--out", help="write the metrics JSON here")
    e.add_argument("--skip-unknown", action="store_true",
                   help="ignore judged products the model does not know (default: count them, they can never be found)")
    e.add_argument("--limit", type=_positive(int), help="evaluate only the first N queries")
    _add_conventions(e)

    i = sub.add_parser("inspect", help="print a bundle's card and check it (checksums, ONNX shapes, parity)")
    i.add_argument("bundle")
    i.add_argument("--no-numeric", action="store_true", help="skip re-running parity.json through model.onnx")

    from mach_tools import engine_eval
    g = sub.add_parser("engine-eval", help="through a node with the plugin: BM25, MACH and each combine mode "
                                           "side by side (last stdout line: one JSON object)")
    _add_catalog(g)
    engine_eval.add_arguments(g)
    _add_conventions(g)

    from mach_tools import tune
    t = sub.add_parser("tune-fusion", help="through a node: pick combine, normalization and mach_weight on a judged dev "
                                           "set and write them into the bundle card's query_defaults")
    _add_catalog(t)
    tune.add_arguments(t)
    _add_conventions(t)

    q = sub.add_parser("quantize", help="copy a bundle with int8 output heads (same input/output; plugin unchanged)")
    q.add_argument("--encoder", action="store_true",
                   help="format 2: also quantize the sentence encoder's projections (a fp32 or fine-tuned encoder)")
    q.add_argument("bundle")
    q.add_argument("--out", required=True, help="directory of the quantized bundle")
    q.add_argument("--name", help="the new card's name (default: the source's)")
    q.add_argument("--force", action="store_true", help="replace --out if it exists")

    c = sub.add_parser("compress", help="copy a bundle (hashed or encoder, float heads) with low-rank heads (two "
                                        "MatMuls fitted to the training queries; same input/output, plugin unchanged)")
    c.add_argument("bundle")
    c.add_argument("--rank", required=True, type=int,
                   help="k: the heads become [d -> k] then [k -> R*B] (1 <= k < d; d: the embedding, 384, or the "
                        "hashed network's hidden width H)")
    c.add_argument("--pairs", required=True, help="training query log (TSV with a query column): the queries the fit "
                                                  "weighs by (never the dev judgments)")
    c.add_argument("--fit", default="pca", choices=["pca", "query-svd"],
                   help="pca (default): the queries' top-k principal directions; query-svd: least squares of the logits "
                        "over the queries")
    c.add_argument("--out", required=True, help="directory of the compressed bundle")
    c.add_argument("--name", help="the new card's name (default: the source's)")
    c.add_argument("--embed-cache", help="encoder bundles: directory caching the query embeddings (by encoder sha256 and text)")
    c.add_argument("--force", action="store_true", help="replace --out if it exists")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")

    f = sub.add_parser("fusion", help="offline: what fusing the lexical and MACH lists of engine-eval --rankings "
                                      "could gain (oracle switch, RRF, linear)")
    f.add_argument("rankings", help="JSON lines written by engine-eval --rankings")
    f.add_argument("--lexical", default="bm25", help="method of the lexical list (default bm25)")
    f.add_argument("--mach", default="mach", help="method of the MACH list (default mach)")
    _add_conventions(f)

    from mach_tools import deploy
    d = sub.add_parser("deploy", help="upload a bundle to a cluster in checksummed chunks, register and deploy it")
    deploy.add_arguments(d)
    return ap


def cmd_synth(args) -> int:
    from mach_tools import synth
    try:
        paths = synth.write(args.out, args.products, args.seed)
    except ValueError as e:
        raise UserError(str(e))
    for p in paths.values():
        print(p)
    return 0


# Flags of the hashed n-gram network that an encoder model has no use for.
_HASHED_ONLY = ("H", "D", "L", "emb_lr", "augment_per_product", "max_span", "word_dropout", "pair_repeat",
                "hidden2", "input_layer", "emb_blocks", "emb_alpha", "emb_budget", "qr_m", "proj_lr", "proj_norm",
                "emb_drop_unseen")


def cmd_train(args) -> int:
    from mach_tools.train import Recipe, train
    if args.encoder:
        return _train_encoder(args)
    for flag in ("embed_cache", "temperature", "init", "product_fields", "catalog_vectors", "hidden", "noise", "title_weight", "distill",
                 "heads", "fit_sweeps", "tune_epochs", "tune_lr", "tune_batch", "tune_from",
                 "tune_pseudo_queries"):
        if getattr(args, flag) is not None:
            raise UserError(f"--{flag.replace('_', '-')} applies to encoder models only (give --encoder)")
    recipe = Recipe(**{f.name: getattr(args, f.name) for f in fields(Recipe) if getattr(args, f.name, None) is not None})
    recipe.lr_decay = not args.no_lr_decay
    if recipe.epochs < 1:
        raise UserError("--epochs must be at least 1 (0 is for --encoder models: the catalog sketch untrained)")
    if recipe.D < 2:
        raise UserError("--D must be at least 2")
    _input_layer_options(args, recipe)
    catalog, pairs, dev = _read_training_data(args)
    go, rm = _conventions(args)
    name = args.name or os.path.basename(os.path.abspath(args.out))
    facts = {"catalog": args.catalog, "text_fields": catalog.field_names, "pairs": args.pairs, "dev": args.dev}
    train(catalog, pairs, recipe, args.out, name, dev=dev, gain_offset=go, relevant_min=rm, device=args.device,
          force=args.force, progress=not args.no_progress, data_facts=facts)
    return 0


def _read_training_data(args):
    """catalog, pairs (or None), dev judgments (or None): unknown products refused unless --skip-unknown."""
    from mach_tools.data import check_known, judgments_by_query, read_pairs
    catalog = _read_catalog(args)
    index = catalog.index()
    pairs = check_known(read_pairs(args.pairs), index, args.pairs, "catalog", args.skip_unknown) if args.pairs else None
    dev = None
    if args.dev:
        dev = judgments_by_query(check_known(read_pairs(args.dev), index, args.dev, "catalog", args.skip_unknown))
    return catalog, pairs, dev


def _train_encoder(args) -> int:
    from mach_tools.encoder import SentenceEncoder
    from mach_tools.train_encoder import EncoderRecipe, train_encoder
    for dest in _HASHED_ONLY:
        if getattr(args, dest) is not None:
            raise UserError(f"--{dest.replace('_', '-')} applies to the hashed n-gram network, not to --encoder models")
    if args.no_lr_decay:
        raise UserError("--no-lr-decay applies to the hashed n-gram network (encoder heads train at a constant rate)")
    recipe = EncoderRecipe(**{f.name: getattr(args, f.name) for f in fields(EncoderRecipe)
                              if getattr(args, f.name, None) is not None})
    if recipe.epochs < 0:
        raise UserError("--epochs must be >= 0 (0: the catalog sketch, untrained)")
    if recipe.tune_epochs < 0:
        raise UserError("--tune-query-encoder must be >= 0 epochs")
    if recipe.heads == "fit" and args.epochs is None:
        recipe.epochs = 0  # fitted heads are not trained further
    if recipe.tune_epochs and not args.pairs and not recipe.tune_pseudo_queries:
        raise UserError("--tune-query-encoder needs --pairs (a query log) or --tune-pseudo-queries N")
    if recipe.tune_pseudo_queries and not recipe.tune_epochs:
        raise UserError("--tune-pseudo-queries applies only with --tune-query-encoder")
    if args.tune_from and not recipe.tune_epochs:
        raise UserError("--tune-from applies only with --tune-query-encoder")
    try:
        encoder = SentenceEncoder.from_dir(args.encoder, cache_dir=args.embed_cache)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"--encoder: {e}")
    catalog, pairs, dev = _read_training_data(args)
    go, rm = _conventions(args)
    name = args.name or os.path.basename(os.path.abspath(args.out))
    facts = {"catalog": args.catalog, "text_fields": catalog.field_names, "pairs": args.pairs, "dev": args.dev}
    train_encoder(catalog, pairs, recipe, encoder, args.out, name, dev=dev, gain_offset=go, relevant_min=rm,
                  device=args.device, force=args.force, progress=not args.no_progress, data_facts=facts,
                  tune_from=args.tune_from)
    return 0


def _input_layer_options(args, recipe) -> None:
    """Copies the --emb-*/--qr-m flags into the recipe, refusing those the chosen layer ignores."""
    allowed = {"uniform": set(),
               "mixed": {"emb_blocks", "emb_alpha", "emb_budget", "proj_lr", "proj_norm", "emb_drop_unseen"},
               "qr": {"emb_budget", "qr_m"}}
    for dest in ("emb_blocks", "emb_alpha", "emb_budget", "qr_m", "proj_lr", "proj_norm", "emb_drop_unseen"):
        v = getattr(args, dest)
        if v is None:
            continue
        if dest not in allowed[recipe.input_layer]:
            flag = "--" + dest.replace("_", "-")
            raise UserError(f"{flag} does not apply to --input-layer {recipe.input_layer}")
        setattr(recipe, dest, v)
    if recipe.input_layer == "qr" and args.qr_m and args.emb_budget:
        raise UserError("give --qr-m or --emb-budget for --input-layer qr, not both")
    if recipe.input_layer == "qr" and args.qr_m and not 2 <= args.qr_m < recipe.D:
        raise UserError(f"--qr-m must be between 2 and D-1 ({recipe.D - 1}), got {args.qr_m}")
    if recipe.input_layer == "mixed" and recipe.emb_blocks > 64:
        raise UserError(f"--emb-blocks must be at most 64, got {recipe.emb_blocks}")


def cmd_evaluate(args) -> int:
    from mach_tools import metrics as M
    from mach_tools.bundle import check_bundle, load_card, onnx_predictor, read_labels
    from mach_tools.data import check_known, judgments_by_query, read_pairs
    from mach_tools.decode import aggregation_of, label_buckets
    from mach_tools.featurize import ProductHash
    from mach_tools.train import evaluate_model
    import time
    problems = check_bundle(args.bundle, numeric=False)
    if problems:
        raise UserError(f"{args.bundle}: bad bundle: " + "; ".join(problems))
    card = load_card(args.bundle)
    labels = read_labels(args.bundle, card)
    index = {p: i for i, p in enumerate(labels)}
    pairs = read_pairs(args.judgments)
    if args.skip_unknown:
        pairs = check_known(pairs, index, args.judgments, "model's labels", True)
    else:
        unknown = sum(1 for p in pairs.product_ids if p not in index)
        if unknown:
            print(f"warning: {unknown} judged rows name products the model does not know; they count "
                  f"as never retrieved", file=sys.stderr)
    judged = judgments_by_query(pairs)
    if args.limit:
        judged = dict(list(judged.items())[:args.limit])
    predict = onnx_predictor(args.bundle, card)
    ph = ProductHash(buckets=card["product_hash"]["buckets"], seeds=card["product_hash"]["seeds"])
    go, rm = _conventions(args)
    t0 = time.time()
    result = evaluate_model(predict, labels, label_buckets(labels, ph), judged, go, rm, aggregation_of(card))
    secs = time.time() - t0
    print(M.format_table({card.get("name", "model"): result}))
    print(f"{int(result['queries'])} queries ({int(result['queries_with_relevant'])} with a relevant product), "
          f"{len(labels)} labels, {secs:.1f}s; gain = relevance - {go:g}, relevant >= {rm:g}")
    if args.out:
        doc = {"bundle": os.path.abspath(args.bundle), "name": card.get("name"), "judgments": args.judgments,
               "conventions": {"gain_offset": go, "relevant_min": rm}, "metrics": result,
               "seconds": round(secs, 2)}
        try:
            with open(args.out, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1)
        except OSError as e:
            raise UserError(f"{args.out}: cannot write ({e.strerror})")
    return 0


def cmd_inspect(args) -> int:
    from mach_tools.bundle import check_bundle, load_card, sizes
    card = load_card(args.bundle)
    short = {k: v for k, v in card.items() if k not in ("product_hash", "training")}
    ph = card.get("product_hash", {})
    short["product_hash"] = {**ph, "seeds": f"[{len(ph.get('seeds', []))} seeds]"}
    if "family" not in ph:  # a card written before families: the family its seeds make, if any
        from mach_tools.featurize import ProductHash
        try:
            family = ProductHash(buckets=int(ph["buckets"]), seeds=ph["seeds"]).family
        except (KeyError, TypeError, ValueError):
            family = None  # check_bundle below names what is wrong
        short["product_hash"]["family"] = f"{family.name} (derived)" if family else "none (no index-side queries)"
    tr = card.get("training", {})
    short["training"] = {k: tr[k] for k in ("examples", "epochs", "device", "train_seconds", "samples_per_s",
                                            "input_layer_bytes", "model_bytes", "dev_metrics") if k in tr}
    print(json.dumps(short, indent=1, ensure_ascii=False))
    try:
        sz = sizes(args.bundle, card)
        print(f"input layer: {sz['input_layer']}, {sz['input_layer_bytes']:,} bytes; "
              f"model.onnx {sz['model_onnx_bytes']:,} bytes")
    except (KeyError, TypeError, ValueError, OSError):
        pass  # check_bundle below names what is missing
    problems = check_bundle(args.bundle, numeric=not args.no_numeric)
    if problems:
        for p in problems:
            print(f"problem: {p}", file=sys.stderr)
        raise UserError(f"{args.bundle}: {len(problems)} problem(s) found")
    print("bundle OK" + ("" if args.no_numeric else " (checksums, ONNX shapes and parity.json re-run through model.onnx)"))
    return 0


def cmd_engine_eval(args) -> int:
    from mach_tools import engine_eval
    go, rm = _conventions(args)
    return engine_eval.run(args, _read_catalog(args), go, rm)


def cmd_tune_fusion(args) -> int:
    from mach_tools import tune
    go, rm = _conventions(args)
    return tune.run(args, _read_catalog(args), go, rm)


def cmd_quantize(args) -> int:
    from mach_tools.bundle import sizes
    from mach_tools.quantize import quantize_bundle
    card = quantize_bundle(args.bundle, args.out, args.force, args.name, encoder=args.encoder)
    before = sizes(args.bundle, card)["model_onnx_bytes"]
    after = sizes(args.out, card)["model_onnx_bytes"]
    print(f"{args.out}: heads int8 ({card['heads']['bytes']:,} bytes); model.onnx {before:,} -> {after:,} bytes")
    if args.encoder:
        f = card["encoder"]["file"]
        print(f"{args.out}: encoder {card['encoder']['variant']}; {f} {os.path.getsize(os.path.join(args.bundle, f)):,} -> "
              f"{os.path.getsize(os.path.join(args.out, f)):,} bytes")
    return 0


def cmd_compress(args) -> int:
    from mach_tools.bundle import sizes
    from mach_tools.compress import compress_bundle
    card = compress_bundle(args.bundle, args.out, args.rank, args.pairs, args.fit, args.force, args.name,
                           args.embed_cache, progress=not args.no_progress)
    lr = card["low_rank"]
    print(f"{args.out}: heads rank {lr['rank']} ({lr['fit']}, {lr['fitted_on']['queries']} queries): "
          f"{lr['macs']:,} multiply-adds per query instead of {lr['full_macs']:,}; expected relative logit "
          f"error {lr['relative_error']:.4f}; model.onnx {sizes(args.bundle, card)['model_onnx_bytes']:,} -> "
          f"{sizes(args.out, card)['model_onnx_bytes']:,} bytes")
    return 0


def cmd_fusion(args) -> int:
    from mach_tools import fusion
    go, rm = _conventions(args)
    return fusion.run(args.rankings, go, rm, args.lexical, args.mach)


def cmd_deploy(args) -> int:
    from mach_tools import deploy
    reply = deploy.deploy(args.url, args.bundle, args.id, args.chunk_mb, not args.no_deploy, args.alias,
                          progress=not args.no_progress)
    print(json.dumps(reply))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"synth": cmd_synth, "train": cmd_train, "evaluate": cmd_evaluate, "inspect": cmd_inspect,
                "engine-eval": cmd_engine_eval, "tune-fusion": cmd_tune_fusion, "deploy": cmd_deploy, "fusion": cmd_fusion,
                "quantize": cmd_quantize, "compress": cmd_compress}[args.cmd](args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, UnicodeDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
