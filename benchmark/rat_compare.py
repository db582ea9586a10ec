#!/usr/bin/env python
"""RAT vs its variants and CTR baselines from the sweeps in benchmark/sweeps/, plus a long-tail analysis.

    python benchmark/run_sweep.py benchmark/sweeps/RAT_mltag_tuner.yaml --gpu -1   # (and the other models)
    python benchmark/rat_compare.py --dataset mltag --tail-fields item_id tag_id
    python benchmark/rat_compare.py --dataset frappe --tail-fields user item --tail-quantile 0.1 --rule-keys \
        --sweep DCNv2=benchmark/sweeps/DCNv2_frappe_seeds_tuner DeepFM=benchmark/sweeps/DeepFM_frappe_seeds_tuner \
        --extra RAT=benchmark/results/runs/rat_frappe_seed2021.csv

For each model, the configuration with the best mean valid AUC over its seeds is reported with
test AUC / logloss mean +- std over those seeds and seconds per epoch. The long-tail table
reloads each seed's saved model of the best RAT and DCNv2 configurations and computes test AUC
on rows whose value of a tail field occurs at most `--tail-max` times in the training split.
Writes `benchmark/results/rat_<dataset>.md`.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODELS = ("RAT", "RAT_PA", "RAT_CE", "RAT_JM", "DCNv2", "DeepFM")
NAMES = {"RAT": "RAT (cascade)", "RAT_PA": "RAT_PA (parallel)", "RAT_CE": "RAT_CE (encoders)",
         "RAT_JM": "RAT_JM (joint)", "DCNv2": "DCNv2", "DeepFM": "DeepFM"}


NOT_CONFIG = ("seed", "expid", "model_root", "config_file", "verbose")  # not part of a configuration's identity


def best_config(sweep_dir, dataset, extra=()):
    """The rows of the configuration with the best mean valid AUC. `extra`: results CSVs of standalone
    runs of the same model (e.g. a seed run with `run_expid.py` before the sweep), merged by config."""
    from fuxi_like.results import parse_metrics

    df = pd.read_csv(sweep_dir / "results.csv")
    df["model_path"] = [str(sweep_dir / "checkpoints" / dataset / f"{e}.keras") for e in df["expid"]]
    for csv in extra:
        ex = pd.read_csv(csv)
        ex["model_path"] = [str(ROOT / "model_zoo" / m / json.loads(p)["model_root"] / d / f"{e}.keras")
                            for m, p, d, e in zip(ex["model"], ex["params"], ex["dataset_id"], ex["expid"])]
        df = pd.concat([df, ex], ignore_index=True)
    df["params_d"] = df["params"].map(json.loads)
    df["cfg"] = df["params_d"].map(lambda p: json.dumps({k: v for k, v in p.items() if k not in NOT_CONFIG},
                                                        sort_keys=True))
    n_sweep = len(df) - sum(len(pd.read_csv(c)) for c in extra)
    sweep_cfgs = set(df["cfg"].iloc[:n_sweep])
    for i in range(n_sweep, len(df)):  # a standalone run that matches no sweep config stays its own group
        if df["cfg"].iloc[i] not in sweep_cfgs and n_sweep:
            mine, ref = df["params_d"].iloc[i], df["params_d"].iloc[0]
            diff = sorted(k for k in set(mine) | set(ref) if k not in NOT_CONFIG and mine.get(k) != ref.get(k))
            print(f"warning: extra run {df['expid'].iloc[i]} matches no configuration of {sweep_dir.name} "
                  f"(differs from its first trial in {diff})", file=sys.stderr)
    for split in ("valid", "test"):
        m = df[split].map(parse_metrics)
        df[f"{split}_AUC"] = m.map(lambda d: d["AUC"])
        df[f"{split}_logloss"] = m.map(lambda d: d["logloss"])
    g = df.groupby("cfg")["valid_AUC"].mean()
    rows = df[df["cfg"] == g.idxmax()]
    return rows


def tail_auc(rows, tail_fields, tail_max, tail_quantile=None):
    import keras

    from fuxi_like.data.tf_dataset import InputPipeline, load_split
    from fuxi_like.metrics import auc
    from fuxi_like.experiment import load_model_module

    out = []
    for _, r in rows.iterrows():
        model_name = r["model"]
        load_model_module(ROOT / "model_zoo" / model_name)
        model = keras.saving.load_model(r["model_path"], compile=False)
        fmap = model.feature_map
        y, p, _ = model.predict_split(InputPipeline(fmap, 4096, augment=model.extra_inputs()).dataset("test"))
        train, test = load_split(fmap, "train"), load_split(fmap, "test")
        res = {"all": auc(y, p)}
        for f in tail_fields:
            cnt = np.bincount(train[f], minlength=int(test[f].max()) + 1)[test[f]]
            limit = np.quantile(cnt, tail_quantile) if tail_quantile else tail_max
            rare = cnt <= limit
            res[f"rare {f} limit"] = float(limit)
            res[f"rare {f}"] = auc(y[rare], p[rare])
            res[f"rare {f} share"] = float(rare.mean())
        out.append(res)
    return {k: (np.mean([o[k] for o in out]), np.std([o[k] for o in out])) for k in out[0]}


def neighbour_rule_auc(fmap, fields, key_fields, k=5, num_folds=10):
    """AUC per split of a hand rule on the retrieved rows: minus the label sum of the neighbours that
    share the row's values of `key_fields` (a diagnostic of the signal retrieval gives)."""
    from fuxi_like.data.tf_dataset import load_split
    from fuxi_like.experiment import load_model_module

    cached_neighbors = load_model_module(ROOT / "model_zoo" / "RAT").sample_retrieval.cached_neighbors
    from fuxi_like.metrics import auc

    nb = cached_neighbors(fmap, fields, k=k, num_folds=num_folds)
    train = load_split(fmap, "train")
    out = {}
    for split, (idx, _) in nb.items():
        d = load_split(fmap, split)
        j = np.maximum(idx, 0)
        same = idx >= 0
        for f in key_fields:
            same &= train[f][j] == d[f][:, None]
        lab = train[fmap.labels[0]]
        out[split] = auc(d[fmap.labels[0]], -(same * lab[j]).sum(1) + 0.01 * same.sum(1))
    return out


def model_eq(text):
    """'MODEL=PATH' -> (MODEL, PATH), for argparse."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected MODEL=PATH, got {text!r}")
    return tuple(text.split("=", 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mltag")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--tail-fields", nargs="*", default=["item_id", "tag_id"])
    ap.add_argument("--tail-max", type=int, default=5)
    ap.add_argument("--tail-quantile", type=float, default=None,
                    help="instead of --tail-max: a field's value is rare when its training count is at most this "
                         "quantile of the test rows' counts (e.g. 0.1: about the rarest 10%% of test rows)")
    ap.add_argument("--paper", default="")
    ap.add_argument("--sweep", nargs="*", default=[], metavar="MODEL=DIR", type=model_eq,
                    help="a model's sweep directory, if not benchmark/sweeps/<MODEL>_<dataset>_tuner")
    ap.add_argument("--extra", nargs="*", default=[], metavar="MODEL=CSV", type=model_eq,
                    help="results CSV of standalone runs merged into MODEL's sweep rows (same config = same group)")
    ap.add_argument("--rule-keys", nargs="*", default=["user_id", "item_id"],
                    help="key fields of the neighbour-label diagnostic (empty: skip it)")
    args = ap.parse_args()
    if args.tail_quantile is not None and not 0 < args.tail_quantile <= 1:
        ap.error(f"--tail-quantile must be in (0, 1], got {args.tail_quantile}")
    lines = [f"# RAT on `{args.dataset}`: variants and baselines", "",
             "Same processed splits for every model; each model's configurations (see "
             "`benchmark/sweeps/<Model>_" + args.dataset + "_tuner.yaml`) x 3 seeds; the configuration with the best "
             "mean valid AUC is reported (test mean +- std over its seeds). 2-core CPU, measured while other jobs "
             "shared the cores (seconds per epoch are indicative only).", "",
             "| model | embedding L2 | test AUC | test logloss | valid AUC | s/epoch | seeds |",
             "|---|---|---|---|---|---|---|"]
    best = {}
    sweeps = dict(args.sweep)
    extra = {}
    for m, csv in args.extra:
        if not (ROOT / csv).is_file():
            ap.error(f"--extra {m}={csv}: no such results CSV")
        extra.setdefault(m, []).append(ROOT / csv)
    for m in args.models:
        d = ROOT / sweeps[m] if m in sweeps else ROOT / "benchmark" / "sweeps" / f"{m}_{args.dataset}_tuner"
        if not (d / "results.csv").is_file():
            lines.append(f"| {NAMES.get(m, m)} | not run | | | | | |")
            continue
        rows = best_config(d, args.dataset, extra.get(m, ()))
        best[m] = (d, rows)
        reg = rows["params_d"].iloc[0].get("embedding_regularizer")
        lines.append(f"| {NAMES.get(m, m)} | {reg} | {rows['test_AUC'].mean():.4f} ± {rows['test_AUC'].std(ddof=0):.4f} | "
                     f"{rows['test_logloss'].mean():.4f} ± {rows['test_logloss'].std(ddof=0):.4f} | "
                     f"{rows['valid_AUC'].mean():.4f} | {rows['seconds_per_epoch'].mean():.1f} | {len(rows)} |")
    if args.paper:
        lines += ["", args.paper]
    if args.rule_keys and "RAT" in best:
        from fuxi_like.data.build_dataset import load_feature_map

        d, rows = best["RAT"]
        fmap = load_feature_map(ROOT / "data" / "processed" / args.dataset)
        fields = rows["params_d"].iloc[0].get("retrieval_fields") or fmap.names()
        r = neighbour_rule_auc(fmap, fields, args.rule_keys)
        lines += ["", f"Diagnostic: AUC of minus the label sum of the retrieved rows sharing {', '.join(args.rule_keys)} "
                      "with the row: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()) + "."]
    if "RAT" in best and "DCNv2" in best and args.tail_fields:
        rule = (f"whose value's training count is at most the {args.tail_quantile:g} quantile of the test rows' counts"
                if args.tail_quantile else f"whose value occurs <= {args.tail_max} times in training")
        lines += ["", f"## Long tail (test rows {rule})", "",
                  "| model | all | " + " | ".join(f"rare {f} (share, count limit)" for f in args.tail_fields) + " |",
                  "|---|---|" + "---|" * len(args.tail_fields)]
        for m in ("RAT", "DCNv2"):
            t = tail_auc(best[m][1], args.tail_fields, args.tail_max, args.tail_quantile)
            lines.append(f"| {NAMES[m]} | {t['all'][0]:.4f} ± {t['all'][1]:.4f} | " + " | ".join(
                f"{t['rare ' + f][0]:.4f} ± {t['rare ' + f][1]:.4f} ({t['rare ' + f + ' share'][0]:.3f}, "
                f"<= {t['rare ' + f + ' limit'][0]:g})" for f in args.tail_fields) + " |")
    text = "\n".join(lines) + "\n"
    from fuxi_like.io_utils import atomic_write_text

    out = ROOT / "benchmark" / "results" / f"rat_{args.dataset}.md"
    old = out.read_text() if out.is_file() else ""
    if "## Reading" in old:  # a person's reading of the numbers is kept below the regenerated tables
        text += "\n" + old[old.index("## Reading"):]
    atomic_write_text(out, text)
    print(text)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
