#!/usr/bin/env python
"""Base vs base+RAR and ablations from the RAR sweeps, mean +- std over seeds.

    python benchmark/run_sweep.py benchmark/sweeps/RAR_ml_tuner.yaml --gpu -1 -1
    python benchmark/rar_compare.py --dataset ml        # -> benchmark/results/rar_ml.md

Reads every `benchmark/sweeps/RAR_<dataset>*_tuner/` (results.csv + trials.json), groups the
trials by (base model, variant) and reports test AUC, logloss and gAUC (mean +- std over the
seeds), the seeds, best epochs and seconds per epoch, and the change in AUC against the base.
Text under a "## Reading" heading of an existing output file is kept.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ORDER = ("base", "rar", "no_lookalike", "no_recall", "random_selection")
LABEL = {"base": "base alone", "rar": "base + RAR", "no_lookalike": "+ RAR without look-alike users",
         "no_recall": "+ RAR without recall items", "random_selection": "+ RAR, random instead of SimHash selection"}


def collect(dataset):
    from fuxi_like.results import parse_metrics

    rows = []
    for sweep in sorted((ROOT / "benchmark" / "sweeps").glob(f"RAR_{dataset}*_tuner")):
        if not (sweep / "results.csv").is_file():
            continue
        swept = {t["expid"]: t["swept"] for t in json.loads((sweep / "trials.json").read_text())["trials"]}
        df = pd.read_csv(sweep / "results.csv").drop_duplicates("expid", keep="last")
        for _, r in df.iterrows():
            if r["expid"] not in swept:
                continue
            s, m = swept[r["expid"]], parse_metrics(r["test"])
            base = s.get("base_model") or json.loads(r["params"])["base_model"]
            rows.append({"base": base, "variant": s["variant"], "seed": s["seed"], "AUC": m["AUC"],
                         "logloss": m["logloss"], "gAUC": m.get("gAUC", np.nan), "best_epoch": r["best_epoch"],
                         "s_epoch": r["seconds_per_epoch"]})
    return pd.DataFrame(rows)


def table(df):
    out = ["| base | model | test AUC | test logloss | test gAUC | dAUC vs base | seeds | best epochs | s/epoch |",
           "|---|---|---|---|---|---|---|---|---|"]
    for base in sorted(df["base"].unique()):
        part = df[df["base"] == base]
        ref = part[part["variant"] == "base"]["AUC"].mean() if (part["variant"] == "base").any() else np.nan
        for v in ORDER:
            g = part[part["variant"] == v]
            if g.empty:
                continue

            def ms(col, g=g):
                return f"{g[col].mean():.4f} +- {g[col].std(ddof=1):.4f}"

            d = "" if v == "base" or np.isnan(ref) else f"{g['AUC'].mean() - ref:+.4f}"
            out.append(f"| {base} | {LABEL[v]} | {ms('AUC')} | {ms('logloss')} | {ms('gAUC')} | {d} | {len(g)} | "
                       f"{', '.join(str(int(e)) for e in g['best_epoch'])} | {g['s_epoch'].mean():.1f} |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="ml or beauty (the sweep name part)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    df = collect(a.dataset)
    if df.empty:
        sys.exit(f"no finished RAR_{a.dataset}*_tuner sweep under benchmark/sweeps/")
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    name = f"rar_{a.dataset}.md"
    if (tables.SPECS / name).is_file() and not a.out:
        # the per-seed rows replace the runs CSV; the spec keeps the prose (update its cross-stage line by hand)
        df = df.assign(order=df["variant"].map(ORDER.index)).sort_values(["base", "order", "seed"], kind="stable")
        rows = [{"base": r["base"], "model": LABEL[r["variant"]], "seed": r["seed"], "row_kind": "run", "n": 1,
                 "test AUC": r["AUC"], "test logloss": r["logloss"], "test gAUC": r["gAUC"],
                 "best epoch": int(r["best_epoch"]), "s/epoch": r["s_epoch"],
                 "source": f"benchmark/sweeps/RAR_{a.dataset}*_tuner/results.csv"} for _, r in df.iterrows()]
        tables.replace_rows(ROOT / "benchmark" / "results" / "runs" / f"rar_{a.dataset}.csv", rows, {})
        tables.generate([name])
        print((ROOT / "benchmark" / "results" / name).read_text())
        return
    out = Path(a.out)
    keep = ""
    if out.is_file() and "## Reading" in out.read_text():
        keep = "\n## Reading" + out.read_text().split("## Reading", 1)[1]
    stats = ROOT / "data" / "raw" / f"rar_{a.dataset}" / "cross_stage.json"
    info = (f"\nCross-stage data of this run (`{stats.relative_to(ROOT)}`): "
            f"`{json.dumps(json.loads(stats.read_text()))}`\n") if stats.is_file() else ""
    text = (f"# RAR on `rar_{a.dataset}`: base vs base + RAR, ablations\n\n"
            f"Sweeps: `benchmark/sweeps/RAR_{a.dataset}*_tuner.yaml` (model_zoo/RAR/config/model_config.yaml "
            f"`RAR_DIN_{a.dataset}` for every key not swept); test metrics of the best-valid-AUC epoch, mean +- "
            f"sample std over the seeds. Command: `python benchmark/rar_compare.py --dataset {a.dataset}`.\n{info}\n"
            + table(df) + "\n" + keep)
    from fuxi_like.io_utils import atomic_write_text

    atomic_write_text(out, text.rstrip("\n") + "\n")
    print(text)


if __name__ == "__main__":
    main()
