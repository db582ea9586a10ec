#!/usr/bin/env python
"""Ranked catalogue and out-of-vocabulary targets of the leave-one-out retrieval datasets (issue 20.4).

    python benchmark/diagnostics/catalogues.py [dataset_id ...]

The catalogue a retrieval model ranks is its training vocabulary (vocab_size minus PAD and OOV); a valid/test
target outside it maps to OOV and counts as a miss. Prints, per dataset id of the registry: the catalogue size
and how many valid/test targets are OOV (the figures quoted in the SparCode README and seq_retrieval_*.md).
Builds the processed data if needed (the raw files under ../shared/data).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IDS = ("beauty_loo_seq", "beauty_loo", "ml_loo_seq", "ml_loo", "ml_loo50", "scientific_loo_seq", "scientific_loo")


def main(ids):
    from fuxi_like.config import load_dataset_config
    from fuxi_like.data.build_dataset import build_dataset, load_feature_map
    from fuxi_like.data.tf_dataset import load_split

    for ds in ids:
        fmap = load_feature_map(build_dataset(load_dataset_config(ROOT / "model_zoo" / "SASRec" / "config", ds)))
        oov = fmap.features["item_id"]["vocab_size"] - 1
        out = [ds, f"catalogue {oov - 1}"]
        for split in ("valid", "test"):
            y = load_split(fmap, split)["item_id"].reshape(-1)
            out.append(f"{split}: {int((y == oov).sum())} of {len(y)} targets OOV")
        print(" | ".join(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or IDS)
