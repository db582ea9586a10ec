#!/usr/bin/env python
"""GreenRec's grid on one content_rec dataset: accuracy, time and energy per (item encoder, user model, seed).

    python benchmark/greenrec.py --dataset scientific --cells oleo:naml id:naml text_cnn:naml --seeds 2024 2025 2026
    python benchmark/greenrec.py --dataset scientific --step-cost plm:naml --steps 20   # end-to-end MiniLM: time
                                                                                       # per step, labelled
Each cell runs `model_zoo/GreenRec/run_expid.py --expid GreenRec_<dataset> --set item_encoder=.. --set user_model=..
--seed ..` with energy tracking on (CodeCarbon, the `green` extra) and appends a row to
`benchmark/results/runs/greenrec_<dataset>.csv`: the test metrics (all impressions and cold-item impressions), best
epoch, epochs, seconds per epoch, wall time, energy (kWh), CO2e (kg), the method CodeCarbon used, ApC and, for OLEO,
the encode-once seconds (charged to each OLEO run; a reused table reports the seconds of the run that wrote it).
`--step-cost` builds a cell in-process and times `--steps` training steps at full size (no convergence): its row
says so (`section=step_cost`) and extrapolates seconds per epoch from them. `benchmark/results/greenrec_<dataset>.md` is
generated from the rows by `benchmark/tables.py`.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmark"))

import tables  # noqa: E402

FOLDER = ROOT / "model_zoo" / "GreenRec"
KEEP = ("avgAUC", "NDCG@10", "MRR", "LRAP", "AUC", "cold_avgAUC", "cold_NDCG@10", "cold_impressions")


def run_cell(dataset, item_encoder, user_model, seed, extra):
    from fuxi_like.results import parse_metrics

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.csv"
        cmd = [sys.executable, "run_expid.py", "--expid", f"GreenRec_{dataset}", "--seed", str(seed), "--results",
               str(results), "--set", f"item_encoder={item_encoder}", "--set", f"user_model={user_model}",
               "--set", "energy_tracking=true", "--set", "verbose=0", *sum((["--set", s] for s in extra), [])]
        t0 = time.time()
        r = subprocess.run(cmd, cwd=FOLDER, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)}: exit {r.returncode}")
        with open(results, newline="") as f:
            row = list(csv.DictReader(f))[-1]
    test = parse_metrics(row["test"])
    out = {"section": "run", "item_encoder": item_encoder, "user_model": user_model, "seed": seed,
           **{f"test_{k}": test.get(k, "") for k in KEEP}, "best_epoch": row["best_epoch"],
           "epochs": row["epochs_run"], "s_per_epoch": row["seconds_per_epoch"], "wall_s": round(time.time() - t0, 1)}
    for k in ("energy_kwh", "co2e_kg", "energy_method", "apc", "params_trainable", "params_total", "cpu_seconds"):
        out[k] = row.get(k, "")
    params = json.loads(row["params"]) if row.get("params") else {}
    out["overrides"] = " ".join(extra)
    out["encode_once_s"] = ""
    if item_encoder == "oleo":
        info = Path(FOLDER.parents[1] / "data" / "processed" / params.get("dataset_id", "")) / \
            "oleo_all-minilm-l6-v2.parquet.json"
        if info.is_file():
            out["encode_once_s"] = json.loads(info.read_text()).get("seconds", "")
    return out


def step_cost(dataset, item_encoder, user_model, steps, extra):
    """Seconds per training step at full size over `steps` steps (after one untimed step), and the epoch it implies."""
    from fuxi_like.runner import parse_overrides
    from step_cost import time_steps

    t = time_steps(FOLDER / "config", f"GreenRec_{dataset}", FOLDER,
                   {"item_encoder": item_encoder, "user_model": user_model, "verbose": 0, **parse_overrides(extra)},
                   steps, label=f"{item_encoder}:{user_model}")
    return {"section": "step_cost", "item_encoder": item_encoder, "user_model": user_model, "seed": t["seed"],
            "s_per_step": t["s_per_step"], "steps": steps, "batch_size": t["batch_size"],
            "s_per_epoch": t["s_per_epoch"], "overrides": " ".join(extra)}


def pareto_plot(path_csv, out_png, dataset):
    """Test avgAUC against energy (kWh) and against training seconds per epoch, one point per (item encoder, user
    model) cell (mean, with the sample std as error bars), from the `run` rows. Returns the file, or None."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in tables.read_rows(path_csv) if r.get("section") == "run" and r.get("test_avgAUC")]
    if not rows:
        return None
    cells = tables.groups(rows, ["item_encoder", "user_model"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (enc, user), rs in cells.items():
        auc = np.array([float(r["test_avgAUC"]) for r in rs])
        for ax, col in zip(axes, ("energy_kwh", "s_per_epoch")):
            xs = [float(r[col]) for r in rs if r.get(col)]
            if xs:
                ax.errorbar(np.mean(xs), auc.mean(), yerr=auc.std(ddof=1) if len(auc) > 1 else 0, fmt="o", capsize=3,
                            label=f"{enc} x {user} (n={len(auc)})")
    axes[0].set_xlabel("energy per run, kWh (CodeCarbon; training + evaluation)")
    axes[1].set_xlabel("training seconds per epoch")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_ylabel("test avgAUC")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"GreenRec on {dataset}: accuracy against cost (up and left is better)")
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    return out_png


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="scientific", help="GreenRec_<dataset> expid: scientific | goodreads")
    ap.add_argument("--cells", nargs="*", default=[], help="item_encoder:user_model ...")
    ap.add_argument("--seeds", nargs="*", type=int, default=[2024])
    ap.add_argument("--step-cost", nargs="*", default=[], help="item_encoder:user_model cells to time per step")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--set", action="append", default=[], help="extra KEY=VALUE overrides for every cell")
    ap.add_argument("--energy-mode", default="process", choices=["process", "machine"],
                    help="CodeCarbon's tracking mode: process (this run's share of the CPU; default, for shared "
                         "machines) or machine (the whole machine); recorded in the row's overrides")
    ap.add_argument("--results-dir", default=str(tables.RESULTS))
    ap.add_argument("--plot", action="store_true", help="only (re)draw greenrec_<dataset>_pareto.png from the rows")
    args = ap.parse_args(argv)
    source = tables.run_source(__file__, argv)
    name = f"greenrec_{args.dataset}"
    fields = ["source", "section", "item_encoder", "user_model", "seed", *[f"test_{k}" for k in KEEP], "best_epoch",
              "epochs", "s_per_epoch", "wall_s", "energy_kwh", "co2e_kg", "energy_method", "apc", "params_trainable",
              "params_total", "cpu_seconds", "encode_once_s", "s_per_step", "steps", "batch_size", "overrides"]
    path = Path(args.results_dir) / "runs" / f"{name}.csv"

    def keep(row):  # each run's row is written as soon as it exists: a long grid loses nothing when stopped
        tables.append_rows(path, [{**row, "source": source}], fields)
        print(row, flush=True)
        if (tables.SPECS / f"{name}.md").is_file():
            tables.generate([f"{name}.md"], Path(args.results_dir))

    if args.plot:
        print("plot:", pareto_plot(path, Path(args.results_dir) / f"{name}_pareto.png", args.dataset))
        return
    for cell in args.cells:
        enc, user = cell.split(":")
        for seed in args.seeds:
            keep(run_cell(args.dataset, enc, user, seed, [f"energy_tracking_mode={args.energy_mode}", *args.set]))
    for cell in args.step_cost:
        enc, user = cell.split(":")
        keep(step_cost(args.dataset, enc, user, args.steps, args.set))
    if path.is_file():
        print("plot:", pareto_plot(path, Path(args.results_dir) / f"{name}_pareto.png", args.dataset))


if __name__ == "__main__":
    main()
