"""Where a DeepFM training step's time goes on the Criteo-like set (issue 3's profile).

Builds the processed Criteo-like data once (cached under benchmark/work/profile_<rows>),
then times steady-state training steps of DeepFM (embedding 16, MLP 400x3, batch 4096)
in one process, one variant at a time:
- `fit, pipeline`: `model.fit` on the real in-memory tf.data pipeline;
- `fit, one cached batch`: the same step on one batch repeated (no input pipeline);
- the same with `lazyadam` (row-sparse embedding updates) and with SGD (no moments);
- `MLP only`: the dense tower alone on a [batch, 39*16] input (the roofline part).
and the machine's sgemm GFLOP/s, so each line can be read as a fraction of the roofline.

    python benchmark/diagnostics/profile_train_step.py --rows 1000000 [--record]

Prints the table. With `--record`, also appends one row per variant to
`benchmark/results/runs/profile_deepfm.csv` and regenerates `benchmark/results/profile_deepfm.md` from it
(`benchmark/tables.py`; the table shows the last recorded run, earlier runs stay in the CSV; its heading line,
rows / sgemm / MFLOP per sample, is prose of `benchmark/table_specs/profile_deepfm.md`: edit it if it changed).
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from fuxi_like.tf_env import configure  # noqa: E402  TF's host allocator as the entry points set it

configure()

HP = {"embedding_dim": 16, "hidden_units": [400, 400, 400], "batch_size": 4096, "learning_rate": 1e-3}


def processed(rows, rebuild=False):
    """The processed 1M-row-style Criteo-like set (built once and reused; `rebuild`: built again in
    this process, as the peer harness does before it trains)."""
    import yaml

    from benchmark.peers import criteo_like
    from fuxi_like.config import load_dataset_config
    from fuxi_like.data.build_dataset import build_dataset, load_feature_map

    work = ROOT / "benchmark" / "work"
    paths = criteo_like.write(work / f"criteo_like_{rows}", n_rows=rows)
    cols = [{"name": [f"I{i}" for i in range(1, 14)], "type": "numeric", "fill_na": 0},
            {"name": [f"C{i}" for i in range(1, 27)], "type": "categorical"}]
    ds = {"data_root": str(work), "train_data": paths["train"], "valid_data": paths["valid"],
          "test_data": paths["test"], "min_categr_count": 2, "feature_cols": cols,
          "label_col": {"name": "label", "dtype": "float"}}
    cfg_dir = work / f"profile_{rows}_config"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (cfg_dir / "dataset_config.yaml").write_text(yaml.safe_dump({f"profile_{rows}": ds}))
    return load_feature_map(build_dataset(load_dataset_config(cfg_dir, f"profile_{rows}"), rebuild=rebuild))


def time_steps(model, ds, steps, warmup):
    import keras

    stamps = []

    class T(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    model.fit(ds, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[T()])
    return (stamps[-1] - stamps[warmup - 1]) / steps


def csv_rows(rows, bs, fps, gflops, source):
    """The runs-CSV rows: (variant, seconds per step) -> ms/step, samples/s and the fraction of the sgemm
    roofline (`gflops`: the mean of the sgemm measured before and after)."""
    return [{"section": 0, "variant": name, "ms/step": s * 1000, "samples/s": bs / s,
             "roofline fraction": bs / s * fps / (gflops * 1e9), "source": source} for name, s in rows]


def write_results(rows, results_dir=None):
    """Append `rows` (csv_rows') to `<results_dir>/runs/profile_deepfm.csv` and regenerate `profile_deepfm.md`
    (results_dir: default benchmark/results). Returns the table's path."""
    from benchmark import tables

    return tables.record("profile_deepfm.csv", rows, ["profile_deepfm.md"], results_dir or tables.RESULTS)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=HP["batch_size"])
    ap.add_argument("--clipnorm", type=float, default=10.0,
                    help="global gradient-norm clipping (the training default, max_gradient_norm: 10); 0: none")
    ap.add_argument("--record", action="store_true",
                    help="append the rows to benchmark/results/runs/profile_deepfm.csv and regenerate profile_deepfm.md")
    ap.add_argument("--results-dir", default=None,
                    help="with --record: a copy of benchmark/results/ to append to (default: benchmark/results/)")
    ap.add_argument("--only", nargs="*", default=None, help="run only variants whose name contains one of these")
    ap.add_argument("--rebuild", action="store_true",
                    help="rebuild the processed set in this process before timing (the peer harness preprocesses "
                         "and then trains in one process; compare with and without)")
    args = ap.parse_args()

    import keras
    import tensorflow as tf

    from benchmark.peers.run_peers import flops_per_sample, sgemm_gflops
    from fuxi_like.data.tf_dataset import InputPipeline
    from fuxi_like.experiment import load_model_module
    from fuxi_like.training.optimizers import get_optimizer

    HP["batch_size"] = args.batch_size
    fmap = processed(args.rows, rebuild=args.rebuild)
    DeepFM = load_model_module(ROOT / "model_zoo" / "DeepFM").DeepFM
    bs = HP["batch_size"]
    pipe = InputPipeline(fmap, bs, seed=1)
    train = pipe.dataset("train", shuffle=True).repeat()
    x, y = next(iter(train))
    cached = tf.data.Dataset.from_tensors((x, y)).repeat()
    fps = flops_per_sample("DeepFM", 39, HP)
    gflops = sgemm_gflops()
    rows = []

    def deepfm(opt):
        keras.utils.set_random_seed(1)
        m = DeepFM(fmap, hidden_units=HP["hidden_units"], embedding_dim=HP["embedding_dim"])
        m.compile(optimizer=get_optimizer(opt, HP["learning_rate"], args.clipnorm or None), loss="binary_crossentropy")
        return m

    for name, opt, ds in (("fit, pipeline, adam", "adam", train), ("fit, one cached batch, adam", "adam", cached),
                          ("fit, pipeline, lazyadam", "lazyadam", train),
                          ("fit, one cached batch, lazyadam", "lazyadam", cached),
                          ("fit, one cached batch, sgd", "sgd", cached)):
        if args.only and not any(o in name for o in args.only):
            continue
        s = time_steps(deepfm(opt), ds, args.steps, args.warmup)
        rows.append((name, s))
        print(f"{name}: {s * 1000:.1f} ms/step", flush=True)
    keras.utils.set_random_seed(1)
    mlp = keras.Sequential([keras.Input((39 * HP["embedding_dim"],))] +
                           [keras.layers.Dense(u, activation="relu") for u in HP["hidden_units"]] +
                           [keras.layers.Dense(1, activation="sigmoid")])
    mlp.compile(optimizer="adam", loss="binary_crossentropy")
    dense = tf.data.Dataset.from_tensors((tf.random.normal((bs, 39 * HP["embedding_dim"])), y)).repeat()
    s = time_steps(mlp, dense, args.steps, args.warmup)
    rows.append(("MLP only (dense tower, one cached batch, adam)", s))
    gflops_after = sgemm_gflops()
    lines = [f"# DeepFM training step profile (Criteo-like, {args.rows:,} rows, {fmap.num_rows.get('train', 0):,} train)",
             "", f"Command: `python benchmark/diagnostics/profile_train_step.py --rows {args.rows} --batch-size {bs} "
             f"--clipnorm {args.clipnorm:g}{' --rebuild' if args.rebuild else ''}`; batch {bs}, embedding 16, MLP 400x400x400, global-norm clipping "
             f"{args.clipnorm:g} (DeepFM variants; 0 = none); sgemm {gflops:.0f} GFLOP/s before and {gflops_after:.0f} after; "
             f"{fps / 1e6:.2f} MFLOP per sample (dense, forward + backward).", "",
             "| variant | ms/step | samples/s | roofline fraction |", "|---|---|---|---|"]
    g = (gflops + gflops_after) / 2
    for name, s in rows:
        lines.append(f"| {name} | {s * 1000:.1f} | {bs / s:,.0f} | {bs / s * fps / (g * 1e9):.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.record:
        from benchmark import tables

        path = write_results(csv_rows(rows, bs, fps, g, tables.run_source(__file__)), args.results_dir)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
