"""Seeded Criteo-like CTR data: 13 numeric + 26 categorical fields with Zipf vocabularies.

Vocabulary sizes run log-uniformly from 10 to `max_vocab` (100k); values are Zipf
(exponent 1.1) over each vocabulary; numeric fields are log1p of log-normal counts
with ~10% missing. The label has signal: per-value effects on 8 categorical fields, two
pairwise interactions and two numeric effects. Written as train/valid/test CSV (8:1:1).
"""

from pathlib import Path

import numpy as np
import pandas as pd


def generate(n_rows=1_000_000, max_vocab=100_000, seed=2024):
    rng = np.random.default_rng(seed)
    vocab = np.unique(np.round(np.logspace(1, np.log10(max_vocab), 26)).astype(int))
    vocab = np.resize(vocab, 26)
    cols, logit = {}, np.zeros(n_rows)
    for i in range(13):
        x = np.floor(rng.lognormal(1.0 + 0.2 * i, 1.2, n_rows))
        if i < 2:
            logit += 0.3 * (np.log1p(x) - np.log1p(x).mean())
        x = np.round(np.log1p(x), 4)  # log-scaled counts, as usually fed to CTR models
        x[rng.random(n_rows) < 0.1] = np.nan
        cols[f"I{i + 1}"] = x
    ids = {}
    for j in range(26):
        v = int(vocab[j])
        ranks = rng.zipf(1.1, n_rows)
        ids[j] = (ranks - 1) % v
        cols[f"C{j + 1}"] = ids[j]
        if j < 8:
            logit += 0.6 * rng.normal(size=v)[ids[j]]
    w = rng.normal(size=(int(vocab[0]), int(vocab[1])))
    logit += 0.8 * w[ids[0], ids[1]]
    w2 = rng.normal(size=(int(vocab[2]), int(vocab[3])))
    logit += 0.8 * w2[ids[2], ids[3]]
    p = 1 / (1 + np.exp(-(logit - 1.2)))
    df = pd.DataFrame({"label": (rng.random(n_rows) < p).astype(np.int8)})
    for k, v in cols.items():
        df[k] = v
    for j in range(26):  # hashed-looking string tokens, as in Criteo
        df[f"C{j + 1}"] = np.char.add(f"c{j + 1}_", df[f"C{j + 1}"].to_numpy().astype(str))
    return df


def write(out_dir, n_rows=1_000_000, seed=2024):
    out = Path(out_dir)
    paths = {s: out / f"{s}.csv" for s in ("train", "valid", "test")}
    if all(p.is_file() for p in paths.values()):
        return {k: str(v) for k, v in paths.items()}
    out.mkdir(parents=True, exist_ok=True)
    df = generate(n_rows, seed=seed)
    n_tr, n_va = int(0.8 * n_rows), int(0.1 * n_rows)
    for name, part in (("train", df.iloc[:n_tr]), ("valid", df.iloc[n_tr:n_tr + n_va]), ("test", df.iloc[n_tr + n_va:])):
        tmp = out / f".{name}.csv.tmp"
        part.to_csv(tmp, index=False)
        tmp.replace(paths[name])
    return {k: str(v) for k, v in paths.items()}
