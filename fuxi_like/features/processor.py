"""FeatureProcessor: fit vocabularies / normalizers on train, transform any split.

Types:
- categorical: string tokens -> ids (PAD=0, frequency order, OOV=last; tokens seen
  fewer than `min_categr_count` times map to OOV). Missing values map to OOV unless
  `fill_na` is given.
- numeric: float, `fill_na` (default 0), optional `normalizer` (standard|minmax).
- sequence: a `splitter`-joined string (CSV) or a list column (parquet), cut to
  `max_len` tokens at the `truncate` end (`pre`, the default: the front is cut and the
  last, most recent `max_len` tokens kept; `post`: the end is cut and the first
  `max_len` kept, for best-first lists such as recall pools) and padded on the
  `padding` side with 0. How many rows and tokens were cut is logged per feature and split.
  `pad_token` (optional) is a token that encodes to the padding id 0 wherever it
  appears and is never counted into the vocabulary: fixed-slot sequences (e.g. N
  look-alike users x H items each) keep their layout.
  `share_embedding: other` encodes with (and extends) the other feature's vocab.
- meta: carried with the batch (e.g. group ids for gAUC); ids are remapped unless
  `remap: false` (then the raw integers are kept).
- embedding: a dense float vector of size `pretrain_dim` per row.
Any categorical/sequence feature may have `pretrained_emb` (a key/value file); its
keys extend the vocab and the vectors are saved aligned to the ids.
Any categorical/sequence feature may have `vocab_keys: <csv file>:<column>` (the file
relative like other paths): the column's keys not in the fitted vocabulary get ids after
the training keys (and after `pretrained_emb` keys), in file order, so the ids of training
keys do not change; keys in the file get an id even below `min_categr_count`. For items that
occur only in valid/test (cold items) whose side data (e.g. text) a model must look up. On a
feature that shares another's embedding it extends the owner's vocabulary.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ConfigError, DataError, closest
from .feature_map import FeatureMap
from .normalizer import apply_normalizer, fit_normalizer
from .pretrained import load_pretrained
from .vocab import Vocab

log = logging.getLogger("fuxi_like")


def _read_csv(path, sep, columns, str_cols):
    dtype = {c: str for c in str_cols if c in columns}
    if len(sep) == 1:
        # pyarrow's multithreaded parser (strings stay Arrow-backed: no Python objects); a file
        # it rejects (e.g. a number column with text far down) is re-read by the C parser so the
        # checks below name the bad row
        try:
            return pd.read_csv(path, sep=sep, usecols=columns, dtype=dtype, engine="pyarrow")
        except pd.errors.ParserError as e:
            if "Expected" in str(e) and "columns" in str(e):  # the C parser below would drop the extra fields
                raise DataError(_field_count_error(path, sep)) from None
        except (pa.ArrowInvalid, ValueError):
            pass
    return pd.read_csv(path, sep=sep, usecols=columns, dtype=dtype, keep_default_na=True)


def _field_count_error(path, sep):
    """The message for a row whose field count differs from the header's (line number and both counts)."""
    import csv  # lazy: only this error path reads the file line by line

    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, delimiter=sep)
        header = next(reader, [])
        for row in reader:
            if row and len(row) != len(header):
                return (f"{path}: line {reader.line_num} has {len(row)} fields, the header {len(header)} "
                        f"({sep.join(row)[:120]!r}); fix the row or csv_sep (no field is dropped silently)")
    return f"{path}: a row's field count differs from the header's (csv_sep {sep!r})"


def _arrow_strings(col):
    """The Arrow string array behind a pandas column, or None if it has none."""
    arr = col.array
    if not isinstance(col.dtype, pd.StringDtype) or not hasattr(arr, "__arrow_array__"):
        return None
    out = arr.__arrow_array__()
    if not pa.types.is_string(out.type) and not pa.types.is_large_string(out.type):
        return None
    return out


def _read_one(path, fmt, sep, columns, str_cols):
    try:
        if fmt == "csv":
            try:
                head = pd.read_csv(path, sep=sep, nrows=0)
            except pd.errors.EmptyDataError:
                raise DataError(f"{path}: the file is empty (0 bytes or blank): no header, no rows") from None
            _check_columns(path, columns, list(head.columns))
            df = _read_csv(path, sep, columns, str_cols)
        else:
            names = pq.read_schema(path).names
            _check_columns(path, columns, names)
            df = pq.read_table(path, columns=columns).to_pandas()
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, pa.ArrowInvalid) as e:
        raise DataError(f"{path}: cannot read as {fmt}: {e}") from None
    return df


def _check_columns(path, wanted, present):
    for c in wanted:
        if c not in present:
            raise DataError(
                f"{path}: column '{c}' not found{closest(c, present)}. Columns: {', '.join(map(str, present))}"
            )


def read_table(path, fmt, sep, columns, str_cols=()):
    """Read the needed `columns` of a CSV/parquet file or a directory of shards."""

    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob(f"*.{fmt}"))
        if not files:
            raise DataError(f"{p}: directory holds no *.{fmt} files")
        df = pd.concat([_read_one(f, fmt, sep, columns, str_cols) for f in files], ignore_index=True)
    elif not p.is_file():
        raise DataError(f"Data file not found: {p}")
    else:
        df = _read_one(p, fmt, sep, columns, str_cols)
    if len(df) == 0:
        raise DataError(f"{p}: no data rows (a header only); a split needs at least one row")
    return df


def _bad_row(path, col, values, ok_mask, what):
    bad = np.flatnonzero(~ok_mask)
    i = int(bad[0])
    return DataError(
        f"{path}: column '{col}', row {i + 1} (data row, header excluded): "
        f"cannot parse {values[i]!r} as {what} ({len(bad)} bad value(s) in this column)"
    )


class FeatureProcessor:
    def __init__(self, cfg):
        """`cfg`: a validated dataset config (see `fuxi_like.config`)."""
        self.cfg = cfg
        self.features = {f["name"]: f for f in cfg["feature_cols"]}
        self.labels = [l["name"] for l in cfg["label_col"]]
        self.vocabs = {}
        self.normalizers = {}
        self.pretrained = {}  # owner name -> aligned float32 matrix
        for f in self.features.values():
            owner = f["share_embedding"]
            if owner and self.features[owner]["share_embedding"]:
                raise ConfigError(
                    f"{cfg['config_file']}: feature '{f['name']}' shares '{owner}', which itself "
                    f"shares '{self.features[owner]['share_embedding']}'; point to the table owner directly"
                )
            if f.get("vocab_keys") and f["type"] not in ("categorical", "sequence"):
                raise ConfigError(f"{cfg['config_file']}: feature '{f['name']}' has vocab_keys but is "
                                  f"{f['type']}, not categorical/sequence")
            if owner and self.features[owner]["type"] not in ("categorical", "sequence"):
                raise ConfigError(
                    f"{cfg['config_file']}: feature '{f['name']}' shares '{owner}', "
                    f"which is {self.features[owner]['type']}, not categorical/sequence"
                )

    # ------------------------------------------------------------------- read
    def raw_columns(self):
        cols = []
        for f in self.features.values():
            src = f["copy_from"] or f["name"]
            if src not in cols:
                cols.append(src)
        return cols + [l for l in self.labels if l not in cols]

    def read(self, path):
        str_cols = [f["copy_from"] or f["name"] for f in self.features.values()
                    if f["type"] in ("categorical", "sequence", "meta", "embedding")]
        df = read_table(path, self.cfg["data_format"], self.cfg["csv_sep"], self.raw_columns(), str_cols)
        df.attrs["path"] = str(path)
        return df

    def _column(self, df, f):
        return df[f["copy_from"] or f["name"]]

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _tokens(col, f):
        """Categorical column -> str tokens (missing -> None/null): an Arrow array when the
        column is Arrow-backed strings (the fast path: counted and encoded in Arrow),
        else an object array."""
        arrow = _arrow_strings(col)
        if arrow is not None:
            return pc.fill_null(arrow, str(f["fill_na"])) if f["fill_na"] is not None else arrow
        if f["fill_na"] is not None:
            col = col.fillna(str(f["fill_na"]))
        if isinstance(col.dtype, pd.StringDtype):  # read as str: no per-value conversion needed
            return col.to_numpy(dtype=object, na_value=None)
        arr = col.astype(object).to_numpy()
        out = np.empty(len(arr), dtype=object)
        isna = pd.isna(arr)
        out[isna] = None
        out[~isna] = [str(v) for v in arr[~isna]]
        return out

    @staticmethod
    def _split(col, f):
        """Sequence column -> (flat object array of tokens, lengths per row)."""
        values = col.to_numpy(dtype=object)
        lists = []
        for v in values:
            if v is None or (isinstance(v, float) and np.isnan(v)):
                lists.append([])
            elif isinstance(v, str):
                lists.append([t for t in v.split(f["splitter"]) if t != ""])
            else:  # list / array from parquet
                lists.append([str(t) for t in v])
        lengths = np.fromiter((len(l) for l in lists), dtype=np.int64, count=len(lists))
        flat = np.fromiter((t for l in lists for t in l), dtype=object, count=int(lengths.sum()))
        FeatureProcessor._check_splitter(values, lengths, f)
        return flat, lengths

    SPLITTERS = ("^", ",", "|", ";", " ", "\t", "#")

    @staticmethod
    def _check_splitter(values, lengths, f, sample=2000):
        """Warn when most rows of a sequence column give one token and contain another usual separator: a wrong
        `splitter` turns every history into one unknown token, silently (the vocabulary explodes instead)."""
        strings = [v for v in values[:sample] if isinstance(v, str) and v]
        if len(strings) < 10 or np.mean(lengths[:sample] <= 1) < 0.9:
            return
        for sep in FeatureProcessor.SPLITTERS:
            if sep == f["splitter"]:
                continue
            share = float(np.mean([sep in v for v in strings]))
            if share >= 0.5:
                log.warning("feature '%s': %.0f%% of the first %d rows hold one token with splitter %r, and %.0f%% "
                            "contain %r: is the splitter wrong?", f["name"], 100 * np.mean(lengths[:sample] <= 1),
                            min(sample, len(values)), f["splitter"], 100 * share, sep)
                return

    @staticmethod
    def _pad(ids, lengths, max_len, padding, truncate="pre"):
        """Flat ids + lengths -> [n, max_len]. A row longer than max_len is cut at the
        `truncate` end: `pre` keeps its last max_len tokens, `post` its first max_len."""
        n = len(lengths)
        out = np.zeros((n, max_len), dtype=np.int32)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        keep = np.minimum(lengths, max_len)
        row = np.repeat(np.arange(n), keep)
        # position within the kept window
        within = np.arange(int(keep.sum())) - np.repeat(np.cumsum(keep) - keep, keep)
        first = starts if truncate == "post" else ends - keep
        src = np.repeat(first, keep) + within
        col = within if padding == "post" else within + np.repeat(max_len - keep, keep)
        out[row, col] = ids[src]
        return out

    @staticmethod
    def _log_truncation(name, f, lengths, where):
        """Log how many rows of a sequence feature were longer than max_len and how many tokens
        were cut (the `truncate` end)."""
        over = lengths > f["max_len"]
        if not over.any():
            return
        cut = int((lengths[over] - f["max_len"]).sum())
        end = "end (truncate: post, the first max_len kept)" if f["truncate"] == "post" \
            else "front (truncate: pre, the last max_len kept)"
        log.warning("Sequence feature '%s' in %s: %d of %d rows longer than max_len=%d (longest %d); "
                    "%d tokens cut at the %s", name, where, int(over.sum()), len(lengths), f["max_len"],
                    int(lengths.max()), cut, end)

    # -------------------------------------------------------------------- fit
    def fit(self, train_df):
        path = train_df.attrs.get("path", "train data")
        counts = {}
        extra = {}
        for name, f in self.features.items():
            if f["type"] not in ("categorical", "sequence", "meta"):
                continue
            col = self._column(train_df, f)
            if f["type"] == "sequence":
                toks, _ = self._split(col, f)
                if f.get("pad_token") is not None:
                    toks = toks[toks != f["pad_token"]]
                c = pd.Series(toks, dtype=object).value_counts()
            else:
                toks = self._tokens(col, f)
                if isinstance(toks, (pa.Array, pa.ChunkedArray)):
                    vc = pc.value_counts(pc.drop_null(toks))
                    c = pd.Series(vc.field("counts").to_numpy(),
                                  index=pd.Index(vc.field("values").to_pylist(), dtype=object))
                else:
                    c = pd.Series(toks[~pd.isna(toks)], dtype=object).value_counts()
            owner = f["share_embedding"] or name
            counts[owner] = c if owner not in counts else counts[owner].add(c, fill_value=0)
            if f["pretrained_emb"]:
                keys, vecs = load_pretrained(f["pretrained_emb"])
                extra[owner] = (keys, vecs, f)
        for name, f in self.features.items():
            t = f["type"]
            if t in ("categorical", "sequence") and not f["share_embedding"]:
                min_count = f["min_categr_count"] or self.cfg["min_categr_count"]
                keys = extra[name][0] if name in extra else ()
                self.vocabs[name] = Vocab.fit(counts[name], min_count, keys)
            elif t == "meta" and f["remap"]:
                self.vocabs[name] = Vocab.fit(counts[name], 1)
            elif t == "numeric":
                col = self._numeric(train_df, f, path)
                if f["normalizer"]:
                    self.normalizers[name] = fit_normalizer(f["normalizer"], col)
        for name, f in self.features.items():
            if f.get("vocab_keys"):
                owner = f["share_embedding"] or name
                self.vocabs[owner] = self._extend_vocab(self.vocabs[owner], f["vocab_keys"], name)
        for owner, (keys, vecs, f) in extra.items():
            vocab = self.vocabs[owner]
            mat = np.zeros((vocab.size, vecs.shape[1]), dtype=np.float32)
            ids = vocab.encode(keys)
            ok = ids != vocab.oov_id
            mat[ids[ok]] = vecs[ok]
            self.pretrained[owner] = mat
        return self

    def _extend_vocab(self, vocab, spec, name):
        """`vocab` + the keys of `vocab_keys` (`<csv file>:<column>`) it lacks, in file order."""
        where = f"{self.cfg['config_file']}: feature '{name}'"
        path, sep, col = str(spec).rpartition(":")
        if not sep or not path or not col:
            raise ConfigError(f"{where}: vocab_keys must be '<csv file>:<column>', got {spec!r}")
        if not Path(path).is_file():
            raise DataError(f"{where}: vocab_keys file not found: {path}")
        try:
            _check_columns(path, [col], list(pd.read_csv(path, nrows=0).columns))
            keys = pd.read_csv(path, usecols=[col], dtype=str, keep_default_na=False)[col]
        except (pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
            raise DataError(f"{path}: cannot read as csv: {e}") from None
        known = set(vocab.tokens)
        new = [k for k in dict.fromkeys(keys.tolist()) if k != "" and k not in known]
        log.info("Feature '%s': %d key(s) of %s not in the fitted vocabulary (%d tokens) get ids after it",
                 name, len(new), spec, len(vocab.tokens))
        return Vocab(vocab.tokens + new) if new else vocab

    def _numeric(self, df, f, path):
        col = self._column(df, f)
        fill = 0.0 if f["fill_na"] is None else f["fill_na"]
        vals = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
        if not pd.api.types.is_numeric_dtype(col.dtype):  # text cells may not parse: find them
            raw = col.to_numpy(dtype=object)
            ok = ~np.isnan(vals) | pd.isna(raw)
            if not ok.all():
                raise _bad_row(path, f["copy_from"] or f["name"], raw, ok, "a number")
        vals = np.where(np.isnan(vals), float(fill), vals)
        return vals

    # -------------------------------------------------------------- transform
    def transform(self, df):
        """DataFrame -> dict name -> numpy array (int32 ids / float32 values)."""
        path = df.attrs.get("path", "data")
        out = {}
        for name, f in self.features.items():
            t = f["type"]
            col = self._column(df, f)
            if t == "categorical":
                out[name] = self.vocabs[f["share_embedding"] or name].encode(self._tokens(col, f))
            elif t == "sequence":
                vocab = self.vocabs[f["share_embedding"] or name]
                toks, lengths = self._split(col, f)
                ids = vocab.encode(toks)
                if f.get("pad_token") is not None:
                    ids = np.where(toks == f["pad_token"], 0, ids).astype(ids.dtype)
                split = df.attrs.get("split")
                self._log_truncation(name, f, lengths, f"split '{split}' ({path})" if split else path)
                out[name] = self._pad(ids, lengths, f["max_len"], f["padding"], f.get("truncate") or "pre")
            elif t == "meta":
                if f["remap"]:
                    out[name] = self.vocabs[name].encode(self._tokens(col, f))
                else:
                    vals = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
                    ok = ~np.isnan(vals)
                    if not ok.all():
                        raise _bad_row(path, f["copy_from"] or name, col.to_numpy(dtype=object), ok, "an integer id")
                    out[name] = vals.astype(np.int64)
            elif t == "numeric":
                vals = self._numeric(df, f, path)
                out[name] = (apply_normalizer(self.normalizers[name], vals)
                             if name in self.normalizers else vals.astype(np.float32))
            elif t == "embedding":
                out[name] = self._dense_vectors(col, f, path)
        for label in self.labels:
            raw = df[label].to_numpy(dtype=object)
            vals = pd.to_numeric(df[label], errors="coerce").to_numpy(dtype=np.float64)
            ok = ~np.isnan(vals)
            if not ok.all():
                raise _bad_row(path, label, raw, ok, "a numeric label")
            out[label] = vals.astype(np.float32)
        return out

    def _dense_vectors(self, col, f, path):
        dim = f["pretrain_dim"]
        rows = []
        for i, v in enumerate(col.to_numpy(dtype=object)):
            try:
                vec = np.asarray(v.split(f["splitter"]) if isinstance(v, str) else v, dtype=np.float32)
            except (TypeError, ValueError):
                raise DataError(f"{path}: column '{f['name']}', row {i + 1}: cannot parse {v!r} "
                                f"as a vector of floats") from None
            if vec.shape != (dim,):
                raise DataError(
                    f"{path}: column '{f['name']}', row {i + 1}: expected a vector of "
                    f"pretrain_dim={dim} floats, got shape {vec.shape}"
                )
            rows.append(vec)
        return np.stack(rows) if rows else np.zeros((0, dim), np.float32)

    # ----------------------------------------------------------- feature map
    def feature_map(self, data_dir, fingerprint, num_rows):
        feats = {}
        for name, f in self.features.items():
            spec = {"type": f["type"], "source": f["source"]}
            owner = f["share_embedding"] or name
            if f["type"] in ("categorical", "sequence", "meta") and owner in self.vocabs:
                spec.update(vocab_size=self.vocabs[owner].size, padding_idx=0, oov_idx=self.vocabs[owner].oov_id)
            if f["type"] == "sequence":
                spec.update(max_len=f["max_len"], padding=f["padding"], pooling=f["pooling"])
            if f["share_embedding"]:
                spec["share_embedding"] = f["share_embedding"]
            if f["embedding_dim"]:
                spec["embedding_dim"] = f["embedding_dim"]
            if f["type"] == "embedding":
                spec["pretrain_dim"] = f["pretrain_dim"]
            if f["type"] == "meta" and not f["remap"]:
                spec["remap"] = False
            if name in self.pretrained:
                spec.update(pretrained_emb=f"pretrained_{name}.npy", pretrain_dim=int(self.pretrained[name].shape[1]),
                            pretrain_usage=f["pretrain_usage"], freeze_emb=f["freeze_emb"])
            if name in self.normalizers:
                spec["normalizer"] = self.normalizers[name]
            feats[name] = spec
        return FeatureMap(self.cfg["dataset_id"], feats, self.labels, data_dir, fingerprint, num_rows)
