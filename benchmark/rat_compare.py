#!/usr/bin/env python
"""RAT vs its variants and CTR baselines from the sweeps in benchmark/sweeps/, plus a long-tail analysis.

    python benchmark/run_sweep.py benchmark/sweeps/RAT_mltag_tuner.yaml --gpu -1   # (and the other models)
    python benchmark/rat_compare.py --dataset mltag --tail-fields item_id tag_id
    python benchmark/rat_compare.py --dataset frappe --tail-fields user item --tail-quantile 0.1 --rule-keys \
        --sweep DCNv2=benchmark/sweeps/DCNv2_frappe_seeds_tuner DeepFM=benchmark/sweeps/DeepFM_frappe_seeds_tuner \
        --extra RAT=benchmark/results/runs/rat_frappe_seed2021.csv

For each model, the configuration with the best mean valid AUC over its seeds is reported: one row per
seed (test AUC / logloss, valid AUC, seconds per epoch). The long-tail rows reload each seed's saved model
of the best RAT and DCNv2 configurations and compute test AUC on rows whose value of a tail field occurs at
most `--tail-max` times in the training split (or under `--tail-quantile`).
Appends those per-seed rows (sections `main` and `tail`) to `benchmark/results/runs/rat_<dataset>.csv` and
regenerates `benchmark/results/rat_<dataset>.md` with `benchmark/tables.py` (mean ± sample std, ddof=1,
over each model's seeds of this run; earlier runs stay in the CSV). The table's prose (`--paper`, the
neighbour-rule diagnostic, the reading) is in `benchmark/table_specs/rat_<dataset>.md`: this script prints
those lines; edit the spec when they change.
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
    """Mean and sample std (ddof=1; nan for one seed) over the seeds of `tail_auc_runs`."""
    out = tail_auc_runs(rows, tail_fields, tail_max, tail_quantile)
    return {k: (np.mean([o[k] for o in out]), np.std([o[k] for o in out], ddof=1) if len(out) > 1 else np.nan)
            for k in out[0]}


def tail_auc_runs(rows, tail_fields, tail_max, tail_quantile=None):
    """One dict per row (seed) of `rows`, in order: test AUC on all rows and on each field's rare rows."""
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
    return out


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


def run_rows(section, model, rows, source, tail=None):
    """The runs-CSV rows of one model's best configuration: `main` (test / valid metrics per seed) or,
    with `tail` (tail_auc_runs' dicts, one per seed in the order of `rows`), `tail`."""
    out = []
    for i, (_, r) in enumerate(rows.iterrows()):
        row = {"section": section, "model": NAMES.get(model, model), "seed": r["params_d"].get("seed"),
               "row_kind": "run", "n": 1, "source": source}
        if tail is None:
            row.update({"embedding L2": r["params_d"].get("embedding_regularizer"), "test AUC": r["test_AUC"],
                        "test logloss": r["test_logloss"], "valid AUC": r["valid_AUC"],
                        "s/epoch": r["seconds_per_epoch"]})
        else:
            # tail_auc_runs' "rare <field> limit" is the CSV's "rare <field> count limit"
            row.update({(k[:-len(" limit")] + " count limit" if k.endswith(" limit") else k): v
                        for k, v in tail[i].items()})
        out.append(row)
    return out


def write_results(dataset, rows, results_dir=None):
    """Append `rows` (run_rows') to `<results_dir>/runs/rat_<dataset>.csv` and regenerate `rat_<dataset>.md`
    (results_dir: default benchmark/results). Returns the table's path."""
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    return tables.record(f"rat_{dataset}.csv", rows, [f"rat_{dataset}.md"], results_dir or tables.RESULTS)[0]


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
    ap.add_argument("--results-dir", default=None,
                    help="a copy of benchmark/results/ to append to and regenerate (default: benchmark/results/)")
    args = ap.parse_args()
    if args.tail_quantile is not None and not 0 < args.tail_quantile <= 1:
        ap.error(f"--tail-quantile must be in (0, 1], got {args.tail_quantile}")
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    results_dir = Path(args.results_dir) if args.results_dir else tables.RESULTS
    header = tables.csv_header(results_dir / "runs" / f"rat_{args.dataset}.csv")
    missing = [c for f in args.tail_fields for c in (f"rare {f}", f"rare {f} share", f"rare {f} count limit")
               if header is not None and c not in header]
    if missing:  # checked before hours of work: the runs CSV and its spec name the tail fields' columns
        ap.error(f"--tail-fields: columns {missing} are not in runs/rat_{args.dataset}.csv (its spec shows its fields)")
    source = tables.run_source(__file__)
    out_rows, notes = [], []
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
            notes.append(f"{NAMES.get(m, m)}: not run (no {d.relative_to(ROOT)}/results.csv), no rows written")
            continue
        rows = best_config(d, args.dataset, extra.get(m, ()))
        best[m] = (d, rows)
        out_rows += run_rows("main", m, rows, source)
    if args.paper:
        notes.append(args.paper)
    if args.rule_keys and "RAT" in best:
        from fuxi_like.data.build_dataset import load_feature_map

        d, rows = best["RAT"]
        fmap = load_feature_map(ROOT / "data" / "processed" / args.dataset)
        fields = rows["params_d"].iloc[0].get("retrieval_fields") or fmap.names()
        r = neighbour_rule_auc(fmap, fields, args.rule_keys)
        notes.append(f"Diagnostic: AUC of minus the label sum of the retrieved rows sharing {', '.join(args.rule_keys)} "
                     "with the row: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()) + ".")
    if "RAT" in best and "DCNv2" in best and args.tail_fields:
        rule = (f"whose value's training count is at most the {args.tail_quantile:g} quantile of the test rows' counts"
                if args.tail_quantile else f"whose value occurs <= {args.tail_max} times in training")
        notes.append(f"## Long tail (test rows {rule})")
        for m in ("RAT", "DCNv2"):
            runs = tail_auc_runs(best[m][1], args.tail_fields, args.tail_max, args.tail_quantile)
            out_rows += run_rows("tail", m, best[m][1], source, tail=runs)
    if not out_rows:
        sys.exit(f"no finished sweep for {args.models} on {args.dataset}: nothing written")
    path = write_results(args.dataset, out_rows, results_dir)
    print(path.read_text())
    if notes:
        print(f"Not in the runs CSV (the prose of benchmark/table_specs/rat_{args.dataset}.md; edit it if these "
              "changed):\n" + "\n".join(notes))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
