#!/usr/bin/env python
"""Run one experiment of this model folder.

    python run_expid.py --expid UIST_test --gpu -1

Config is read from ./config next to this file (override with --config); the
model class named by the expid's `model:` key is looked up in ./src.
"""
import sys
from pathlib import Path

from fuxi_like.cli import run_expid_main

if __name__ == "__main__":
    sys.exit(run_expid_main(default_expid="UIST_test", default_config=Path(__file__).resolve().parent / "config"))
