"""Why FuxiCTR's DeepFM ends one epoch on the Criteo-like set far below ours (0.76-0.77 AUC vs 0.82).

Hypothesis: FuxiCTR embeds each numeric field with `Linear(1, d)` (and `Linear(1, 1)` in the LR
term) re-initialised by `xavier_normal_` (std 0.34 and 1.0), so 13 unnormalised numeric fields
give large pairwise FM terms at the start; ours initialises them with std 1e-4. Runs FuxiCTR's
DeepFM twice on the same processed data: as is, and with those weights re-initialised N(0, 1e-4).

    python benchmark/peers/diagnose_fuxictr_deepfm.py [--results-dir DIR]

Appends the two results as rows of kind `diagnostic` to `benchmark/results/runs/peers.csv` and regenerates
`benchmark/results/peers.md` (`benchmark/tables.py`), whose initialisation table shows the last run's rows.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def csv_rows(results, ds, batch_size, started, state, source):
    """The runs-CSV rows (kind `diagnostic`): `results` = [(label, driver result)]."""
    return [{"kind": "diagnostic", "repeat": 1, "time (UTC)": started, "command": "python benchmark/peers/"
             "diagnose_fuxictr_deepfm.py", "batch size": batch_size, "code state": state,
             "data": f"criteo_like ({ds['rows']:,} rows, 1 ep)", "dataset": "criteo_like", "model": "DeepFM",
             "framework": f"FuxiCTR {label}", "test AUC": r["test_AUC"], "test logloss": r["test_logloss"],
             "source": source} for label, r in results]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results-dir", default=None,
                    help="a copy of benchmark/results/ to append to and regenerate (default: benchmark/results/)")
    a = ap.parse_args(argv)
    from benchmark import tables
    from benchmark.peers.run_peers import (
        HP,
        WORK,
        code_state,
        datasets,
        ensure_fuxictr,
        run_driver,
        utc_minute,
        write_results,
    )

    started = utc_minute()
    fx_python = ensure_fuxictr()
    ds = datasets(["criteo_like"], 1_000_000)["criteo_like"]
    results = []
    for label, std in (("as shipped (xavier_normal_ on Linear(1, d))", None), ("numeric weights N(0, 1e-4)", 1e-4)):
        spec = {"dataset_id": "criteo_like_diag", "paths": ds["paths"], "numeric": ds["numeric"],
                "categorical": ds["categorical"], "label": ds["label"], "min_categr_count": ds["min_categr_count"],
                "model": "DeepFM", "hparams": HP, "epochs": 1, "seed": 2024, "warmup_steps": 10,
                "work_dir": str(WORK / "runs"), "numeric_init_std": std}
        r = run_driver(fx_python, Path(__file__).parent / "fuxictr_driver.py", spec,
                       {"CUDA_VISIBLE_DEVICES": "", "RAY_DISABLE_USAGE_STATS": "1"})
        print(label, r, flush=True)
        results.append((label, r))
    rows = csv_rows(results, ds, HP["batch_size"], started, code_state(), tables.run_source(__file__, argv))
    print(f"wrote {write_results(rows, a.results_dir)}")


if __name__ == "__main__":
    main()
