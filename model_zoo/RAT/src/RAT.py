"""RAT: Retrieval-Augmented Transformer for CTR prediction (Li et al., WWW'24).

Each row is scored together with the K training rows most similar to it (IDF-weighted exact
matching over categorical fields, `sample_retrieval.py` in this folder; training rows only
retrieve from other folds). The (K+1) samples x (F+1) tokens -- F field embeddings plus a label
token (0/1 for retrieved rows, 2 = unknown for the target) -- pass through attention blocks;
the target's label-token output, a DNN over the target's fields and a wide LR term give the logit.

Variants (`variant:`):
- `cascade` (RAT, official RAT_m2): per block, intra-sample attention (over fields), then
  cross-sample attention (over samples, per field), then a feed-forward net; layer norm before
  the two attentions only, no final norm (official placement);
- `joint` (RAT_JM, m0): one pre-LN Transformer over all (K+1)(F+1) tokens;
- `encoders` (RAT_CE, m1): an intra-sample Transformer, then a cross-sample Transformer over
  each sample's label-token summary;
- `parallel` (RAT_PA, m3): intra and cross attention in parallel with a shared query
  projection and half the heads each, outputs averaged.
Empty retrieval slots (fewer than K rows with a non-zero score) are masked as attention keys
(`mask_empty_slots: true`). The official code does not mask them and fills them with the last
training row; `mask_empty_slots: false` reproduces that.
"""

import keras
import numpy as np
from keras import ops

from fuxi_like.data.tf_dataset import load_split
from fuxi_like.errors import ConfigError
from fuxi_like.layers import FeatureEmbedding, LogisticRegression, MLPBlock, get_regularizer
from fuxi_like.models import BaseModel, register_model

from .sample_retrieval import cached_neighbors

VARIANTS = ("cascade", "joint", "encoders", "parallel")


class Attention(keras.layers.Layer):
    """Multi-head attention as in the official code: bias-free q/k/v, scaled dot product,
    output projection + dropout (identity when one head of width d). `key_mask`: [N, T]."""

    def __init__(self, dim, num_heads, dim_head, dropout=0.0, to_q=None, **kwargs):
        super().__init__(**kwargs)
        self.h, self.dh = int(num_heads), int(dim_head)
        self.to_q = to_q or keras.layers.Dense(self.h * self.dh, use_bias=False)
        self.to_k = keras.layers.Dense(self.h * self.dh, use_bias=False)
        self.to_v = keras.layers.Dense(self.h * self.dh, use_bias=False)
        self.project = not (self.h == 1 and self.dh == dim)
        self.to_out = keras.layers.Dense(dim) if self.project else None
        self.drop = keras.layers.Dropout(dropout)

    def _heads(self, x):
        n, t = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (n, t, self.h, self.dh)), (0, 2, 1, 3))

    def call(self, x, key_mask=None, training=None):
        q, k, v = self._heads(self.to_q(x)), self._heads(self.to_k(x)), self._heads(self.to_v(x))
        logits = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * (self.dh ** -0.5)
        if key_mask is not None:
            logits = ops.where(ops.cast(key_mask, "bool")[:, None, None, :], logits, ops.cast(-1e9, logits.dtype))
        out = ops.matmul(ops.softmax(logits, axis=-1), v)
        n, t = ops.shape(x)[0], ops.shape(x)[1]
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (n, t, self.h * self.dh))
        return self.drop(self.to_out(out), training=training) if self.project else out


class FeedForward(keras.layers.Layer):
    def __init__(self, dim, scale, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.d1 = keras.layers.Dense(int(dim * scale), activation="gelu")
        self.d2 = keras.layers.Dense(dim)
        self.drop1, self.drop2 = keras.layers.Dropout(dropout), keras.layers.Dropout(dropout)

    def call(self, x, training=None):
        return self.drop2(self.d2(self.drop1(self.d1(x), training=training)), training=training)


def _ln():
    return keras.layers.LayerNormalization(epsilon=1e-5)


class Transformer(keras.layers.Layer):
    """Pre-LN Transformer with a final layer norm (the JM and CE variants)."""

    def __init__(self, dim, depth, heads, dim_head, scale, dropout, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [(_ln(), Attention(dim, heads, dim_head, dropout), _ln(), FeedForward(dim, scale, dropout))
                       for _ in range(depth)]
        self.final = _ln()

    def call(self, x, key_mask=None, training=None):
        for ln1, att, ln2, ff in self.blocks:
            x = x + att(ln1(x), key_mask=key_mask, training=training)
            x = x + ff(ln2(x), training=training)
        return self.final(x)


@register_model
class RAT(BaseModel):
    def __init__(self, feature_map, model_id="RAT", variant="cascade", retrieval_fields=None, topk=5,
                 num_folds=10, retrieval_seed=0, mask_empty_slots=True, depth=4, num_heads=2, dim_head=10,
                 scale_dim=4, emb_dropout=0.0, attn_dropout=0.0, dnn_hidden_units=(400, 400, 400),
                 dnn_activations="relu", net_dropout=0.0, batch_norm=False, use_wide=True, **kwargs):
        super().__init__(feature_map, model_id=model_id, **kwargs)
        if variant not in VARIANTS:
            raise ConfigError(f"RAT: variant must be one of {VARIANTS}, got {variant!r}")
        self.fields = self.check_fields(feature_map)
        self.variant = variant
        self.topk = int(topk)
        self.retrieval_fields = list(retrieval_fields or self.fields)
        unknown = [f for f in self.retrieval_fields if f not in self.fields]
        if unknown:
            raise ConfigError(f"RAT: retrieval_fields {unknown} are not among the model's fields {self.fields}")
        self.num_folds, self.retrieval_seed = int(num_folds), int(retrieval_seed)
        self.mask_empty_slots = bool(mask_empty_slots)
        d = self.embedding_dim
        self.embedding = self.make_embedding(features=self.fields)
        self.label_emb = keras.layers.Embedding(3, d, embeddings_regularizer=get_regularizer(
            self.embedding_regularizer, half=True), name="label_embedding")
        self.emb_drop = keras.layers.Dropout(emb_dropout)
        if variant == "cascade":
            self.blocks = [(_ln(), Attention(d, num_heads, dim_head, attn_dropout), _ln(),
                            Attention(d, num_heads, dim_head, attn_dropout), FeedForward(d, scale_dim, attn_dropout))
                           for _ in range(depth)]
        elif variant == "parallel":
            self.blocks = []
            for _ in range(depth):
                shared_q = keras.layers.Dense(max(num_heads // 2, 1) * dim_head, use_bias=False)
                self.blocks.append((_ln(), Attention(d, max(num_heads // 2, 1), dim_head, attn_dropout, to_q=shared_q),
                                    Attention(d, max(num_heads // 2, 1), dim_head, attn_dropout, to_q=shared_q),
                                    FeedForward(d, scale_dim, attn_dropout)))
        elif variant == "joint":
            self.joint = Transformer(d, depth, num_heads, dim_head, scale_dim, attn_dropout)
        else:
            self.intra = Transformer(d, depth, num_heads, dim_head, scale_dim, attn_dropout)
            self.cross = Transformer(d, depth, num_heads, dim_head, scale_dim, attn_dropout)
        self.readout = keras.layers.Dense(1)
        self.dnn = MLPBlock(dnn_hidden_units, dnn_activations, output_dim=1, dropout_rates=net_dropout,
                            batch_norm=batch_norm, kernel_regularizer=self.net_regularizer) if dnn_hidden_units else None
        self.lr = LogisticRegression(feature_map, regularizer=self.embedding_regularizer) if use_wide else None

    @staticmethod
    def check_fields(fmap):
        fields = fmap.names()
        other = [n for n in fields if fmap.features[n]["type"] != "categorical"]
        if other:
            raise ConfigError(f"RAT embeds retrieved rows field by field and supports categorical features only; "
                              f"drop {other} with use_features")
        return fields

    # ------------------------------------------------------------ retrieval
    def extra_inputs(self):
        """Per-row inputs: the retrieved rows' fields (`ret_<field>` [n, K]), labels and slot mask."""
        fmap, fields = self.feature_map, self.fields
        nbrs = cached_neighbors(fmap, self.retrieval_fields, k=self.topk, num_folds=self.num_folds,
                                seed=self.retrieval_seed)
        train = load_split(fmap, "train")
        label = train[fmap.labels[0]].astype("float32")
        mask_empty = self.mask_empty_slots

        def augment(split, arrays):
            idx = nbrs[split][0]
            empty = idx < 0
            if mask_empty:
                safe = np.where(empty, 0, idx)
                out = {f"ret_{f}": np.where(empty, 0, train[f][safe]).astype("int32") for f in fields}
                out["ret_label"] = np.where(empty, 0, label[safe]).astype("int32")
                out["ret_mask"] = (~empty).astype("float32")
            else:  # the official behaviour: index -1 reads the last training row, nothing is masked
                safe = np.where(empty, len(label) - 1, idx)
                out = {f"ret_{f}": train[f][safe].astype("int32") for f in fields}
                out["ret_label"] = label[safe].astype("int32")
                out["ret_mask"] = np.ones(idx.shape, dtype="float32")
            return out

        return augment

    # ---------------------------------------------------------------- model
    def _tokens(self, inputs, training):
        emb = self.embedding({f: inputs[f] for f in self.fields})
        target = FeatureEmbedding.stack(emb, self.fields)  # [B, F, d]
        ret = ops.stack([self.embedding.lookup(self.feature_map.table_owner(f), inputs[f"ret_{f}"])
                         for f in self.fields], axis=2)  # [B, K, F, d]
        samples = ops.concatenate([ops.expand_dims(target, 1), ret], axis=1)  # [B, t, F, d]
        b = ops.shape(target)[0]
        labels = ops.concatenate([ops.full((b, 1), 2, dtype="int32"), ops.cast(inputs["ret_label"], "int32")], 1)
        tok = ops.concatenate([ops.expand_dims(self.label_emb(labels), 2), samples], axis=2)  # [B, t, s, d]
        mask = ops.concatenate([ops.ones((b, 1)), ops.cast(inputs["ret_mask"], "float32")], axis=1)  # [B, t]
        return self.emb_drop(tok, training=training), mask, emb

    def call(self, inputs, training=None):
        x, mask, emb = self._tokens(inputs, training)
        b, t, s, d = ops.shape(x)[0], self.topk + 1, len(self.fields) + 1, self.embedding_dim
        cross_mask = ops.reshape(ops.repeat(ops.expand_dims(mask, 1), s, axis=1), (b * s, t))
        if self.variant in ("cascade", "parallel"):
            for blk in self.blocks:
                if self.variant == "cascade":
                    ln1, intra, ln2, cross, ff = blk
                    h = ops.reshape(x, (b * t, s, d))
                    h = h + intra(ln1(h), training=training)
                    h = ops.reshape(ops.transpose(ops.reshape(h, (b, t, s, d)), (0, 2, 1, 3)), (b * s, t, d))
                    h = h + cross(ln2(h), key_mask=cross_mask, training=training)
                else:
                    ln, intra, cross, ff = blk
                    n = ln(x)
                    a_in = ops.reshape(intra(ops.reshape(n, (b * t, s, d)), training=training), (b, t, s, d))
                    nc = ops.reshape(ops.transpose(n, (0, 2, 1, 3)), (b * s, t, d))
                    a_cr = ops.transpose(ops.reshape(cross(nc, key_mask=cross_mask, training=training), (b, s, t, d)), (0, 2, 1, 3))
                    h = ops.transpose(x + 0.5 * (a_in + a_cr), (0, 2, 1, 3))
                    h = ops.reshape(h, (b * s, t, d))
                h = h + ff(h, training=training)
                x = ops.transpose(ops.reshape(h, (b, s, t, d)), (0, 2, 1, 3))
            out = x[:, 0, 0, :]
        elif self.variant == "joint":
            tok_mask = ops.reshape(ops.repeat(ops.expand_dims(mask, 2), s, axis=2), (b, t * s))
            out = self.joint(ops.reshape(x, (b, t * s, d)), key_mask=tok_mask, training=training)[:, 0, :]
        else:
            h = self.intra(ops.reshape(x, (b * t, s, d)), training=training)[:, 0, :]
            out = self.cross(ops.reshape(h, (b, t, d)), key_mask=mask, training=training)[:, 0, :]
        logit = self.readout(out)
        if self.dnn is not None:
            logit = logit + self.dnn(FeatureEmbedding.flatten(emb, self.fields), training=training)
        if self.lr is not None:
            logit = logit + self.lr({f: inputs[f] for f in self.fields})
        return self.output_activation(logit)
