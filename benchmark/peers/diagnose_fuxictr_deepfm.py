"""Why FuxiCTR's DeepFM ends one epoch on the Criteo-like set far below ours (0.76-0.77 AUC vs 0.82).

Hypothesis: FuxiCTR embeds each numeric field with `Linear(1, d)` (and `Linear(1, 1)` in the LR
term) re-initialised by `xavier_normal_` (std 0.34 and 1.0), so 13 unnormalised numeric fields
give large pairwise FM terms at the start; ours initialises them with std 1e-4. Runs FuxiCTR's
DeepFM twice on the same processed data: as is, and with those weights re-initialised N(0, 1e-4).

    python benchmark/peers/diagnose_fuxictr_deepfm.py   # writes benchmark/results/peers_fuxictr_deepfm_init.md
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main():
    from benchmark.peers.run_peers import HP, WORK, datasets, ensure_fuxictr, run_driver
    from fuxi_like.io_utils import atomic_write_text

    fx_python = ensure_fuxictr()
    ds = datasets(["criteo_like"], 1_000_000)["criteo_like"]
    lines = ["# FuxiCTR DeepFM on the Criteo-like set: numeric-field initialisation", "",
             "Command: `python benchmark/peers/diagnose_fuxictr_deepfm.py` (same data and hyperparameters as "
             "peers.md, one epoch).", "", "| FuxiCTR DeepFM | test AUC | test logloss |", "|---|---|---|"]
    for label, std in (("as shipped (xavier_normal_ on Linear(1, d))", None), ("numeric weights N(0, 1e-4)", 1e-4)):
        spec = {"dataset_id": "criteo_like_diag", "paths": ds["paths"], "numeric": ds["numeric"],
                "categorical": ds["categorical"], "label": ds["label"], "min_categr_count": ds["min_categr_count"],
                "model": "DeepFM", "hparams": HP, "epochs": 1, "seed": 2024, "warmup_steps": 10,
                "work_dir": str(WORK / "runs"), "numeric_init_std": std}
        r = run_driver(fx_python, Path(__file__).parent / "fuxictr_driver.py", spec,
                       {"CUDA_VISIBLE_DEVICES": "", "RAY_DISABLE_USAGE_STATS": "1"})
        print(label, r, flush=True)
        lines.append(f"| {label} | {r['test_AUC']:.4f} | {r['test_logloss']:.4f} |")
    lines.append("")
    atomic_write_text(ROOT / "benchmark/results/peers_fuxictr_deepfm_init.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
