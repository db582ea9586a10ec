#!/usr/bin/env python
"""Side-by-side comparison with FuxiCTR (PyTorch, CPU) on the same data and hyperparameters.

    python benchmark/peers/run_peers.py [--rows 1000000] [--datasets criteo_like frappe] [--models DeepFM DCNv2]

Creates `benchmark/work/fuxictr_venv` (pip install torch==2.13.0 fuxictr 'polars<2') on first
use, writes the seeded 1M-row Criteo-like set (13 numeric + 26 categorical, Zipf
vocabularies up to 100k) and uses the Frappe recipe data. For every dataset x model
it runs fuxi_like, then FuxiCTR, one after the other in separate processes, from
the same CSV files with the same hyperparameters, and records: preprocessing time
(CSV -> processed parquet), steady-state training samples/s (after warm-up steps),
peak private memory of the whole process tree (Private_Clean + Private_Dirty from
/proc/*/smaps_rollup: FuxiCTR's Ray loader maps large shared pages that inflate RSS;
read only when the tree's RssAnon grows, see `memory.py`: each read walks the page
tables, ~74 ms for a 2 GB process), test AUC and logloss. The machine's sgemm GFLOP/s is
measured in the same run to express throughput as a fraction of the matmul
roofline. Appends one row per side, repeat, data set and model (kind `peer`, with the ratios ours /
FuxiCTR of the repeat) to `benchmark/results/runs/peers.csv` and regenerates `benchmark/results/peers.md`
(`benchmark/tables.py`): the run appears in its every-run table (DeepFM on the Criteo-like set); the main and
ratio tables show the run named in `benchmark/table_specs/peers.md` (`{{peers_main {"run": ...}}}`; set it to
the run id printed at the end to feature this run). `--prep-only` appends `prep-only` rows instead.
"""

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
WORK = ROOT / "benchmark" / "work"
VENV = WORK / "fuxictr_venv"
HP = {"embedding_dim": 16, "hidden_units": [400, 400, 400], "batch_size": 4096, "learning_rate": 1e-3,
      "num_cross_layers": 3}


def ensure_fuxictr():
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    ok = subprocess.run([str(py), "-c", "import fuxictr, torch, polars"], capture_output=True).returncode == 0
    if not ok:
        subprocess.run([str(py), "-m", "pip", "install", "-q", "torch==2.13.0", "fuxictr", "polars<2"], check=True)
    return str(py)


def run_driver(python, driver, spec, env=None):
    from benchmark.peers.memory import TreeMemorySampler

    proc = subprocess.Popen([python, str(driver), json.dumps(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, **(env or {})))
    sampler = TreeMemorySampler(proc.pid).start()
    out, err = proc.communicate()
    sampler.stop()
    lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{driver.name} failed (exit {proc.returncode}):\n{out[-2000:]}\n{err[-4000:]}")
    res = json.loads(lines[0][7:])
    res.update(peak_private_mb=sampler.peak_private_kb / 1024, peak_anon_mb=sampler.peak_anon_kb / 1024,
               memory_reads=sampler.private_reads, memory_read_s=sampler.read_seconds)
    return res


def sgemm_gflops(n=2048, reps=3, trials=7):
    """The machine's float32 matmul rate (NumPy, n x n): the best of `trials` timings of `reps`
    products. The best, not the mean: the VM's speed drifts by 15-30% between seconds, and a
    roofline denominator taken in a slow second would flatter the fraction."""
    import numpy as np

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.copy()
    a @ b
    best = 0.0
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9)
    return best


def flops_per_sample(model, n_fields, hp, n_factored=0):
    """Dense FLOPs per training sample (forward + backward = 3x forward multiply-adds x 2): the model's FLOPs,
    the same for every framework. `n_factored`: numeric fields whose first-layer rows run as one input column
    each instead of embedding_dim (fuxi_like's DeepFM, `MLPBlock.call_fields`): the FLOPs it executes."""
    d_in = n_fields * hp["embedding_dim"]
    units = [d_in - n_factored * (hp["embedding_dim"] - 1)] + hp["hidden_units"]
    macs = sum(a * b for a, b in zip(units[:-1], units[1:])) + units[-1]
    if model == "DCNv2":
        macs += hp["num_cross_layers"] * d_in * d_in + d_in
    else:
        macs += n_fields * hp["embedding_dim"] * 2  # FM
    return 6 * macs


def datasets(names, rows):
    from benchmark.peers import criteo_like

    out = {}
    if "criteo_like" in names:
        paths = criteo_like.write(WORK / f"criteo_like_{rows}", n_rows=rows)
        out["criteo_like"] = {"paths": paths, "numeric": [f"I{i}" for i in range(1, 14)],
                              "categorical": [f"C{i}" for i in range(1, 27)], "label": "label",
                              "min_categr_count": 2, "epochs": 1, "rows": rows}
    if "frappe" in names:
        from fuxi_like.datasets import frappe

        raw = ROOT.parent / "shared" / "data" / "frappe" / "frappe.csv"
        d = WORK / "frappe"
        paths = {s: str(d / f"{s}.csv") for s in ("train", "valid", "test")}
        if not all(Path(p).is_file() for p in paths.values()):
            frappe.make(paths["train"], paths["valid"], paths["test"], raw_path=str(raw), seed=2024)
        out["frappe"] = {"paths": paths, "numeric": [], "categorical": frappe.FIELDS, "label": "label",
                         "min_categr_count": 1, "epochs": 3, "rows": 288609}
    return out


def code_state():
    """'commit <short hash>' of the working tree (+ ', with local changes'), read with git; '' without git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return f"commit {head}" + (", with local changes" if dirty else "")


def utc_minute(t=None):
    """'MM-DD HH:MM' in UTC, the run id / time format of runs/peers.csv."""
    return time.strftime("%m-%d %H:%M", time.gmtime(t))


def write_results(rows, results_dir=None):
    """Append `rows` to `<results_dir>/runs/peers.csv` and regenerate `peers.md` (results_dir: default
    benchmark/results). Returns the table's path."""
    from benchmark import tables

    return tables.record("peers.csv", rows, ["peers.md"], results_dir or tables.RESULTS)[0]


def peer_rows(rows, run_id, command, state, source):
    """The runs-CSV rows (kind `peer`) of a run: `rows` = [(data set, model, ds, [(side, result)], model FLOPs
    per sample, repeat index, start time)]; ours / FuxiCTR ratios on our sides' rows (FuxiCTR is the last side)."""
    out = []
    for ds_name, model, ds, runs, fps, rep, started in rows:
        fx = runs[-1][1]
        base = {"kind": "peer", "run_id": run_id, "repeat": rep + 1, "time (UTC)": utc_minute(started),
                "command": command, "batch size": HP["batch_size"], "code state": state,
                "data": f"{ds_name} ({ds['rows']:,} rows, {ds['epochs']} ep)", "dataset": ds_name, "model": model,
                "source": source}
        for i, (name, r) in enumerate(runs):
            row = dict(base, **{"framework": name, "sgemm GFLOP/s": round(r["sgemm"], 1), "preprocess s": r["prep_s"],
                                "train samples/s": r["train_samples_per_s"], "peak private MB": r["peak_private_mb"],
                                "test AUC": r["test_AUC"], "test logloss": r["test_logloss"],
                                "roofline": r["train_samples_per_s"] * fps / (r["sgemm"] * 1e9),
                                "roofline, executed FLOPs": r["train_samples_per_s"] * r["flops_run"] / (r["sgemm"] * 1e9)})
            if i < len(runs) - 1:
                row.update({"throughput x": r["train_samples_per_s"] / fx["train_samples_per_s"],
                            "preprocessing x": fx["prep_s"] / r["prep_s"],
                            "memory ratio": r["peak_private_mb"] / fx["peak_private_mb"],
                            "AUC diff": r["test_AUC"] - fx["test_AUC"]})
            out.append(row)
    return out


def prep_only(args, fx_python):
    import shutil

    from benchmark import tables

    command = "python benchmark/peers/run_peers.py " + shlex.join(sys.argv[1:])
    started, state, source = utc_minute(), code_state(), tables.run_source(__file__)
    rows = []
    for ds_name, ds in datasets(args.datasets, args.rows).items():
        spec = {"dataset_id": f"{ds_name}_prep", "paths": ds["paths"], "numeric": ds["numeric"],
                "categorical": ds["categorical"], "label": ds["label"], "min_categr_count": ds["min_categr_count"],
                "model": "DeepFM", "hparams": HP, "epochs": 1, "seed": 2024, "warmup_steps": 0,
                "work_dir": str(WORK / "runs"), "prep_only": True}
        Path(spec["work_dir"]).mkdir(parents=True, exist_ok=True)
        for stale in ("fuxictr_data", "ours_data"):
            shutil.rmtree(Path(spec["work_dir"]) / stale / spec["dataset_id"], ignore_errors=True)
        ours = run_driver(sys.executable, Path(__file__).parent / "ours_driver.py", spec,
                          {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
        fx = run_driver(fx_python, Path(__file__).parent / "fuxictr_driver.py", spec,
                        {"CUDA_VISIBLE_DEVICES": "", "RAY_DISABLE_USAGE_STATS": "1"})
        print(ds_name, ours, fx, flush=True)
        rows.append({"kind": "prep-only", "repeat": 1, "time (UTC)": started, "command": command, "code state": state,
                     "data": f"{ds_name} ({ds['rows']:,} rows)", "dataset": ds_name, "fuxi_like s": ours["prep_s"],
                     "FuxiCTR s": fx["prep_s"], "speed-up": fx["prep_s"] / ours["prep_s"],
                     "fuxi_like peak private MB": ours["peak_private_mb"],
                     "FuxiCTR peak private MB": fx["peak_private_mb"], "source": source})
    path = write_results(rows, args.results_dir)
    print(f"wrote {path} (its preprocessing table shows this run's rows; machine: {platform.machine()}, "
          f"{os.cpu_count()} cores)")


def run_pair(spec, args, fx_python, label):
    """One repeat: sgemm, fuxi_like (Adam, optionally lazyadam), then FuxiCTR, each preprocessing from scratch.
    Each of our runs carries the sgemm GFLOP/s measured just before it (its roofline denominator)."""
    import shutil

    for stale in ("fuxictr_data", "ours_data"):  # both sides preprocess from scratch
        shutil.rmtree(Path(spec["work_dir"]) / stale / spec["dataset_id"], ignore_errors=True)
    shutil.rmtree(Path(spec["work_dir"]) / "ours_data" / (spec["dataset_id"] + "_lazy"), ignore_errors=True)
    tf_env = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    runs = []
    for name, extra in [("fuxi_like", {})] + ([("fuxi_like, lazyadam", {"optimizer": "lazyadam",
                                                   "dataset_id": spec["dataset_id"] + "_lazy"})]
                                              if args.lazyadam else []):
        gflops = sgemm_gflops()
        r = run_driver(sys.executable, Path(__file__).parent / "ours_driver.py", dict(spec, **extra), tf_env)
        r["sgemm"] = gflops
        print(label, name, r, flush=True)
        runs.append((name, r))
    if args.plain_keras and spec["model"] == "DeepFM":
        gflops = sgemm_gflops()
        r = run_driver(sys.executable, Path(__file__).parent / "plain_keras_driver.py", spec,
                       {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
        r["sgemm"] = gflops
        print(label, "plain Keras 3", r, flush=True)
        runs.append(("reference, plain Keras 3", r))
    fx = run_driver(fx_python, Path(__file__).parent / "fuxictr_driver.py", spec,
                    {"CUDA_VISIBLE_DEVICES": "", "RAY_DISABLE_USAGE_STATS": "1"})
    fx["sgemm"] = runs[0][1]["sgemm"]
    print(label, "FuxiCTR", fx, flush=True)
    return runs + [("FuxiCTR", fx)]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--datasets", nargs="+", default=["criteo_like", "frappe"])
    p.add_argument("--models", nargs="+", default=["DeepFM", "DCNv2"])
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=HP["batch_size"])
    p.add_argument("--lazyadam", action="store_true",
                   help="also run fuxi_like with optimizer lazyadam (row-sparse embedding updates; FuxiCTR keeps Adam)")
    p.add_argument("--plain-keras", action="store_true",
                   help="also train a plain Keras 3 DeepFM (stock layers, one offset table, model.fit on arrays; "
                        "benchmark/peers/plain_keras_driver.py) as a reference; its preprocessing is fuxi_like's")
    p.add_argument("--repeats", type=int, default=1,
                   help="run each pair this many times, alternating the frameworks (the VM's speed drifts by ~15%%)")
    p.add_argument("--results-dir", default=None,
                   help="a copy of benchmark/results/ to append to and regenerate (default: benchmark/results/)")
    p.add_argument("--prep-only", action="store_true",
                   help="only time CSV -> processed data on both sides (rows of kind prep-only in runs/peers.csv)")
    args = p.parse_args()
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1 (got {args.repeats})")
    WORK.mkdir(parents=True, exist_ok=True)
    fx_python = ensure_fuxictr()
    HP["batch_size"] = args.batch_size
    if args.prep_only:
        return prep_only(args, fx_python)
    rows = []
    sgemms = []
    run_started = time.time()
    for ds_name, ds in datasets(args.datasets, args.rows).items():
        for model in args.models:
            spec = {"dataset_id": f"{ds_name}_{model}", "paths": ds["paths"], "numeric": ds["numeric"],
                    "categorical": ds["categorical"], "label": ds["label"], "min_categr_count": ds["min_categr_count"],
                    "model": model, "hparams": HP, "epochs": ds["epochs"], "seed": 2024,
                    "warmup_steps": args.warmup_steps, "work_dir": str(WORK / "runs")}
            Path(spec["work_dir"]).mkdir(parents=True, exist_ok=True)
            n_fields = len(ds["numeric"]) + len(ds["categorical"])
            fps = flops_per_sample(model, n_fields, HP)
            # what fuxi_like executes: numeric fields factored in the first layer of DeepFM's MLP and DCNv2's
            # parallel MLP (the cross layers take the whole x0)
            fps_run = flops_per_sample(model, n_fields, HP, len(ds["numeric"]))
            for rep in range(args.repeats):
                started = time.time()
                runs = run_pair(spec, args, fx_python, f"{ds_name} {model} [{rep + 1}/{args.repeats}]")
                sgemms += [r["sgemm"] for _, r in runs[:-1]]  # each of our runs' own denominator
                for name, r in runs:
                    r["flops_run"] = fps_run if name.startswith("fuxi_like") else fps
                rows.append((ds_name, model, ds, runs, fps, rep, started))
    from benchmark import tables

    run_id = utc_minute(run_started)
    command = "python benchmark/peers/run_peers.py " + shlex.join(sys.argv[1:])
    path = write_results(peer_rows(rows, run_id, command, code_state(), tables.run_source(__file__)), args.results_dir)
    print(f"wrote {path}: run id {run_id!r} (machine {platform.machine()}, {os.cpu_count()} cores; sgemm "
          f"{min(sgemms):.1f}-{max(sgemms):.1f} GFLOP/s). Its rows are in runs/peers.csv; to make it peers.md's main "
          f"run, set \"run\": \"{run_id}\" in benchmark/table_specs/peers.md and rerun python benchmark/tables.py.")


if __name__ == "__main__":
    main()
