"""RAR (Huang et al., WWW'24): recall-augmented ranking with look-alike users and recall items.

A plug-in around a base CTR model (`base_model: DIN | DeepFM | DCNv2 | DNN`; `use_rar: false`
is the base alone, same code, same features minus the cross-stage ones). Per request:
1. cross-stage sets: the recall pool (item ids from the recall stage, in the item table) and
   the look-alike users (each the mean embedding of their snapshot items);
2. selection (no gradient through the choice): the top-k members most similar to the target
   item by SimHash (fixed random hyperplanes, `simhash_bits`, optionally `simhash_groups`
   blocks of the embedding hashed separately), or a learned bilinear score (`attention`,
   selected members weighted by sigmoid(score) so the scorer learns), `random` (ablation) or
   `none` (keep the whole pool);
3. co-interaction: look-alike users attend to recall items and recall items to look-alike
   users (multi-head cross attention, residual + layer norm), then target-aware (DIN)
   pooling of each set; the two vectors join the base model's fields;
4. loss: CTR BCE + `aux_loss_weight` x BCE of a recall-item head (user vector . recall item)
   against `recall_labels` (the user clicked that recall item later within the split).
No official code exists: everything beyond "selection by SimHash + set-to-set co-interaction +
joint loss" is a reconstruction (see README).
"""

import keras
import numpy as np
from keras import ops

from fuxi_like.errors import ConfigError
from fuxi_like.layers import (DINAttention, FactorizationMachine, FeatureEmbedding, LogisticRegression, MLPBlock,
                              masked_pool)
from fuxi_like.models import BaseModel, register_model

BASES = ("DIN", "DeepFM", "DCNv2", "DNN")
SELECTIONS = ("simhash", "attention", "random", "none")


class SimHash(keras.layers.Layer):
    """Signatures sign(x W) with fixed Gaussian hyperplanes W [d, bits]; with `groups` > 1 the
    embedding is cut into that many blocks, each hashed by its own bits/groups hyperplanes.
    similarity(t, X) = matching bits - differing bits = bits - 2 * Hamming distance."""

    def __init__(self, bits=64, groups=1, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.bits, self.groups, self.seed = int(bits), int(groups), int(seed)

    def build(self, input_shape):
        d = int(input_shape[-1])
        if d % self.groups or self.bits % self.groups:
            raise ConfigError(f"RAR: simhash_groups={self.groups} must divide the embedding dim ({d}) "
                              f"and simhash_bits ({self.bits})")
        w = np.random.default_rng(self.seed).standard_normal((d, self.bits)).astype("float32")
        block = np.kron(np.eye(self.groups), np.ones((d // self.groups, self.bits // self.groups)))
        self.w = self.add_weight(shape=(d, self.bits), name="hyperplanes", trainable=False,
                                 initializer=keras.initializers.Constant(w * block))

    def signature(self, x):
        return ops.sign(ops.matmul(x, self.w))

    def call(self, target, members):
        """target [B, d], members [B, N, d] -> similarity [B, N]."""
        return ops.einsum("bk,bnk->bn", self.signature(target), self.signature(members))


@register_model
class RAR(BaseModel):
    def __init__(self, feature_map, model_id="RAR", base_model="DIN", use_rar=True, use_recall=True,
                 use_lookalike=True, selection="simhash", recall_top_k=10, lookalike_top_k=10, simhash_bits=64,
                 simhash_groups=1, co_interaction=True, num_heads=2, aux_loss_weight=0.1,
                 item_field="item_id", history_field="hist_items", recall_field="recall_items",
                 lookalike_field="lookalike_items", recall_label_field="recall_labels", lookalike_history=10,
                 dnn_hidden_units=(200, 80), dnn_activations="relu", net_dropout=0.0, batch_norm=False,
                 attention_units=(64,), attention_activations="dice", din_use_softmax=False, num_cross_layers=3,
                 sampling_seed=None, **kwargs):
        super().__init__(feature_map, model_id=model_id, **kwargs)
        if base_model not in BASES:
            raise ConfigError(f"RAR: base_model must be one of {BASES}, got {base_model!r}")
        if selection not in SELECTIONS:
            raise ConfigError(f"RAR: selection must be one of {SELECTIONS}, got {selection!r}")
        self.base_model, self.selection = base_model, selection
        self.use_recall = bool(use_rar and use_recall)
        self.use_lookalike = bool(use_rar and use_lookalike)
        self.co_interaction = bool(co_interaction) and self.use_recall and self.use_lookalike
        self.recall_top_k, self.lookalike_top_k = int(recall_top_k), int(lookalike_top_k)
        self.aux_loss_weight = float(aux_loss_weight) if self.use_recall else 0.0
        self.item_field, self.history_field = item_field, history_field
        self.recall_field, self.lookalike_field = recall_field, lookalike_field
        self.recall_label_field = recall_label_field
        cross = {recall_field, lookalike_field, recall_label_field}
        self.base_names = [n for n in feature_map.names() if n not in cross]
        feature_map.require(item_field, ("categorical",), "RAR item_field")
        if base_model == "DIN" or self.aux_loss_weight:
            feature_map.require(history_field, ("sequence",), "RAR history_field")
        self.item_owner = feature_map.table_owner(item_field)
        for flag, name in ((self.use_recall, recall_field), (self.use_lookalike, lookalike_field)):
            if flag:
                feature_map.require(name, ("sequence",), "RAR")
                if feature_map.table_owner(name) != self.item_owner:
                    raise ConfigError(f"RAR: '{name}' must share the item table (share_embedding: {self.item_owner})")
        if self.use_lookalike:
            self.lookalike_history = int(lookalike_history)
            max_len = int(feature_map.features[lookalike_field]["max_len"])
            if max_len % self.lookalike_history:
                raise ConfigError(f"RAR: {lookalike_field} max_len {max_len} is not a multiple of "
                                  f"lookalike_history {self.lookalike_history} (users x items slots)")
            self.num_lookalike = max_len // self.lookalike_history
        if self.aux_loss_weight:
            feature_map.require(recall_label_field, ("embedding",), "RAR recall_label_field (aux loss)")
            n_lab = int(feature_map.features[recall_label_field].get("pretrain_dim") or 0)
            n_pool = int(feature_map.features[recall_field]["max_len"])
            if n_lab != n_pool:
                raise ConfigError(f"RAR: {recall_label_field} has {n_lab} labels but {recall_field} max_len is "
                                  f"{n_pool}; the labels are aligned with the pool slots (set both to the pool size)")

        self.embedding = self.make_embedding(features=self.base_names)
        self.embedding.build()
        d = self.embedding.dim(item_field)
        mlp = dict(hidden_activations=dnn_activations, dropout_rates=net_dropout, batch_norm=batch_norm,
                   kernel_regularizer=self.net_regularizer)
        if base_model == "DIN":
            self.din = DINAttention(attention_units, attention_activations, 0.0, din_use_softmax)
        if base_model == "DeepFM":
            self.lr = LogisticRegression(feature_map, regularizer=self.embedding_regularizer, features=self.base_names)
            self.fm = FactorizationMachine()
        if base_model == "DCNv2":
            import keras_rs

            self.cross = [keras_rs.layers.FeatureCross(kernel_regularizer=self.net_regularizer)
                          for _ in range(num_cross_layers)]
            self.mlp = MLPBlock(dnn_hidden_units, **mlp)
            self.out = keras.layers.Dense(1)
        else:
            self.mlp = MLPBlock(dnn_hidden_units, output_dim=1, **mlp)
        if self.use_recall or self.use_lookalike:
            # sampling_seed None: SimHash's hyperplanes and the random selection come from the run's
            # seeded RNGs (they change with the run's `seed`); an int fixes them across runs
            hash_seed = int(np.random.randint(2**31 - 1)) if sampling_seed is None else int(sampling_seed)
            self.simhash = SimHash(simhash_bits, simhash_groups, seed=hash_seed)
            self.simhash.build((None, d))
            self.select_proj = keras.layers.Dense(d, use_bias=False, name="select_proj")
            self.seed_generator = keras.random.SeedGenerator(sampling_seed)
            self.pool_recall = DINAttention(attention_units, attention_activations, 0.0, din_use_softmax)
            self.pool_lookalike = DINAttention(attention_units, attention_activations, 0.0, din_use_softmax)
        if self.co_interaction:
            self.att_users = keras.layers.MultiHeadAttention(num_heads, max(1, d // num_heads), name="users_to_items")
            self.att_items = keras.layers.MultiHeadAttention(num_heads, max(1, d // num_heads), name="items_to_users")
            self.ln_users = keras.layers.LayerNormalization(name="ln_users")
            self.ln_items = keras.layers.LayerNormalization(name="ln_items")
        if self.aux_loss_weight:
            self.aux_user = keras.layers.Dense(d, name="aux_user")
            self.aux_user.build((None, 2 * d))  # used only by the training loss: built before the optimizer

    # --------------------------------------------------------------- cross-stage sets
    def _select(self, target, members, mask, k, member_keys=None, row_keys=None, training=None):
        """Top-k members by the selection rule -> (members [B, k, d], mask [B, k]). member_keys [B, n] and
        row_keys [B] (int ids) fix the `random` ablation's choice per row at inference."""
        n = members.shape[1]
        if self.selection == "none" or k >= n:
            return members, mask
        if self.selection == "simhash":
            score = self.simhash(ops.stop_gradient(target), ops.stop_gradient(members))
        elif self.selection == "attention":
            score = ops.einsum("bd,bnd->bn", self.select_proj(target), members)
        elif training:  # random (ablation): a fresh draw every training step
            score = keras.random.uniform(ops.shape(mask), seed=self.seed_generator)
        else:  # ... and at inference a fixed pseudo-random order per row (a hash of the row's target id and the
            # member ids), so evaluating the same model twice gives the same metrics
            h = ops.cast(member_keys, "int64") * 2654435761 + ops.cast(ops.reshape(row_keys, (-1, 1)), "int64") * 97531
            score = ops.cast(ops.mod(h, 2147483647), "float32") / 2147483647.0
        score = ops.where(mask, ops.cast(score, "float32"), -1e9)
        val, idx = ops.top_k(score, k)
        picked = ops.take_along_axis(members, ops.expand_dims(idx, -1), axis=1)
        picked_mask = ops.take_along_axis(mask, idx, axis=1)
        if self.selection == "attention":  # the chosen members weighted by their score: the scorer learns
            picked = picked * ops.expand_dims(ops.sigmoid(val), -1)
        return picked, picked_mask

    def _cross(self, att, ln, q, q_mask, kv, kv_mask, training):
        both = ops.logical_and(ops.expand_dims(q_mask, 2), ops.expand_dims(kv_mask, 1))
        upd = att(q, kv, kv, attention_mask=both, training=training)
        any_key = ops.cast(ops.any(kv_mask, axis=1), upd.dtype)[:, None, None]  # no keys: no update
        return ln(q + upd * any_key)

    def recall_set(self, inputs):
        ids = inputs[self.recall_field]
        return self.embedding.lookup(self.item_owner, ids), ops.not_equal(ids, 0)

    def lookalike_set(self, inputs):
        ids = ops.reshape(inputs[self.lookalike_field], (-1, self.num_lookalike, self.lookalike_history))
        slot = ops.not_equal(ids, 0)
        emb = self.embedding.lookup(self.item_owner, ids)  # [B, L, H, d]
        w = ops.cast(slot, emb.dtype)[..., None]
        users = ops.sum(emb * w, axis=2) / ops.maximum(ops.sum(w, axis=2), 1.0)
        return users, ops.any(slot, axis=2)

    def rar_vectors(self, inputs, target, training=None):
        """The pooled look-alike-user and recall-item vectors (those enabled), each [B, d]."""
        sets = {}
        if self.use_lookalike:
            users, m = self.lookalike_set(inputs)
            keys = ops.sum(ops.reshape(ops.cast(inputs[self.lookalike_field], "int64"),
                                       (-1, self.num_lookalike, self.lookalike_history)), axis=2)  # a user: its items
            sets["lookalike"] = self._select(target, users, m, self.lookalike_top_k, keys, inputs[self.item_field],
                                             training)
        if self.use_recall:
            items, m = self.recall_set(inputs)
            sets["recall"] = self._select(target, items, m, self.recall_top_k, inputs[self.recall_field],
                                          inputs[self.item_field], training)
        if self.co_interaction:
            (xu, mu), (xi, mi) = sets["lookalike"], sets["recall"]
            sets["lookalike"] = (self._cross(self.att_users, self.ln_users, xu, mu, xi, mi, training), mu)
            sets["recall"] = (self._cross(self.att_items, self.ln_items, xi, mi, xu, mu, training), mi)
        pools = {"lookalike": self.pool_lookalike, "recall": self.pool_recall}
        return {name: pools[name](target, x, m, training=training) for name, (x, m) in sets.items()}

    # --------------------------------------------------------------- base model
    def call(self, inputs, training=None):
        emb = self.embedding(inputs, pool=False)
        target = emb[self.item_field]
        fields = []
        for name in self.base_names:
            e = emb[name]
            if self.base_model == "DIN" and name == self.history_field:
                e = self.din(target, e, FeatureEmbedding.sequence_mask(inputs[name]), training=training)
            elif len(e.shape) == 3:
                e = masked_pool(e, FeatureEmbedding.sequence_mask(inputs[name]))
            fields.append(e)
        rar = self.rar_vectors(inputs, target, training) if (self.use_recall or self.use_lookalike) else {}
        fields += list(rar.values())
        if training and self.aux_loss_weight:
            self.add_loss(self.aux_loss_weight * self.aux_loss(inputs, emb, rar, training))
        x = ops.concatenate(fields, axis=-1)
        if self.base_model == "DeepFM":
            logit = self.lr(inputs) + self.fm(ops.stack(fields, axis=1)) + self.mlp(x, training=training)
        elif self.base_model == "DCNv2":
            h = x
            for layer in self.cross:
                h = layer(x, h)
            logit = self.out(ops.concatenate([h, self.mlp(x, training=training)], axis=-1))
        else:
            logit = self.mlp(x, training=training)
        return self.output_activation(logit)

    def aux_loss(self, inputs, emb, rar, training=None):
        """Recall-item supervision: BCE of (user vector . recall item) against 'clicked later'."""
        hist = masked_pool(emb[self.history_field], FeatureEmbedding.sequence_mask(inputs[self.history_field]))
        user = self.aux_user(ops.concatenate([hist, rar.get("lookalike", ops.zeros_like(hist))], axis=-1))
        items, mask = self.recall_set(inputs)
        logits = ops.einsum("bd,bnd->bn", user, items)
        labels = ops.cast(inputs[self.recall_label_field], logits.dtype)[:, : logits.shape[1]]
        w = ops.cast(mask, logits.dtype)
        bce = ops.maximum(logits, 0) - logits * labels + ops.log1p(ops.exp(-ops.abs(logits)))
        return ops.sum(bce * w) / ops.maximum(ops.sum(w), 1.0)
