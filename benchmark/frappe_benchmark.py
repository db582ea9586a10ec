#!/usr/bin/env python
"""Train the CTR baselines on the Frappe recipe data and record the results.

    python benchmark/frappe_benchmark.py [--models DeepFM DCNv2 DNN] [--seeds 2024]

Runs `<Model>_frappe` from each model folder's own config (same processed data,
same 7:2:1 split), appending each run's results.csv row to `benchmark/results/runs/frappe.csv`;
`benchmark/tables.py` then regenerates `benchmark/results/frappe.md` from those rows (test AUC, logloss,
epochs and seconds per epoch, mean ± sample std over the seeds).
Needs the raw Frappe log (see the `frappe` recipe; default ../shared/data/frappe).
"""

import argparse
import os
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--models", nargs="+", default=["DeepFM", "DCNv2", "DNN", "LR"])
    p.add_argument("--seeds", nargs="+", type=int, default=[2024])
    args = p.parse_args()

    import fuxi_like

    rows = []
    for model in args.models:
        runs = []
        for seed in args.seeds:
            cfg = ROOT / "model_zoo" / model / "config"
            from fuxi_like.experiment import load_model_module  # noqa: F401 (imports src)
            import shutil

            import yaml

            mc = yaml.safe_load(open(cfg / "model_config.yaml"))
            expid = f"{model}_frappe"
            if seed != mc[expid].get("seed", mc.get("Base", {}).get("seed")):
                # write a seeded copy of the expid into a temp config dir beside the real one
                import shutil
                import tempfile

                tmp = Path(tempfile.mkdtemp(dir=ROOT / "model_zoo" / model, prefix=".seed_"))
                shutil.copytree(cfg, tmp / "config")
                shutil.copytree(ROOT / "model_zoo" / model / "src", tmp / "src")
                mc[expid]["seed"] = seed
                (tmp / "config" / "model_config.yaml").write_text(yaml.safe_dump(mc))
                # dataset paths are relative to the model folder: keep them valid
                dc = (cfg / "dataset_config.yaml").read_text().replace("../../", "../../../")
                (tmp / "config" / "dataset_config.yaml").write_text(dc)
                cfg_dir = tmp / "config"
            else:
                cfg_dir, tmp = cfg, None
            t0 = time.time()
            out = fuxi_like.run_expid(str(cfg_dir), expid, -1,
                                      results_file=str(ROOT / "benchmark/results/runs/frappe.csv"))
            st = out["state"]
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            runs.append({"seed": seed, "auc": out["test"]["AUC"], "logloss": out["test"]["logloss"],
                         "epochs": len(st["history"]), "best_epoch": st["best_epoch"],
                         "sec_epoch": st["train_seconds"] / max(1, len(st["history"])),
                         "params": out["model"].count_parameters(), "wall": time.time() - t0})
            print(f"{model} seed {seed}: test AUC {runs[-1]['auc']:.4f} logloss {runs[-1]['logloss']:.4f}", flush=True)
        rows.append((model, runs))

    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    tables.generate(["frappe.md"])
    print((ROOT / "benchmark/results/frappe.md").read_text())


if __name__ == "__main__":
    main()
