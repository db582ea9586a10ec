#!/usr/bin/env python
"""Make a dataset from a recipe (the same code the runner calls on first use).

    python datasets/make_dataset.py synthetic_ctr --out_dir data/raw/synthetic_ctr --param n_rows=100000
    python datasets/make_dataset.py frappe --out_dir data/raw/frappe --param raw_path=/path/to/frappe.csv

The recipes live in `fuxi_like/datasets/` (importable, tested); this script is a
thin command line over them, identical to `fuxi_like dataset ...`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuxi_like.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["dataset", *sys.argv[1:]]))
