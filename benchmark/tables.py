#!/usr/bin/env python
"""Generate every table in benchmark/results/*.md from the per-run CSV rows in benchmark/results/runs/.

    python benchmark/tables.py                 # regenerate every table
    python benchmark/tables.py --check         # exit 1 and print a diff for each table that differs
    python benchmark/tables.py frappe.md       # regenerate one table
    python benchmark/tables.py --results-dir DIR --check   # another copy of benchmark/results/

Each table has a spec, `benchmark/table_specs/<table>.md`: a front matter naming its runs CSV(s)
(`csv:`) and the commands that produce its raw rows (`raw:`), then the page's text, in which a line
`{{name {json args}}}` is replaced by a table built from the CSV rows (see DIRECTIVES). The raw rows
are the truth: a benchmark script appends its runs to `benchmark/results/runs/<table>.csv` and calls
`generate()` (`record()` does both); nobody edits a generated .md by hand.

A run is identified by its rows' `source` cell (`run_source()`: the command and its UTC time). A table
that shows one run's snapshot (not a log of runs) passes `"latest": true` to its directive: of the rows
it selects (per group for `agg`), only those of the last run appended are shown; earlier runs stay in the CSV.

Statistics: "mean ± std" is the mean and the sample standard deviation (ddof=1) over the n runs of a
group, and every such table states n. Where only an aggregate was ever kept (per-run rows lost), the
CSV holds that aggregate as one row with `row_kind=aggregate`, its published population std (ddof=0)
and its n; the table converts the std to the sample std (x sqrt(n/(n-1))) and marks the row.

No TensorFlow, no pandas: the standard library only, so CI can run `--check` cheaply.
"""

import argparse
import csv
import datetime
import difflib
import fcntl
import json
import math
import re
import shlex
import statistics
import sys
from pathlib import Path

from fuxi_like.results import parse_metrics  # results.csv metric cells; fuxi_like.results loads no TensorFlow

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmark" / "results"
SPECS = ROOT / "benchmark" / "table_specs"
GENERATOR = "python benchmark/tables.py"
AGG_MARK = "†"
AGG_NOTE = (f"{AGG_MARK} aggregate only: the per-run rows of this group were not kept, so its CSV row is the "
            "published aggregate (mean, population std over n runs); the std shown is converted to the sample "
            "std, x sqrt(n/(n-1)), from a value rounded to 4 decimals.")


# ---------------------------------------------------------------------------------------------- CSV rows


def read_rows(path):
    """The rows of a runs CSV as dicts of strings (an absent file: no rows)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def csv_header(path):
    """The column names of a runs CSV (an absent or empty file: None)."""
    path = Path(path)
    if not (path.is_file() and path.stat().st_size):
        return None
    with open(path, newline="") as f:
        return next(csv.reader(f))


def append_rows(path, rows, fieldnames=None):
    """Append dict rows to a runs CSV under an exclusive lock (flock), writing its header when it is new
    (columns: the existing header, else `fieldnames`, else the keys of the first row; missing values are
    left empty). A key that is not a column raises ValueError and writes nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", newline="") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            f.seek(0)
            first = f.readline()
            new = not first
            header = next(csv.reader([first])) if first else list(fieldnames or rows[0].keys())
            extra = sorted({k for r in rows for k in r} - set(header))
            if extra:
                raise ValueError(f"{path}: columns {extra} are not in its header {header}")
            w = csv.DictWriter(f, fieldnames=header, lineterminator="\n")
            if new:
                w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in header})
            f.flush()
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def run_source(script, argv=None, when=None):
    """The `source` cell of a script's rows: 'python <script relative to the repo> <args> on <UTC time>'
    (unique per run, so a table can show the latest run's rows)."""
    script = Path(script).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        pass
    args = shlex.join(sys.argv[1:] if argv is None else list(argv))
    when = when or datetime.datetime.now(datetime.UTC)
    return f"python {script} {args}".rstrip() + f" on {when:%Y-%m-%d %H:%M:%S} UTC"


def record(csv_name, rows, table_names, results_dir=RESULTS, out=sys.stdout):
    """What a benchmark script does with its results: append `rows` to `<results_dir>/runs/<csv_name>`,
    then regenerate `table_names` there. Returns the generated tables' paths."""
    results_dir = Path(results_dir)
    append_rows(results_dir / "runs" / csv_name, rows)
    generate(list(table_names), results_dir, out=out)
    return [results_dir / n for n in table_names]


def latest_run(rows, run_col="source"):
    """The rows of the last run appended (the rows whose `run_col` equals the last row's)."""
    return [r for r in rows if r.get(run_col) == rows[-1].get(run_col)] if rows else rows


def replace_rows(path, rows, where, fieldnames=None):
    """Drop the rows of a runs CSV that match every item of `where`, then append `rows`."""
    path = Path(path)
    old = read_rows(path)
    header = None
    if path.is_file() and path.stat().st_size:
        with open(path, newline="") as f:
            header = next(csv.reader(f))
    keep = [r for r in old if not all(str(r.get(k, "")) == str(v) for k, v in where.items())]
    if path.is_file():
        path.unlink()
    append_rows(path, keep + list(rows), header or fieldnames)


# ------------------------------------------------------------------------------------------- formatting


def fmt(value, spec):
    """Format a CSV cell: `spec` is a format spec with an optional literal suffix after a '|'
    (',.1f|x' -> '12.3x'); an empty value or one that is not a number is written as it is."""
    if spec is None or value is None or value == "":
        return "" if value is None else str(value)
    spec, _, suffix = spec.partition("|")
    try:
        return format(float(value), spec) + suffix
    except ValueError:
        return str(value)


def mean_std(values):
    """(mean, sample std with ddof=1 or None for n=1, n)."""
    v = [float(x) for x in values]
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else None), len(v)


def ms_text(mean, std, spec=".4f", sep="±"):
    return fmt(mean, spec) if std is None else f"{fmt(mean, spec)} {sep} {fmt(std, spec)}"


def table_md(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def group_stats(rows, metric, kind_col="row_kind"):
    """mean, sample std, n and whether it is an aggregate-only row, for `metric` over `rows` (the
    rows of one group: either per-run rows, or one aggregate row with `<metric> std_ddof0` and `n`)."""
    agg = [r for r in rows if r.get(kind_col) == "aggregate"]
    if agg:
        if len(rows) != 1:
            raise ValueError(f"a group mixes aggregate and per-run rows: {rows}")
        r = agg[0]
        n = int(r["n"])
        if r.get(metric, "") == "":
            return None, None, n, True
        std0 = r.get(f"{metric} std_ddof0", "")
        std = float(std0) * math.sqrt(n / (n - 1)) if std0 != "" and n > 1 else None
        return float(r[metric]), std, n, True
    vals = [r[metric] for r in rows if r.get(metric, "") != ""]
    if not vals:
        return None, None, len(rows), False
    m, s, n = mean_std(vals)
    return m, s, n, False


def groups(rows, keys):
    """Ordered {key tuple: rows} in first-appearance order."""
    out = {}
    for r in rows:
        out.setdefault(tuple(r.get(k, "") for k in keys), []).append(r)
    return out


# ------------------------------------------------------------------------------------------ directives


def d_rows(ctx, section=None, cols=(), where=None, latest=False):
    """The CSV rows of one section as they are: cols = [[csv column, format spec or null, header?], ...];
    latest: only the last run's rows."""
    rows = [r for r in ctx["rows"] if section is None or r.get("section") == str(section)]
    for k, v in (where or {}).items():
        rows = [r for r in rows if r.get(k) == v]
    if latest:
        rows = latest_run(rows)
    header = [c[2] if len(c) > 2 else c[0] for c in cols]
    return table_md(header, [[fmt(r.get(c[0], ""), c[1]) for c in cols] for r in rows])


def d_agg(ctx, keys, cols, section=None, n_header="n", order=None, latest=False):
    """One line per group of `keys`: cols = [[header, kind, column, format spec], ...] with kind
    'key' (the group's value), 'ms' (mean ± sample std), 'mean', 'list' (the runs' values joined by
    ', '), 'first' (the first run's value); the last column is n (with AGG_MARK for aggregate-only rows).
    latest: each group's rows of its last run only."""
    rows = [r for r in ctx["rows"] if section is None or r.get("section") == str(section)]
    out, any_agg = [], False
    for key, g in groups(rows, keys).items():
        if latest:
            g = latest_run(g)
        line, n_rows, is_agg = [], len(g), False
        for header, kind, col, spec in cols:
            if kind == "key":
                line.append(fmt(g[0].get(col, ""), spec))
            elif kind in ("ms", "mean"):
                m, s, n_rows, is_agg = group_stats(g, col)
                if m is None:
                    line.append("")
                else:
                    line.append(fmt(m, spec) if kind == "mean" else ms_text(m, s, spec))
            elif kind == "list":
                line.append(", ".join(fmt(r.get(col, ""), spec) for r in g))
            elif kind == "first":
                line.append(fmt(g[0].get(col, ""), spec))
            else:
                raise ValueError(f"unknown column kind {kind!r}")
        if any(r.get("row_kind") == "aggregate" for r in g):
            is_agg, n_rows = True, int(g[0]["n"])
        any_agg |= is_agg
        out.append(line + [f"{n_rows}{AGG_MARK if is_agg else ''}"])
    text = table_md([c[0] for c in cols] + [n_header], out)
    if any_agg:
        text += "\n\n" + AGG_NOTE
    return text


def d_frappe(ctx, models, params):
    """frappe.md: the latest run of each (expid, seed) in fuxi_like's results.csv rows."""
    latest = {}
    for r in ctx["rows"]:
        latest[(r["expid"], json.loads(r["params"])["seed"])] = r
    out = []
    for model in models:
        runs = [r for (e, _), r in sorted(latest.items(), key=lambda kv: kv[1]["time"]) if e == f"{model}_frappe"]
        if not runs:
            continue
        auc = mean_std([parse_metrics(r["test"])["AUC"] for r in runs])
        ll = mean_std([parse_metrics(r["test"])["logloss"] for r in runs])
        sec = mean_std([r["seconds_per_epoch"] for r in runs])
        out.append([model, ms_text(*auc[:2]), ms_text(*ll[:2]),
                    ", ".join(f"{r['epochs_run']} ({r['best_epoch']})" for r in runs),
                    ms_text(*sec[:2], spec=".1f"), params.get(model, ""), str(len(runs))])
    return table_md(["model", "test AUC", "test logloss", "epochs run (best)", "s / epoch (train)",
                     "params", "n (seeds)"], out)


def d_frappe_line(ctx, expid, text):
    """A sentence with one run's test metrics: text has {AUC}, {logloss}, {seed}."""
    runs = [r for r in ctx["rows"] if r["expid"] == expid]
    r = runs[-1]
    m = parse_metrics(r["test"])
    return text.format(AUC=f"{m['AUC']:.4f}", logloss=f"{m['logloss']:.4f}", seed=json.loads(r["params"])["seed"],
                       n=len({json.loads(x["params"])["seed"] for x in runs}))


def d_results_csv(ctx, metrics, name_col="model", sort_by=None, all_runs=False, expids=None, seed=None):
    """One line per fuxi_like results.csv row (the latest per expid, or every run with its time when `all_runs`;
    only `expids` / runs of `seed` when given): test metrics, best epoch, epochs, s/epoch; sorted by test
    `sort_by`, best first."""
    rows = [r for r in ctx["rows"] if (expids is None or r["expid"] in expids)
            and (seed is None or json.loads(r["params"]).get("seed") == seed)]
    if all_runs:
        runs = list(rows)
    else:
        latest = {}
        for r in rows:
            latest[r["expid"]] = r
        runs = list(latest.values())
    if sort_by:
        runs.sort(key=lambda r: -parse_metrics(r["test"]).get(sort_by, 0))
    out = []
    for r in runs:
        t = parse_metrics(r["test"])
        out.append(([r["time"], str(json.loads(r["params"]).get("seed"))] if all_runs else []) + [r[name_col]]
                   + [f"{t[m]:.4f}" for m in metrics]
                   + [r["best_epoch"], r["epochs_run"], f"{float(r['seconds_per_epoch']):.1f}"])
    head = ["model"] + [f"test {m}" for m in metrics] + ["best epoch", "epochs", "s/epoch"]
    return table_md((["run (time)", "seed"] if all_runs else []) + head, out)



def d_results_seeds(ctx, metrics, name_col="model", sort_by=None, expids=None):
    """One line per expid of a fuxi_like results.csv: mean ± sample std of each test metric over the runs whose
    params equal its latest run's in everything but `seed` (runs of an older config are left out, and counted in
    the last column; keys only one of two rows has are not compared), the seeds, best epochs, mean s/epoch; sorted by the mean of `sort_by`, best first."""
    by = {}
    for r in ctx["rows"]:
        if expids is None or r["expid"] in expids:
            by.setdefault(r["expid"], []).append(r)

    def same_config(r, ref):
        """Equal params but the seed; a key one row lacks (added to the runner later, with its default) is not a
        difference."""
        a, b = json.loads(r["params"]), json.loads(ref["params"])
        return all(a[k] == b[k] for k in set(a) & set(b) - {"seed"})

    out = []
    for expid, rows in by.items():
        cur = [r for r in rows if same_config(r, rows[-1])]
        tests = [parse_metrics(r["test"]) for r in cur]
        stats = {m: mean_std([t[m] for t in tests]) for m in metrics}
        seeds = [str(json.loads(r["params"]).get("seed")) for r in cur]
        line = [cur[-1][name_col]] + [ms_text(stats[m][0], stats[m][1]) for m in metrics] + [
            ", ".join(seeds), ", ".join(r["best_epoch"] for r in cur),
            f"{sum(float(r['seconds_per_epoch']) for r in cur) / len(cur):.1f}", str(len(cur)),
            str(len(rows) - len(cur))]
        out.append((stats[sort_by][0] if sort_by else 0, line))
    out.sort(key=lambda x: -x[0])
    head = ["model"] + [f"test {m}" for m in metrics] + ["seeds", "best epochs", "s/epoch", "n",
                                                         "older-config runs"]
    return table_md(head, [line for _, line in out])

def d_seeds_mean(ctx, cols, mean_spec, label="mean ± std", latest=False):
    """Per-seed rows and a last row 'mean ± sample std (n=...)' over them: cols = [[column, spec], ...];
    the first column is the run label, the second the metric averaged; latest: the last run's rows only."""
    rows = latest_run(ctx["rows"]) if latest else ctx["rows"]
    out = [[fmt(r.get(c), s) for c, s in cols] for r in rows]
    m, s, n = mean_std([r[cols[1][0]] for r in rows])
    out.append([f"{label} (n={n})", f"**{ms_text(m, s, mean_spec)}**"] + [""] * (len(cols) - 2))
    return table_md([c for c, _ in cols], out)


def _peer_rows(ctx, run):
    return [r for r in ctx["rows"] if r["kind"] == "peer" and r["run_id"] == run]


def d_peers_main(ctx, run):
    """The side-by-side table of one peer run (run_id) with its repeats."""
    cols = [("data", None), ("model", None), ("framework", None), ("repeat", ".0f"), ("preprocess s", ".1f"),
            ("train samples/s", ",.0f"), ("peak private MB", ",.0f"), ("test AUC", ".4f"),
            ("test logloss", ".4f"), ("roofline", ".2f"), ("roofline, executed FLOPs", ".2f")]
    rows = _peer_rows(ctx, run)
    return table_md([c for c, _ in cols], [[fmt(r[c], s) for c, s in cols] for r in rows])


RATIO_COLS = [("throughput x", ".2f"), ("preprocessing x", ".2f"), ("memory ratio", ".2f"), ("AUC diff", "+.4f"),
              ("roofline", ".2f"), ("roofline, executed FLOPs", ".2f")]


def d_peers_ratios(ctx, run):
    """Ratios ours / FuxiCTR per repeat (as the harness computed them from unrounded values), and
    their median over the repeats."""
    rows = [r for r in _peer_rows(ctx, run) if r["throughput x"] != ""]
    hdr = ["data", "model", "repeat", "throughput x", "preprocessing x", "memory ratio", "AUC diff", "our roofline",
           "our roofline, executed FLOPs"]
    label = {"fuxi_like": "", "fuxi_like, lazyadam": " (lazyadam)", "reference, plain Keras 3": " (plain Keras 3)"}
    out = []
    for r in rows:
        out.append([r["dataset"], r["model"] + label.get(r["framework"], f" ({r['framework']})"), r["repeat"]]
                   + [fmt(r[c], s) for c, s in RATIO_COLS])
    by = groups(rows, ["dataset", "model", "framework"])
    if any(len(g) > 1 for g in by.values()):
        for (d, m, f), g in by.items():
            out.append([d, m + label.get(f, f" ({f})"), f"median (n={len(g)})"]
                       + [fmt(statistics.median(float(r[c]) for r in g), s) for c, s in RATIO_COLS])
    return table_md(hdr, out)


def d_peers_runs(ctx, model="DeepFM", dataset="criteo_like"):
    """One line per repeat of every peer run of `model` on `dataset`: throughput of each side and the ratios."""
    rows = [r for r in ctx["rows"] if r["kind"] == "peer" and r["model"] == model and r["dataset"] == dataset]
    out = []
    for _, g in groups(rows, ["run_id", "repeat"]).items():
        side = {r["framework"]: r for r in g}
        a, lz, fx, pk = (side.get(k, {}) for k in ("fuxi_like", "fuxi_like, lazyadam", "FuxiCTR",
                                                   "reference, plain Keras 3"))

        def ratio(x):
            if x.get("throughput x"):
                return fmt(x["throughput x"], ".2f")
            return "n/a" if x.get("note") else ""

        first = g[0]
        out.append([first["time (UTC)"], first["batch size"], first["code state"] if first["repeat"] == "1"
                    else f"same, repeat {first['repeat']}", first["sgemm GFLOP/s"],
                    fmt(a.get("train samples/s", ""), ",.0f"),
                    fmt(lz.get("train samples/s", ""), ",.0f") or (f"({lz['note']})" if lz.get("note") else ""),
                    fmt(pk.get("train samples/s", ""), ",.0f"), fmt(fx.get("train samples/s", ""), ",.0f"),
                    ratio(a), ratio(lz), ratio(pk), "yes" if first["sampler bias"] == "yes" else ""])
    return table_md(["time (UTC)", "batch", "code state", "sgemm GFLOP/s", "ours Adam samples/s",
                     "ours lazyadam samples/s", "plain Keras 3 samples/s", "FuxiCTR samples/s", "ratio Adam",
                     "ratio lazyadam", "ratio plain Keras 3", "old memory sampler (biased)"], out)


def d_peers_kind(ctx, kind, cols, latest=False):
    """The rows of one kind of peers.csv row (prep-only, diagnostic) as they are; latest: the last run's only."""
    rows = [r for r in ctx["rows"] if r["kind"] == kind]
    if latest:
        rows = latest_run(rows)
    return table_md([c[2] if len(c) > 2 else c[0] for c in cols], [[fmt(r[c[0]], c[1]) for c in cols] for r in rows])


def d_rar(ctx, ref="base alone"):
    """rar_<dataset>.md: per (base, model) test AUC / logloss / gAUC mean ± sample std, the change of the mean
    AUC against the base alone, n, best epochs and mean s/epoch."""
    text = d_agg(ctx, ["base", "model"], [["base", "key", "base", None], ["model", "key", "model", None],
                                           ["test AUC", "ms", "test AUC", ".4f"],
                                           ["test logloss", "ms", "test logloss", ".4f"],
                                           ["test gAUC", "ms", "test gAUC", ".4f"], ["dAUC vs base", "key", "", None],
                                           ["best epochs", "list", "best epoch", ".0f"],
                                           ["s/epoch", "mean", "s/epoch", ".1f"]])
    by = groups(ctx["rows"], ["base", "model"])
    lines = text.split("\n")
    for i, ((base, model), g) in enumerate(by.items()):
        if model == ref or (base, ref) not in by:
            continue
        if g[0].get("row_kind") == "aggregate" and g[0].get("dAUC vs base", "") != "":
            d = float(g[0]["dAUC vs base"])  # computed from the unrounded means when the runs were kept
        else:
            d = group_stats(g, "test AUC")[0] - group_stats(by[(base, ref)], "test AUC")[0]
        cells = lines[2 + i].split(" | ")
        cells[5] = f"{d:+.4f}"
        lines[2 + i] = " | ".join(cells)
    return "\n".join(lines)


DIRECTIVES = {"rar": d_rar, "rows": d_rows, "agg": d_agg, "frappe": d_frappe, "frappe_line": d_frappe_line,
              "results_csv": d_results_csv, "results_seeds": d_results_seeds, "seeds_mean": d_seeds_mean, "peers_main": d_peers_main,
              "peers_ratios": d_peers_ratios, "peers_runs": d_peers_runs, "peers_kind": d_peers_kind}
DIRECTIVE = re.compile(r"^\{\{(\w+)(?:\s+(.*))?\}\}$")


# -------------------------------------------------------------------------------------------- generate


def parse_spec(path):
    """(front matter {key: [values]}, body lines) of a table spec."""
    text = path.read_text()
    head, sep, body = text.partition("\n---\n")
    if not sep:
        raise ValueError(f"{path}: no front matter (lines 'csv: ...', 'raw: ...', then '---')")
    meta = {}
    for line in head.splitlines():
        if line.strip():
            k, _, v = line.partition(":")
            meta.setdefault(k.strip(), []).append(v.strip())
    return meta, body


def render(name, results_dir=RESULTS):
    """The text of benchmark/results/<name> generated from its spec and runs CSV(s)."""
    spec = SPECS / name
    meta, body = parse_spec(spec)
    results_dir = Path(results_dir)
    csvs = meta.get("csv", [])
    rows = [r for c in csvs for r in read_rows(results_dir / "runs" / c)]
    ctx = {"rows": rows, "results_dir": results_dir}
    out = []
    for line in body.split("\n"):
        m = DIRECTIVE.match(line.strip())
        if m:
            args = json.loads(m.group(2)) if m.group(2) else {}
            if "csv" in args:  # a directive reading another runs CSV than the spec's
                args = dict(args)
                c = args.pop("csv")
                ctx = dict(ctx, rows=read_rows(results_dir / "runs" / c))
            else:
                ctx = dict(ctx, rows=rows)
            out.append(DIRECTIVES[m.group(1)](ctx, **args))
        else:
            out.append(line)
    raw = "; ".join(f"`{c}`" for c in meta.get("raw", [])) or "(none)"
    src = ", ".join(f"`benchmark/results/runs/{c}`" for c in csvs)
    header = (f"_Generated by `{GENERATOR}` from {src} and `benchmark/table_specs/{name}` (edit those, not this "
              f"file); raw rows from: {raw}._\n\n")
    return header + "\n".join(out).rstrip("\n") + "\n"


def table_names():
    return sorted(p.name for p in SPECS.glob("*.md"))


def generate(names=None, results_dir=RESULTS, check=False, out=sys.stdout):
    """Write (or, with check, compare) the named tables (default: all). Returns the names that differ."""
    results_dir = Path(results_dir)
    differ = []
    for name in names or table_names():
        text = render(name, results_dir)
        path = results_dir / name
        old = path.read_text() if path.is_file() else ""
        if old == text:
            continue
        differ.append(name)
        if check:
            out.write("".join(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                   f"committed/{name}", f"generated/{name}")))
        else:
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)
            out.write(f"wrote {path}\n")
    return differ


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tables", nargs="*", help="table file names (default: every spec in benchmark/table_specs/)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed table differs")
    ap.add_argument("--results-dir", default=str(RESULTS))
    a = ap.parse_args(argv)
    unknown = [t for t in a.tables if not (SPECS / t).is_file()]
    if unknown:
        ap.error(f"no spec for {unknown} in {SPECS}")
    differ = generate(a.tables or None, a.results_dir, check=a.check)
    if a.check:
        if differ:
            print(f"\n{len(differ)} table(s) differ from their runs CSV + spec: {', '.join(differ)}\n"
                  f"regenerate with `{GENERATOR}`", file=sys.stderr)
            return 1
        print(f"{len(a.tables or table_names())} tables match their runs CSVs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
