"""`fuxi_like summarize results.csv`: a ranked markdown table and plots.

Rows that differ only in `seed` are one configuration: its metrics are shown as
mean ± std over seeds. The table is ranked by the monitor metric on the valid
split (or `--metric`), best first, with the swept hyperparameters (params whose
values differ across rows) as columns. One PNG per swept hyperparameter plots the
metric against it (each run a dot, the per-value mean a line).
"""

import json
import logging
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .results import parse_metrics, read_results

log = logging.getLogger("fuxi_like")

IGNORED = {"expid", "seed", "config_file", "verbose", "resume", "energy_tracking", "energy_tracking_mode",
           "carbon_country", "carbon_intensity", "weights_cache"}


def _key(v):
    return json.dumps(v, sort_keys=True)


def load_runs(results_csv):
    if not Path(results_csv).is_file():
        raise ConfigError(f"results file not found: {results_csv}")
    rows = read_results(results_csv)
    # the same trial written twice (e.g. by an orphaned trial of a killed sweep) counts once: its last row
    last = {(r["expid"], r.get("params_hash")): i for i, r in enumerate(rows)}
    dups = len(rows) - len(last)
    runs = []
    for r in (rows[i] for i in sorted(last.values())):
        params = json.loads(r["params"]) if r.get("params") else {}
        runs.append({"expid": r["expid"], "params": params, "valid": parse_metrics(r.get("valid", "")),
                     "test": parse_metrics(r.get("test", "")), "epochs": r.get("epochs_run"),
                     "sec_epoch": float(r["seconds_per_epoch"]) if r.get("seconds_per_epoch") else np.nan})
    if dups:
        log.warning("%s: %d duplicate row(s) of the same (expid, params_hash): the last of each is used", results_csv,
                    dups)
    return runs


def swept_keys(runs):
    keys = sorted({k for r in runs for k in r["params"]} - {"expid", "config_file"})
    return [k for k in keys if len({_key(r["params"].get(k)) for r in runs}) > 1]


def summarize(results_csv, metric=None, mode=None, split="valid", plots_dir=None):
    runs = load_runs(results_csv)
    if not runs:
        return f"{results_csv}: no runs"
    if metric is None:
        mon = runs[0]["params"].get("monitor", "AUC")
        metric = mon if isinstance(mon, str) else "AUC"
        mode = mode or runs[0]["params"].get("monitor_mode", "max")
    mode = mode or ("min" if metric.lower() == "logloss" else "max")
    swept = swept_keys(runs)
    config_keys = [k for k in swept if k not in IGNORED and k != "dataset_id" or k == "dataset_id"]
    config_keys = [k for k in config_keys if k not in IGNORED]
    groups = {}
    for r in runs:
        groups.setdefault(_key({k: r["params"].get(k) for k in config_keys}), []).append(r)

    metrics = list(dict.fromkeys(m for r in runs for m in list(r["valid"]) + list(r["test"])))
    rows = []
    for g in groups.values():
        def ms(s, m):
            vals = [r[s][m] for r in g if m in r[s]]
            return (float(np.mean(vals)), float(np.std(vals))) if vals else (np.nan, np.nan)

        rows.append({"params": {k: g[0]["params"].get(k) for k in config_keys}, "n": len(g),
                     "valid": {m: ms("valid", m) for m in metrics}, "test": {m: ms("test", m) for m in metrics},
                     "sec_epoch": float(np.nanmean([r["sec_epoch"] for r in g])),
                     "expids": [r["expid"] for r in g]})
    sign = -1 if mode == "max" else 1
    rows.sort(key=lambda r: (np.isnan(r[split][metric][0]), sign * np.nan_to_num(r[split][metric][0])))

    seeds = any(len(r["expids"]) > 1 for r in rows)
    fmt = (lambda mv: f"{mv[0]:.4f} ± {mv[1]:.4f}") if seeds else (lambda mv: f"{mv[0]:.4f}")
    head = ["rank", *config_keys, *[f"valid {m}" for m in metrics], *[f"test {m}" for m in metrics], "s/epoch",
            "runs"]
    lines = [f"Ranked by {split} {metric} ({mode}) — {results_csv}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(rows, 1):
        cells = [str(i), *[json.dumps(r["params"][k]) if isinstance(r["params"][k], (list, dict)) else str(r["params"][k])
                           for k in config_keys],
                 *[fmt(r["valid"][m]) for m in metrics], *[fmt(r["test"][m]) for m in metrics],
                 f"{r['sec_epoch']:.1f}", str(r["n"])]
        lines.append("| " + " | ".join(cells) + " |")
    best = rows[0]
    lines += ["", f"Best: {', '.join(best['expids'])} ({split} {metric} {fmt(best[split][metric])})"]
    plot_paths = _plots(runs, [k for k in config_keys if k != "dataset_id"] or config_keys, metric, split,
                        Path(plots_dir) if plots_dir else Path(results_csv).parent / "plots")
    if plot_paths:
        lines += ["", "Plots: " + ", ".join(str(p) for p in plot_paths)]
    return "\n".join(lines)


def _plots(runs, keys, metric, split, out_dir):
    import matplotlib  # lazy: only plots need matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: only plots need matplotlib

    paths = []
    for k in keys:
        vals = [r["params"].get(k) for r in runs]
        ys = [r[split].get(metric, np.nan) for r in runs]
        labels = sorted({_key(v) for v in vals}, key=lambda s: (not _is_num(json.loads(s)), _sort_val(json.loads(s))))
        numeric = all(_is_num(json.loads(s)) for s in labels)
        pos = {s: (json.loads(s) if numeric else i) for i, s in enumerate(labels)}
        fig, ax = plt.subplots(figsize=(5, 3.5))
        xs = [pos[_key(v)] for v in vals]
        ax.scatter(xs, ys, alpha=0.6, label="runs")
        means = [np.nanmean([y for x, y in zip(xs, ys) if x == pos[s]]) for s in labels]
        ax.plot([pos[s] for s in labels], means, "o-", color="C3", label="mean")
        if numeric and all(v > 0 for v in pos.values()) and max(pos.values()) / max(min(pos.values()), 1e-12) >= 10:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(list(pos.values()))
            ax.set_xticklabels([s if len(s) < 20 else s[:17] + "..." for s in labels], rotation=20)
        ax.set_xlabel(k)
        ax.set_ylabel(f"{split} {metric}")
        ax.set_title(f"{split} {metric} vs {k}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{metric}_vs_{k}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _sort_val(v):
    return v if _is_num(v) else str(v)
