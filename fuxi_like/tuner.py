"""Hyperparameter sweeps from a tuner YAML, run by parallel per-device workers.

Tuner YAML (relative paths are relative to the YAML file)::

    base_config: ../model_zoo/DeepFM/config/   # the model folder's config dir
    base_expid: DeepFM_frappe                  # expid whose params are the base
    dataset_id: frappe                         # one id or a list (a grid axis)
    search: grid                               # grid | random (random needs max_trials)
    max_trials: null
    seed: 0                                    # random-search seed
    tuner_space:                               # a list is an axis; a scalar is fixed;
      embedding_regularizer: [0.01, 0.1]       #   a list value itself needs [[...]]
      net_dropout: [0.1, 0.2]
      seed: [2024, 2025]                       # swept seeds -> mean/std in the summary
    variants:                                  # optional: named sets of model keys changed
      base: {use_rar: false}                   #   together (one more grid axis; ablations)
      full: {}

`expand_sweep` writes `<yaml stem>/config/{model,dataset}_config.yaml` with one
block per trial (expid `<base>_<NNN>_<hash8>`, hash of the full trial params) and
returns the trials. Dataset keys in the space (e.g. `min_categr_count`) create
dataset variants `<dataset_id>_<hash8>`. Every trial is validated before anything
runs: an unknown key fails the sweep at once, naming the tuner file.

`run_sweep` runs trials on worker slots (`--gpu 0 1 1 -1`: one trial at a time
per slot; -1 is a CPU slot), each a subprocess pinned with CUDA_VISIBLE_DEVICES,
logging to `<sweep>/logs/<expid>.log`. Finished trials (in the sweep's
results.csv) are skipped on a rerun; interrupted ones rerun and resume from their
last epoch snapshot. A failed trial is reported with its log path; the others go
on and the sweep exits non-zero at the end.
"""

import copy
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from .config import DATASET_KEYS, REGISTRY_ENV, find_dataset_entry, load_dataset_config, read_yaml, resolve_path
from .errors import ConfigError, unknown_key_error
from .experiment import find_model_class, load_model_config, load_model_module, validate_model_params
from .io_utils import atomic_write_text, stable_hash
from .results import read_results

TUNER_KEYS = {"base_config", "base_expid", "dataset_id", "tuner_space", "search", "max_trials", "seed", "variants"}
PATH_KEYS = ("data_root", "train_data", "valid_data", "test_data")


def _axis(v):
    return v if isinstance(v, list) else [v]


def expand_sweep(tuner_file, max_trials=None, search=None, seed=None):
    """Validate the tuner YAML, write the expanded configs, return (sweep_dir, trials)."""
    tuner_file = Path(tuner_file).resolve()
    spec = read_yaml(tuner_file)
    for k in spec:
        if k not in TUNER_KEYS:
            raise unknown_key_error(str(tuner_file), k, TUNER_KEYS)
    for k in ("base_config", "base_expid", "tuner_space"):
        if k not in spec:
            raise ConfigError(f"{tuner_file}: missing required key '{k}'")
    space = spec["tuner_space"] or {}
    if not isinstance(space, dict):
        raise ConfigError(f"{tuner_file}: 'tuner_space' must be a mapping of key -> list of values")
    search = search or spec.get("search", "grid")
    max_trials = max_trials if max_trials is not None else spec.get("max_trials")
    seed = seed if seed is not None else spec.get("seed", 0)
    if search not in ("grid", "random"):
        raise ConfigError(f"{tuner_file}: 'search' must be grid or random, got {search!r}")
    if search == "random" and not max_trials:
        raise ConfigError(f"{tuner_file}: random search needs max_trials (in the file or --max-trials)")

    base_dir = Path(resolve_path(spec["base_config"], tuner_file.parent))
    base = load_model_config(base_dir, spec["base_expid"])
    model_cls = find_model_class(base["model"], [load_model_module(base_dir.parent)],
                                 f"{tuner_file}: base_expid {spec['base_expid']}")
    datasets = _axis(spec.get("dataset_id") or base["dataset_id"])
    model_keys = [k for k in space if k not in DATASET_KEYS]
    data_keys = [k for k in space if k in DATASET_KEYS]
    for k in data_keys:
        if k in PATH_KEYS + ("feature_cols", "label_col", "recipe"):
            raise ConfigError(f"{tuner_file}: tuner_space key '{k}' cannot be swept (sweep scalar dataset keys only)")

    variants = spec.get("variants")
    if variants is not None and (not isinstance(variants, dict) or not variants
                                 or not all(isinstance(v, dict) or v is None for v in variants.values())):
        raise ConfigError(f"{tuner_file}: 'variants' must map a name to a mapping of model keys")
    variant_axis = list((variants or {"": {}}).items())
    grid = list(enumerate(itertools.product(datasets, *[_axis(space[k]) for k in data_keys], variant_axis,
                                            *[_axis(space[k]) for k in model_keys])))
    if search == "random":
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(grid), size=min(int(max_trials), len(grid)), replace=False)
        grid = [grid[i] for i in sorted(pick)]
    elif max_trials:
        grid = grid[:int(max_trials)]

    sweep_dir = tuner_file.parent / tuner_file.stem
    dataset_cfgs, model_cfgs, trials = {}, {}, []
    registry = set()
    for idx, combo in grid:  # idx: position in the full grid, so ids are stable across search modes
        ds_id = combo[0]
        dvals = dict(zip(data_keys, combo[1:1 + len(data_keys)]))
        vname, vvals = combo[1 + len(data_keys)]
        mvals = dict(zip(model_keys, combo[2 + len(data_keys):]))
        load_dataset_config(base_dir, ds_id)  # validates the base dataset spec
        entry = find_dataset_entry(base_dir, ds_id)
        ds_block = copy.deepcopy(entry["raw"])
        for k in PATH_KEYS:
            if ds_block.get(k):
                ds_block[k] = resolve_path(ds_block[k], entry["base_dir"])
        rec = ds_block.get("recipe")
        if isinstance(rec, dict):
            for k, v in list(rec.items()):
                if isinstance(v, str) and (k.endswith("_path") or k.endswith("_dir")):
                    rec[k] = resolve_path(v, entry["base_dir"])
        for c in ds_block.get("feature_cols", []):
            if c.get("pretrained_emb"):
                c["pretrained_emb"] = resolve_path(c["pretrained_emb"], entry["base_dir"])
        ds_block.update(dvals)
        trial_ds = f"{ds_id}_{stable_hash(ds_block, 8)}" if dvals else ds_id
        if entry["registry"] and not dvals:  # the workers read it from the registry, under its own id
            registry.update(str(d) for d in entry["registry_dirs"])
        else:  # a private or modified dataset: the sweep's own config defines it
            dataset_cfgs[trial_ds] = ds_block
        params = {k: v for k, v in base.items() if k not in ("expid", "config_file")}
        params.update(vvals or {})
        params.update(mvals)
        params["dataset_id"] = trial_ds
        h = stable_hash({"params": params, "dataset": ds_block}, 8)
        expid = f"{spec['base_expid']}_{idx + 1:03d}_{h}"
        check = dict(params, expid=expid, config_file=str(tuner_file))
        validate_model_params(check, model_cls)  # unknown / mistyped keys fail before anything runs
        model_cfgs[expid] = params
        swept = {**dvals, **({"variant": vname} if variants else {}), **mvals}
        trials.append({"expid": expid, "dataset_id": trial_ds, "swept": swept,
                       **({"dataset": ds_id} if len(datasets) > 1 else {})})
    cfg_dir = sweep_dir / "config"
    atomic_write_text(cfg_dir / "dataset_config.yaml", yaml.safe_dump(dataset_cfgs, sort_keys=False))
    atomic_write_text(cfg_dir / "model_config.yaml", yaml.safe_dump(model_cfgs, sort_keys=False))
    atomic_write_text(sweep_dir / "trials.json", json.dumps(
        {"tuner_file": str(tuner_file), "model_dir": str(base_dir.parent), "registry": sorted(registry),
         "trials": trials}, indent=1))
    return sweep_dir, trials


def finished_expids(results_csv):
    if not Path(results_csv).is_file():
        return set()
    return {r["expid"] for r in read_results(results_csv)}


def _die_with_parent():
    """In a trial's process, before exec: its own session (a Ctrl-C of the terminal reaches the sweep, which stops
    its trials, not each trial at random), and on Linux a SIGKILL when the sweep process dies, even by `kill -9`:
    no orphan keeps training, so a rerun never runs a trial twice."""
    if sys.platform.startswith("linux"):
        import ctypes  # lazy: only trial processes on Linux set the parent-death signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


def run_sweep(tuner_file, gpus=(-1,), max_trials=None, search=None, seed=None, poll=1.0, out=None):
    """Run (or resume) a sweep; returns (exit code, {expid: status})."""
    out = out or sys.stdout
    sweep_dir, trials = expand_sweep(tuner_file, max_trials, search, seed)
    info = json.loads((sweep_dir / "trials.json").read_text())
    results = sweep_dir / "results.csv"
    done = finished_expids(results)
    todo = [t["expid"] for t in trials if t["expid"] not in done]
    status = {t["expid"]: ("done" if t["expid"] in done else "left") for t in trials}
    if done:
        print(f"[sweep] {len(done & set(status))} trial(s) already finished in {results}: skipped", file=out)
    (sweep_dir / "logs").mkdir(parents=True, exist_ok=True)
    slots = [{"gpu": int(g), "proc": None, "expid": None, "log": None} for g in gpus]
    failures = []

    def line():
        c = {s: sum(1 for v in status.values() if v == s) for s in ("done", "running", "failed", "left")}
        return f"[sweep] done {c['done']} | running {c['running']} | failed {c['failed']} | left {c['left']}"

    print(line(), file=out, flush=True)
    while todo or any(s["proc"] for s in slots):
        for s in slots:
            if s["proc"] is not None and s["proc"].poll() is not None:
                rc = s["proc"].returncode
                s["log"].close()
                if rc == 0:
                    status[s["expid"]] = "done"
                else:
                    status[s["expid"]] = "failed"
                    log_path = sweep_dir / "logs" / f"{s['expid']}.log"
                    failures.append((s["expid"], rc, log_path))
                    print(f"[sweep] FAILED {s['expid']} (exit {rc}); log: {log_path}", file=out, flush=True)
                s["proc"] = None
                print(line(), file=out, flush=True)
            if s["proc"] is None and todo:
                expid = todo.pop(0)
                env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
                env["CUDA_VISIBLE_DEVICES"] = "" if s["gpu"] < 0 else str(s["gpu"])
                if info.get("registry"):  # the base folder's dataset registry, wherever the sweep lives
                    env[REGISTRY_ENV] = os.pathsep.join(info["registry"])
                cmd = [sys.executable, "-u", "-m", "fuxi_like.cli", "run", "--config", str(sweep_dir / "config"),
                       "--expid", expid, "--gpu", "-1" if s["gpu"] < 0 else "0",
                       "--model_dir", info["model_dir"], "--results", str(results)]
                s["log"] = open(sweep_dir / "logs" / f"{expid}.log", "a", encoding="utf-8")
                s["proc"] = subprocess.Popen(cmd, stdout=s["log"], stderr=subprocess.STDOUT, env=env,
                                             start_new_session=True, preexec_fn=_die_with_parent)
                s["expid"] = expid
                status[expid] = "running"
                print(line(), file=out, flush=True)
        time.sleep(poll)
    print(line(), file=out, flush=True)
    if failures:
        print(f"[sweep] {len(failures)} trial(s) failed:", file=out)
        for expid, rc, log_path in failures:
            print(f"  {expid}: exit {rc}, log {log_path}", file=out)
    print(f"[sweep] results: {results}", file=out, flush=True)
    return (1 if failures else 0), status
