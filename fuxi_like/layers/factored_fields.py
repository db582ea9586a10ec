"""Layers' arithmetic on field embeddings without building numeric fields' value x vector products.

A numeric field's embedding is its value times one learned vector, x_f * w_f. Where a layer multiplies
the flattened embeddings by a matrix or sums them over fields, the product never needs to exist:
- a dense layer on flatten(emb): the rows K_f of the kernel that a numeric field meets give
  x_f * (w_f @ K_f), so all numeric fields together are x_num @ P with P[f] = w_f @ K_f ([k, H], built
  once per step), and only the other fields go through the big matmul;
- the FM's field sum and sum of squares: sum_f x_f w_f = x_num @ W and sum_f x_f^2 |w_f|^2.
Same function and gradients as the plain path (tests compare both). On the Criteo-like set
(13 numeric of 39 fields, embedding 16, MLP 400x3) it removes a third of the first layer's
matmul work and the numeric part of the FM's element-wise work
(`python benchmark/micro_ab.py numeric-factored`).

Fields count as factored only while the FieldEmbeddings dict still holds the tensor its group made
(`FieldEmbeddings.factored`); any other field, or a plain dict, takes the ordinary path.
"""

from keras import ops

from .embedding import FeatureEmbedding, FieldEmbeddings


def split_fields(emb, names):
    """(plain: [(name, row offset, dim)], factored: [(x [B, k], w [k, D], [(column, row offset)])]) for the
    fields `names` in flatten order; factored fields grouped by the (x, w) pair they come from."""
    plain, groups, offset = [], {}, 0
    dims = FeatureEmbedding.field_dims(emb, names)
    for n in names:
        d = dims[n]
        f = emb.factored(n) if isinstance(emb, FieldEmbeddings) else None
        if f is None:
            plain.append((n, offset, d))
        else:
            groups.setdefault((id(f[0]), id(f[1])), [f[0], f[1], []])[2].append((f[2], offset))
        offset += d
    return plain, [tuple(g) for g in groups.values()]


def has_factored(emb, names):
    FeatureEmbedding.field_dims(emb, names)  # unknown names: a ConfigError naming them
    return isinstance(emb, FieldEmbeddings) and any(emb.factored(n) is not None for n in names)


def _rows(kernel, ranges):
    """kernel rows of the [start, end) ranges, in order, contiguous ranges read as one slice."""
    runs = []
    for a, b in ranges:
        if runs and runs[-1][1] == a:
            runs[-1][1] = b
        else:
            runs.append([a, b])
    parts = [kernel[a:b] for a, b in runs]
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=0)


def _row_blocks(kernel, plain, cols, d):
    """(kernel rows of the plain fields, kernel rows of the factored fields): one split when the two
    are complementary contiguous blocks (the usual order, numeric fields first or last; its gradient
    is one concat), else row slices."""
    pr = [(a, a + w) for _, a, w in plain]
    fr = [(a, a + d) for _, a in cols]
    n = int(kernel.shape[0])
    if pr and fr and pr == sorted(pr) and fr == sorted(fr):
        p0, p1, f0, f1 = pr[0][0], pr[-1][1], fr[0][0], fr[-1][1]
        contiguous = all(x[1] == y[0] for x, y in zip(pr, pr[1:])) and all(x[1] == y[0] for x, y in zip(fr, fr[1:]))
        if contiguous and (p0, p1, f0, f1) == (0, f0, f0, n):
            return tuple(ops.split(kernel, [f0], axis=0))
        if contiguous and (f0, f1, p0, p1) == (0, p0, p0, n):
            a, b = ops.split(kernel, [p0], axis=0)
            return b, a
    return (_rows(kernel, pr) if pr else None), _rows(kernel, fr)


def _columns(x, w, cols):
    """x's columns and w's rows `cols` (the whole tensors when cols is all of them, in order)."""
    if cols == list(range(int(x.shape[1]))):
        return x, w
    return ops.take(x, cols, axis=1), ops.take(w, cols, axis=0)


def dense_on_fields(emb, names, kernel):
    """flatten(emb, names) @ kernel, numeric fields as x_num @ (w_f @ K_f) instead of rows of the product."""
    names = list(names)
    plain, groups = split_fields(emb, names)
    if not groups:
        return ops.matmul(FeatureEmbedding.flatten(emb, names), kernel)
    out = None
    if len(groups) == 1:  # the usual case: one numeric group, kernel rows in two blocks
        d = int(groups[0][1].shape[-1])
        k_plain, k_num = _row_blocks(kernel, plain, groups[0][2], d)
        blocks = [k_num]
    else:
        k_plain = _rows(kernel, [(a, a + w) for _, a, w in plain]) if plain else None
        blocks = [_rows(kernel, [(a, a + int(w.shape[-1])) for _, a in cols]) for _, w, cols in groups]
    if plain:
        out = ops.matmul(FeatureEmbedding.flatten(emb, [n for n, _, _ in plain]), k_plain)
    for (x, w, cols), rows in zip(groups, blocks):
        x, w = _columns(x, ops.cast(w, kernel.dtype), [c for c, _ in cols])
        d = int(w.shape[-1])
        k = ops.reshape(rows, (len(cols), d, -1))  # [k, D, H]
        p = ops.squeeze(ops.matmul(ops.expand_dims(w, 1), k), 1)  # [k, H]: w_f @ K_f per field (batched matmul)
        term = ops.matmul(ops.cast(x, kernel.dtype), p)
        out = term if out is None else out + term
    return out


@ops.custom_gradient
def _fm_with_sums(v, s_extra, sq_extra):
    """FM over the fields v [B, F, D] plus fields known only by their sum s_extra [B, D] and their sum of
    squares sq_extra [B]: 0.5 * (|sum_f v_f + s_extra|^2 - sum_f |v_f|^2 - sq_extra)."""
    s = ops.sum(v, axis=1) + s_extra
    out = 0.5 * (ops.sum(s * s, axis=-1, keepdims=True) - ops.expand_dims(ops.sum(v * v, axis=(1, 2)) + sq_extra, -1))

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        return (ops.expand_dims(upstream, -1) * (ops.expand_dims(s, 1) - v), upstream * s,
                -0.5 * ops.squeeze(upstream, -1))

    return out, grad


def fm_on_fields(emb, names):
    """The FM's second-order term over fields `names` (one dim), numeric fields by their sums; None when no
    field is factored (use the plain [B, F, D] path then)."""
    names = list(names)
    plain, groups = split_fields(emb, names)
    if not groups:
        return None
    FeatureEmbedding.field_dims(emb, names, one_dim=True)
    s = sq = None
    for x, w, cols in groups:
        x, w = _columns(x, w, [c for c, _ in cols])
        w = ops.cast(w, x.dtype)
        ds, dsq = ops.matmul(x, w), ops.matmul(x * x, ops.sum(w * w, axis=-1))
        s, sq = (ds, dsq) if s is None else (s + ds, sq + dsq)
    if not plain:
        return 0.5 * (ops.sum(s * s, axis=-1, keepdims=True) - ops.expand_dims(sq, -1))
    v = FeatureEmbedding.stack(emb, [n for n, _, _ in plain])
    return _fm_with_sums(v, ops.cast(s, v.dtype), ops.cast(sq, v.dtype))
