"""Time training steps of an expid at full size (no convergence): the cost figure of arms too slow to train here.

    from step_cost import time_steps
    out = time_steps(folder / "config", "UIST_scientific", folder, {"representation": "content"}, steps=6)
    out["s_per_step"], out["s_per_epoch"]      # mean over `steps` timed steps (one untimed warm-up step first)
"""

import time


def time_steps(config_dir, expid, model_dir, overrides, steps, label=""):
    """Build `expid` with `overrides`, run one untimed and `steps` timed training steps on shuffled full-size batches;
    returns {s_per_step, s_per_epoch (extrapolated over the train split's batches), batch_size, seed, steps, model}."""
    import numpy as np

    from fuxi_like.experiment import build_experiment, prepare_experiment
    from fuxi_like.training.trainer import build_for_training

    spec = prepare_experiment(config_dir, expid, model_dir=model_dir, overrides=overrides)
    exp = build_experiment(spec)
    ds = exp.pipeline.dataset("train", shuffle=True)
    build_for_training(exp.model, ds)
    it = iter(ds)
    times = []
    for i in range(steps + 1):
        x, y = next(it)[:2]
        t0 = time.perf_counter()
        exp.model.train_on_batch(x, y)
        if i:
            times.append(time.perf_counter() - t0)
        print(f"{label} step {i}: {time.perf_counter() - t0:.2f}s", flush=True)
    per_step = float(np.mean(times))
    batches = -(-int(exp.feature_map.num_rows["train"]) // spec.params["batch_size"])
    return {"s_per_step": round(per_step, 3), "s_per_epoch": round(per_step * batches, 1), "steps": steps,
            "batch_size": spec.params["batch_size"], "seed": spec.params["seed"], "model": exp.model}
