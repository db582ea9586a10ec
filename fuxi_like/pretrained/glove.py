"""GloVe 6B word vectors (Pennington et al., 2014; 400k lower-cased words, 50-d) as an embedding initialiser.

The `glove-6b-50d` weight set holds the vectors as one npy matrix [400000, 50] and the words, in row order,
as a parquet column. `GloVe.load()` reads both; `tokenize` splits text the way the vocabulary was built
closely enough for lookups (lower-cased; runs of letters/digits are words, every other non-space character
is a token of its own, as GloVe has "," "." "(" as words); `embedding_matrix(vocab)` gives the rows of a
vocabulary for `keras.layers.Embedding(..., embeddings_initializer=keras.initializers.Constant(m))`.

Deviation from GloVe's own tokenisation (Stanford PTB tokenizer): contractions are not split the PTB way
("don't" -> "don", "'", "t", where GloVe has "do", "n't"), and hyphenated words are split
("state-of-the-art" -> 5 tokens, which GloVe also holds as one word).

Example:
    >>> g = GloVe.load()  # doctest: +SKIP
    >>> vocab = ["[PAD]"] + sorted({t for text in texts for t in tokenize(text)})  # doctest: +SKIP
    >>> m = g.embedding_matrix(vocab, oov="random", seed=0, zero_rows=("[PAD]",))  # doctest: +SKIP
"""

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..errors import ConfigError, DataError
from .fetch import weights_dir

_TOKEN = re.compile(r"[^\W_]+|[^\w\s]|_", re.UNICODE)


def tokenize(text):
    """Lower-cased tokens of `text`: letter/digit runs, and each other non-space character alone."""
    return _TOKEN.findall(str(text).lower())


class GloVe:
    """Word vectors [V, D] and the word -> row index.

    Args:
        vectors: float32 array [V, D].
        words: the V words, in row order.
    """

    def __init__(self, vectors, words):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(words) != vectors.shape[0]:
            raise DataError(f"GloVe: {len(words)} words for vectors of shape {vectors.shape}")
        self.vectors, self.words = vectors, list(words)
        self.index = {}
        for i, w in enumerate(self.words):
            self.index.setdefault(w, i)  # first row wins if a word repeats
        self._unit = None

    @property
    def dim(self):
        return self.vectors.shape[1]

    @classmethod
    def load(cls, name="glove-6b-50d", cache_dir=None, local_dir=None):
        """Read a GloVe weight set: the one `*.npy` matrix and the one `*.parquet` word column in its directory."""
        d = weights_dir(name, cache_dir=cache_dir, local_dir=local_dir)
        npys, parquets = sorted(Path(d).glob("*.npy")), sorted(Path(d).glob("*.parquet"))
        if len(npys) != 1 or len(parquets) != 1:
            raise DataError(f"{d}: expected one .npy and one .parquet file, found {len(npys)} and {len(parquets)}")
        table = pq.read_table(parquets[0])
        cols = [c for c in table.column_names if not c.startswith("__")]
        if len(cols) != 1:
            raise DataError(f"{parquets[0]}: expected one word column, found {cols}")
        words = table.column(cols[0]).to_pylist()
        vectors = np.load(npys[0], allow_pickle=False)
        if len(words) != vectors.shape[0]:
            raise DataError(f"{parquets[0]}: {len(words)} words, but {npys[0].name} has {vectors.shape[0]} rows")
        return cls(vectors, words)

    def embedding_matrix(self, vocab, oov="random", seed=0, zero_rows=()):
        """Rows for `vocab` (a list of tokens, row i for vocab[i]) as float32 [len(vocab), D].

        A token found (as is, else lower-cased) gets its GloVe vector. An out-of-vocabulary token gets, with
        `oov="random"` (default), a row drawn from N(0, s^2), s the standard deviation of all GloVe values,
        from `numpy.random.default_rng(seed)` (rows differ so training can tell OOV words apart); with
        `oov="zero"`, zeros. Tokens in `zero_rows` (padding, mask) always get zeros.
        """
        if oov not in ("random", "zero"):
            raise ConfigError(f"GloVe.embedding_matrix: oov must be 'random' or 'zero', got {oov!r}")
        rows = self.lookup(vocab)
        out = np.zeros((len(vocab), self.dim), np.float32)
        hit = rows >= 0
        out[hit] = self.vectors[rows[hit]]
        if oov == "random":
            rng = np.random.default_rng(seed)
            out[~hit] = rng.normal(0.0, float(self.vectors.std()), size=(int((~hit).sum()), self.dim))
        zero = set(zero_rows)
        for i, tok in enumerate(vocab):
            if tok in zero:
                out[i] = 0.0
        return out

    def lookup(self, tokens):
        """Row index of each token (as is, else lower-cased) or -1, as an int64 array."""
        get = self.index.get
        return np.array([get(t, get(str(t).lower(), -1)) for t in tokens], dtype=np.int64)

    def coverage(self, vocab):
        """Fraction of `vocab` found in GloVe."""
        return float((self.lookup(vocab) >= 0).mean()) if len(vocab) else 0.0

    def nearest(self, word, k=10):
        """The `k` words nearest to `word` by cosine similarity, `[(word, cosine)]`, `word` itself left out."""
        row = self.lookup([word])[0]
        if row < 0:
            raise KeyError(f"'{word}' is not in the GloVe vocabulary")
        if self._unit is None:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self._unit = self.vectors / np.maximum(norms, 1e-12)
        sims = self._unit @ self._unit[row]
        sims[row] = -np.inf
        top = np.argpartition(-sims, k)[:k]
        top = top[np.argsort(-sims[top])]
        return [(self.words[i], float(sims[i])) for i in top]
