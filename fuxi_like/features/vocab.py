"""Token vocabularies: PAD=0, tokens by descending frequency, OOV=last id."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

PAD, OOV = "__PAD__", "__OOV__"


class Vocab:
    """Maps string tokens to ids. Id 0 is padding, `oov_id` (the last) is unknown."""

    def __init__(self, tokens):
        self.tokens = list(tokens)  # real tokens, ids 1..n
        self._index = pd.Index(self.tokens, dtype=object)
        self._arrow = None

    @classmethod
    def fit(cls, counts: pd.Series, min_count=1, extra_tokens=()):
        """`counts`: token -> frequency. Ties are broken by token for determinism."""
        counts = counts[counts >= min_count]
        df = pd.DataFrame({"tok": counts.index.astype(str), "n": counts.to_numpy()})
        df = df.sort_values(["n", "tok"], ascending=[False, True], kind="stable")
        tokens = df["tok"].to_numpy(dtype=object).tolist()
        seen = set(tokens)
        tokens += sorted(t for t in set(map(str, extra_tokens)) if t not in seen)
        return cls(tokens)

    @property
    def size(self):
        """Table rows: PAD + tokens + OOV."""
        return len(self.tokens) + 2

    @property
    def oov_id(self):
        return len(self.tokens) + 1

    def encode(self, values) -> np.ndarray:
        """Array of string tokens (numpy/list, or an Arrow string array) -> int32 ids
        (unknown or missing -> OOV)."""
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            if self._arrow is None:
                self._arrow = pa.array(self.tokens, type=pa.string())
            found = pc.index_in(values, value_set=self._arrow)
            idx = pc.fill_null(found, -1).to_numpy()
            if isinstance(idx, list):  # pragma: no cover - old pyarrow chunked to_numpy
                idx = np.concatenate(idx)
        else:
            idx = self._index.get_indexer(np.asarray(values, dtype=object))
        ids = np.where(idx < 0, self.oov_id, idx + 1)
        return ids.astype(np.int32)

    def to_dict(self):
        d = {PAD: 0}
        d.update({t: i + 1 for i, t in enumerate(self.tokens)})
        d[OOV] = self.oov_id
        return d

    @classmethod
    def from_dict(cls, d):
        items = sorted(((i, t) for t, i in d.items() if t not in (PAD, OOV)))
        return cls([t for _, t in items])
