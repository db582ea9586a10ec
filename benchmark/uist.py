#!/usr/bin/env python
"""UIST's paradigm comparison and its tokenizer sweep on one content_rec dataset.

    python benchmark/uist.py --dataset scientific --arms tokens embedding id --seeds 2024 2025 2026
    python benchmark/uist.py --dataset scientific --step-cost content tokens --steps 10   # per-step time, full size
    python benchmark/uist.py --dataset scientific --sweep 2:64 3:64 4:64 3:128 3:256 3:512   # depth:codes per level
    python benchmark/uist.py --dataset scientific --plot                                  # the Pareto plot only

Each arm runs `model_zoo/UIST`'s `UIST_<dataset>` expid in this process with `representation` (and, for the sweep,
`item_levels = user_levels` and `codes_per_level`) set, and appends one row to
`benchmark/results/runs/uist_<dataset>.csv`: test GAUC (avgAUC), AUC, NDCG@10, MRR and their cold-item versions, the
bytes a server keeps for the item and user representations (model.representation_bytes(): tables + codebooks,
dtype stated), training samples/s (scored (user, candidate) pairs per second of training, over the epochs run),
inference samples/s (the test pass), the tokenizers' quality and seconds. `--step-cost` builds an arm and times
`--steps` training steps at full size (no convergence; `section=step_cost`, seconds per epoch extrapolated): the
content-encoding arm's figure where training it to convergence does not fit. The table
`benchmark/results/uist_<dataset>.md` is generated from the rows by `benchmark/tables.py`; `--plot` (and every
sweep) writes `uist_<dataset>_pareto.png` (test GAUC against representation bytes, log scale).
"""

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmark"))

import tables  # noqa: E402

FOLDER = ROOT / "model_zoo" / "UIST"
KEEP = ("avgAUC", "AUC", "NDCG@10", "MRR", "cold_avgAUC", "cold_NDCG@10", "cold_impressions")
FIELDS = ["source", "section", "arm", "base_model", "item_levels", "user_levels", "codes_per_level", "seed",
          *[f"test_{k}" for k in KEEP], "best_epoch", "epochs", "s_per_epoch", "train_samples_per_s",
          "infer_samples_per_s", "items", "users", "item_bytes", "user_bytes", "codebook_bytes", "total_bytes",
          "repr_dtype", "encoder_params", "item_tok_recon", "item_tok_perplexity_l1", "item_tok_collisions",
          "item_tok_nn@10", "user_tok_recon", "tokenizer_s", "s_per_step", "steps", "batch_size", "overrides"]


def _overrides(arm, seed, levels=None, codes=None, extra=()):
    from fuxi_like.runner import parse_overrides

    out = {"representation": arm, "seed": seed, "verbose": 0, **parse_overrides(extra)}
    if levels:
        out.update(item_levels=levels, user_levels=levels)
    if codes:
        out["codes_per_level"] = codes
    return out


def run_arm(dataset, arm, seed, levels=None, codes=None, extra=(), section="run"):
    from fuxi_like.runner import run_expid

    ov = _overrides(arm, seed, levels, codes, extra)
    with tempfile.TemporaryDirectory() as tmp:
        out = run_expid(FOLDER / "config", f"UIST_{dataset}", model_dir=FOLDER, results_file=Path(tmp) / "r.csv",
                        overrides=ov)
    model, state, test = out["model"], out["state"], out["test"]
    n_train = int(model.feature_map.num_rows["train"])
    cands = int(model.feature_map.features[model.item_field]["max_len"])
    epochs = len(state["history"])
    s_epoch = state["train_seconds"] / max(epochs, 1)
    row = {"section": section, "arm": arm, "base_model": model.base_model, "item_levels": model.item_levels,
           "user_levels": model.user_levels, "codes_per_level": model.tok_cfg["codes_per_level"] if arm == "tokens"
           else "", "seed": seed, **{f"test_{k}": test.get(k, "") for k in KEEP}, "best_epoch": state["best_epoch"],
           "epochs": epochs, "s_per_epoch": round(s_epoch, 2),
           "train_samples_per_s": round(n_train * cands / max(s_epoch, 1e-9)),
           "infer_samples_per_s": round(model.last_infer_samples_per_s), "overrides": " ".join(extra)}
    mem = model.representation_bytes()
    row.update({k: mem.get(k, "") for k in ("items", "users", "item_bytes", "user_bytes", "codebook_bytes",
                                             "total_bytes", "encoder_params")}, repr_dtype=mem["dtype"])
    if arm == "tokens":
        iq, uq = model.tokenizer_report["item"], model.tokenizer_report["user"]
        depth = model.item_levels
        row.update(item_tok_recon=round(iq["quality"][f"reconstruction_l{depth}"], 4),
                   item_tok_perplexity_l1=round(iq["quality"]["perplexity_l1"], 1),
                   item_tok_collisions=round(iq["quality"]["collision_rate"], 4),
                   **{"item_tok_nn@10": round(iq["quality"]["nn_agreement@10"], 4)},
                   user_tok_recon=round(uq["quality"][f"reconstruction_l{model.user_levels}"], 4),
                   tokenizer_s=round(iq["history"]["seconds"] + uq["history"]["seconds"], 1))
    return row


def step_cost(dataset, arm, steps, extra=()):
    """Seconds per training step at full size over `steps` steps (after one untimed step), and the epoch it implies."""
    from step_cost import time_steps

    t = time_steps(FOLDER / "config", f"UIST_{dataset}", FOLDER, _overrides(arm, 2024, extra=extra), steps, label=arm)
    return {"section": "step_cost", "arm": arm, "base_model": t["model"].base_model, "seed": t["seed"],
            "s_per_step": t["s_per_step"], "steps": steps, "batch_size": t["batch_size"],
            "s_per_epoch": t["s_per_epoch"], "overrides": " ".join(extra)}


def pareto_plot(path_csv, out_png, dataset):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in tables.read_rows(path_csv) if r["section"] in ("run", "sweep") and r["test_avgAUC"]]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    groups = {}
    for r in rows:
        label = (f"tokens L={r['item_levels']} K={r['codes_per_level']}" if r["arm"] == "tokens" else r["arm"])
        groups.setdefault(label, []).append(r)
    import numpy as np

    for label, rs in sorted(groups.items()):
        b = float(rs[0]["total_bytes"] or 0)
        if b <= 0:
            continue  # content: no table (its encoder is the cost)
        g = [float(r["test_avgAUC"]) for r in rs]
        ax.errorbar(b, np.mean(g), yerr=np.std(g, ddof=1) if len(g) > 1 else 0, fmt="o" if "tokens" in label
                    else "s", capsize=3, label=f"{label} (n={len(g)})")
    ax.set_xscale("log")
    ax.set_xlabel("bytes for all item + user representations (log scale)")
    ax.set_ylabel("test GAUC (avgAUC)")
    ax.set_title(f"UIST on {dataset}: accuracy vs representation memory")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    return out_png


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="scientific", help="UIST_<dataset> expid: scientific | goodreads")
    ap.add_argument("--arms", nargs="*", default=[], help="tokens | embedding | id | content")
    ap.add_argument("--seeds", nargs="*", type=int, default=[2024])
    ap.add_argument("--sweep", nargs="*", default=[], help="depth:codes_per_level cells of the tokens arm")
    ap.add_argument("--step-cost", nargs="*", default=[], help="arms to time per step at full size")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--set", action="append", default=[], help="extra KEY=VALUE overrides for every run")
    ap.add_argument("--plot", action="store_true", help="only (re)draw the Pareto plot from the rows")
    ap.add_argument("--results-dir", default=str(tables.RESULTS))
    args = ap.parse_args(argv)
    source = tables.run_source(__file__, argv)
    name = f"uist_{args.dataset}"
    results_dir = Path(args.results_dir)
    path = results_dir / "runs" / f"{name}.csv"

    def keep(row):  # each run's row is written as soon as it exists: a long grid loses nothing when stopped
        tables.append_rows(path, [{**row, "source": source}], FIELDS)
        print({k: v for k, v in row.items() if v != ""}, flush=True)
        if (tables.SPECS / f"{name}.md").is_file():
            tables.generate([f"{name}.md"], results_dir)

    if not args.plot:
        for arm in args.arms:
            for seed in args.seeds:
                keep(run_arm(args.dataset, arm, seed, extra=args.set))
        for cell in args.sweep:
            levels, codes = (int(v) for v in cell.split(":"))
            for seed in args.seeds:
                keep(run_arm(args.dataset, "tokens", seed, levels, codes, args.set, section="sweep"))
        for arm in args.step_cost:
            keep(step_cost(args.dataset, arm, args.steps, args.set))
    if path.is_file():
        print("plot:", pareto_plot(path, results_dir / f"{name}_pareto.png", args.dataset))


if __name__ == "__main__":
    main()
