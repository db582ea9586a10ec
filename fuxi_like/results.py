"""One row per finished run, appended to a results CSV safely under concurrency."""

import csv
import fcntl
import io
import json
import os
from pathlib import Path

COLUMNS = ["time", "expid", "model", "dataset_id", "params_hash", "valid", "test", "best_epoch", "epochs_run",
           "seconds_per_epoch", "wall_seconds", "params"]


def _fmt(metrics):
    return " - ".join(f"{k}: {v:.6f}" for k, v in (metrics or {}).items())


def append_result(path, row):
    """Append `row` (dict over COLUMNS) to `path` under an exclusive lock.

    Metrics dicts are written as `AUC: 0.981200 - logloss: 0.150000` for people,
    and `params` as JSON. The whole line is written with one `write` call on an
    O_APPEND file while holding `flock`, so concurrent runs never interleave or
    lose rows; the header is written by whoever finds the file empty.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = dict(row)
    for k in ("valid", "test"):
        if isinstance(values.get(k), dict):
            values[k] = _fmt(values[k])
    if isinstance(values.get("params"), dict):
        values["params"] = json.dumps(values["params"], sort_keys=True, default=str)
    buf = io.StringIO()
    csv.writer(buf).writerow([values.get(c, "") for c in COLUMNS])
    line = buf.getvalue()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_size == 0:
            hb = io.StringIO()
            csv.writer(hb).writerow(COLUMNS)
            line = hb.getvalue() + line
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_results(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def parse_metrics(text):
    out = {}
    for part in str(text).split(" - "):
        if ":" in part:
            k, v = part.rsplit(":", 1)
            out[k.strip()] = float(v)
    return out
