"""GreenRec's grid (Liu et al., arXiv 2403.04736) and OLEO (arXiv 2308.14155) as one model with two switches.

`item_encoder` (id | text_cnn | text_mhsa | plm | oleo, see items.py) x `user_model`:
- `naml`: additive attention over the history's item vectors; score = user . item (NAML's user encoder);
- `nrms`: multi-head self-attention over the history, then additive attention; dot product (NRMS);
- `lstur`: a GRU over the history whose initial state is the user's ID embedding (LSTUR-ini); dot product;
- `bst`: a Transformer encoder (learned positions) over the history, masked mean; dot product (GreenRec's BST);
- `dcn`: user = masked mean of the history vectors; [user; item] -> cross network || MLP -> logit (DCN);
- `din`: target attention of the candidate over the history (DIN's MLP attention, no softmax) + MLP -> logit.

Training rows hold one clicked item and `num_negatives` negatives (`candidates`, the click first). The dot-product
models are trained listwise, softmax cross-entropy of the click among the 1 + K candidates, DCN and DIN pointwise,
binary cross-entropy of each candidate (the click 1, the negatives 0), as GreenRec's BaseNegRecommender and its
CTR models; `objective` overrides it. Evaluation rows hold one candidate each, grouped by `impression_id`.

Items are encoded once per training step for the unique ids of the batch (history and candidates), and once per
evaluation for the whole vocabulary into a cache table that inference reads (GreenRec's "fast evaluation").
"""

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from fuxi_like.errors import ConfigError
from fuxi_like.layers import CrossNetwork, DINAttention, MLPBlock, masked_pool
from fuxi_like.models import register_model
from fuxi_like.models.content_model import ContentRecModel
from fuxi_like.pretrained.encode import encode_items
from fuxi_like.pretrained.glove import GloVe

from fuxi_like.datasets.content_rec import item_texts
from fuxi_like.layers.attention import AdditiveAttention
from fuxi_like.layers.item_encoders import FrozenTableEncoder, PlmItemEncoder

from .items import IdItemEncoder, TextItemEncoder, word_tokens

ITEM_ENCODERS = ("id", "text_cnn", "text_mhsa", "plm", "oleo")
USER_MODELS = ("naml", "nrms", "lstur", "bst", "dcn", "din")
DOT_MODELS = ("naml", "nrms", "lstur", "bst")


@register_model
class GreenRec(ContentRecModel):
    def __init__(self, feature_map, model_id="GreenRec", item_encoder="id", user_model="naml", objective="auto",
                 items_file=None, item_field="candidates", history_field="hist_items", user_field="user_id",
                 max_words=32, glove="glove-6b-50d", plm="all-minilm-l6-v2", plm_train_layers="all",
                 oleo_cache=None, item_dropout=0.1, heads=4, transformer_layers=2, attention_units=(64,),
                 dnn_hidden_units=(256, 128), cross_layers=3, net_dropout=0.1, cold_field="cold", **kwargs):
        super().__init__(feature_map, model_id=model_id, **kwargs)
        if item_encoder not in ITEM_ENCODERS:
            raise ConfigError(f"GreenRec: item_encoder must be one of {', '.join(ITEM_ENCODERS)}, got {item_encoder!r}")
        if user_model not in USER_MODELS:
            raise ConfigError(f"GreenRec: user_model must be one of {', '.join(USER_MODELS)}, got {user_model!r}")
        if objective == "auto":
            objective = "listwise" if user_model in DOT_MODELS else "pointwise"
        if objective not in ("listwise", "pointwise"):
            raise ConfigError(f"GreenRec: objective must be auto, listwise or pointwise, got {objective!r}")
        feature_map.require(item_field, ("sequence",), "GreenRec item_field")
        feature_map.require(history_field, ("sequence",), "GreenRec history_field")
        self.item_encoder_name, self.user_model, self.objective = item_encoder, user_model, objective
        self.item_field, self.history_field, self.user_field = item_field, history_field, user_field
        self.cold_field = cold_field
        owner = feature_map.features[item_field].get("share_embedding") or item_field
        self.vocab_size = int(feature_map.features[owner]["vocab_size"])
        d = self.embedding_dim
        self.encode_once = None  # OLEO: {"seconds", "reused", "fingerprint", "items"}
        self.item_encoder = self._make_item_encoder(item_encoder, owner, items_file, max_words, glove, plm,
                                                    plm_train_layers, oleo_cache, item_dropout, d)
        self.item_encoder(np.zeros((1,), np.int32))  # built now: training traces it inside tf.unique's branch
        self.item_cache = self.add_weight(name="item_cache", shape=(self.vocab_size, d), trainable=False,
                                          initializer="zeros")
        if user_model == "nrms":
            self.user_mhsa = keras.layers.MultiHeadAttention(heads, max(d // heads, 8), name="user_mhsa")
        if user_model in ("naml", "nrms"):
            self.user_pool = AdditiveAttention(d, name="user_attention")
        if user_model == "lstur":
            feature_map.require(user_field, ("categorical",), "GreenRec user_field (LSTUR's long-term user embedding)")
            self.user_table = keras.layers.Embedding(int(feature_map.features[user_field]["vocab_size"]), d,
                                                     name="user_embedding")
            self.gru = keras.layers.GRU(d, name="user_gru")
        if user_model == "bst":
            max_len = int(feature_map.features[history_field]["max_len"])
            self.positions = keras.layers.Embedding(max_len, d, name="positions")
            self.blocks = [(keras.layers.MultiHeadAttention(heads, max(d // heads, 8), dropout=net_dropout,
                                                            name=f"bst_att_{i}"),
                            keras.layers.LayerNormalization(name=f"bst_ln1_{i}"),
                            keras.layers.Dense(2 * d, activation="relu", name=f"bst_ff1_{i}"),
                            keras.layers.Dense(d, name=f"bst_ff2_{i}"),
                            keras.layers.LayerNormalization(name=f"bst_ln2_{i}"))
                           for i in range(transformer_layers)]
        if user_model == "dcn":
            self.cross = CrossNetwork(cross_layers, name="cross_network")
            self.deep = MLPBlock(dnn_hidden_units, "relu", dropout_rates=net_dropout, name="deep")
            self.head = keras.layers.Dense(1, name="logit")
        if user_model == "din":
            self.din_attention = DINAttention(attention_units, "relu", 0.0, False)
            self.deep = MLPBlock(dnn_hidden_units, "relu", output_dim=1, dropout_rates=net_dropout, name="deep")

    # ------------------------------------------------------------------------------------------ item side
    def _default_path(self, value, name):
        """`value`, else the registry's layout: data/raw/<dataset_id>/items.csv beside data/processed/<dataset_id>/
        (`items`), or the OLEO table inside the processed data directory (`oleo`)."""
        if value:
            return Path(value)
        data_dir = Path(self.feature_map.data_dir or ".")
        if name == "items":
            return data_dir.parents[1] / "raw" / data_dir.name / "items.csv"
        return data_dir / f"oleo_{self._plm_name}.parquet"

    def _make_item_encoder(self, kind, owner, items_file, max_words, glove, plm, plm_train_layers, oleo_cache,
                           item_dropout, d):
        if kind == "id":
            return IdItemEncoder(self.vocab_size, d, name="item_encoder")
        self._plm_name = Path(str(plm)).name
        items_file = self._default_path(items_file, "items")
        texts, found = item_texts(self.feature_map, owner, items_file, self.vocab_size)
        if found == 0:
            raise ConfigError(f"GreenRec: no item of the '{owner}' vocabulary has a text in {items_file}")
        if kind in ("text_cnn", "text_mhsa"):
            tokens, vocab = word_tokens(texts, max_words)
            vectors = GloVe.load(glove).embedding_matrix(vocab, zero_rows=("<pad>",))
            return TextItemEncoder(tokens, vectors, d, kind=kind.split("_")[1], dropout=item_dropout,
                                   name="item_encoder")
        from fuxi_like.pretrained.text import SentenceEncoder  # lazy: keras-hub is the optional `text` extra

        encoder = SentenceEncoder.from_preset(plm, sequence_length=max_words)
        if kind == "plm":
            token_ids = np.array(encoder.preprocess(texts)["token_ids"], dtype=np.int32)  # a writable copy
            token_ids[[i for i, t in enumerate(texts) if not t]] = 0  # no text: an all-padding row
            return PlmItemEncoder(encoder, token_ids, d, train_layers=plm_train_layers, name="item_encoder")
        oleo_cache = self._default_path(oleo_cache, "oleo")
        keyed = [(str(i), t) for i, t in enumerate(texts) if t]
        t0 = time.time()
        table = encode_items(encoder, keyed, oleo_cache, batch_size=64)
        vectors = np.zeros((self.vocab_size, table.values.shape[1]), np.float32)
        vectors[[int(k) for k in table.keys]] = table.values
        self.encode_once = {"seconds": float(table.info.get("seconds", time.time() - t0)), "reused": table.reused,
                            "fingerprint": table.fingerprint, "items": len(keyed)}
        return FrozenTableEncoder(vectors, d, dropout=item_dropout, name="item_encoder")

    def encode_item_ids(self, ids, training=None):
        """Item vectors [..., d] for an int tensor of ids: at training, the batch's unique ids run through the item
        encoder once; at inference, the cache table (`refresh_item_cache`)."""
        ids = ops.cast(ids, "int32")
        if not training:
            return ops.take(self.item_cache, ids, axis=0)
        flat = ops.reshape(ids, (-1,))
        uniq, where = tf.unique(flat)  # measured fast path: the text encoders run once per distinct item
        vectors = self.item_encoder(uniq, training=training)
        return ops.reshape(ops.take(vectors, where, axis=0), tuple(ops.shape(ids)) + (self.embedding_dim,))

    def refresh_item_cache(self, batch_size=1024):
        """Encode every item id of the vocabulary (inference mode) into the cache table inference reads."""
        out = []
        for start in range(0, self.vocab_size, batch_size):
            ids = np.arange(start, min(start + batch_size, self.vocab_size), dtype=np.int32)
            out.append(np.asarray(self.item_encoder(ids, training=False)))
        self.item_cache.assign(np.concatenate(out))

    # ------------------------------------------------------------------------------------------ user side
    def user_vector(self, inputs, hist, mask, training=None):
        if self.user_model == "naml":
            return self.user_pool(hist, mask)
        if self.user_model == "nrms":
            att = ops.cast(ops.expand_dims(mask, 1) * ops.expand_dims(mask, 2), "bool")
            return self.user_pool(self.user_mhsa(hist, hist, attention_mask=att, training=training), mask)
        if self.user_model == "lstur":
            u = self.user_table(ops.cast(ops.reshape(inputs[self.user_field], (-1,)), "int32"))
            return self.gru(hist, mask=ops.cast(mask, "bool"), initial_state=[u], training=training)
        if self.user_model == "bst":
            x = hist + self.positions(ops.arange(ops.shape(hist)[1]))[None]
            att = ops.cast(ops.expand_dims(mask, 1) * ops.expand_dims(mask, 2), "bool")
            for mha, ln1, ff1, ff2, ln2 in self.blocks:
                x = ln1(x + mha(x, x, attention_mask=att, training=training))
                x = ln2(x + ff2(ff1(x)))
            return masked_pool(x, mask)
        return masked_pool(hist, mask)  # dcn: mean of the history (din attends per candidate instead)

    def call(self, inputs, training=None):
        hist_ids = inputs[self.history_field]
        cand_ids = inputs[self.item_field]
        mask = ops.cast(ops.not_equal(hist_ids, 0), "float32")
        both = self.encode_item_ids(ops.concatenate([ops.cast(hist_ids, "int32"), ops.cast(cand_ids, "int32")], 1),
                                    training=training)
        h_len = ops.shape(hist_ids)[1]
        hist, cand = both[:, :h_len], both[:, h_len:]  # [B, H, d], [B, C, d]
        if self.user_model in DOT_MODELS:
            user = self.user_vector(inputs, hist, mask, training=training)
            logits = ops.sum(ops.expand_dims(user, 1) * cand, axis=-1)  # [B, C]
        else:
            b, c = ops.shape(cand)[0], ops.shape(cand)[1]
            flat_cand = ops.reshape(cand, (-1, self.embedding_dim))
            if self.user_model == "dcn":
                user = ops.repeat(self.user_vector(inputs, hist, mask, training=training), c, axis=0)
                x = ops.concatenate([user, flat_cand], -1)
                logit = self.head(ops.concatenate([self.cross(x), self.deep(x, training=training)], -1))
            else:  # din
                rep_hist = ops.repeat(hist, c, axis=0)
                rep_mask = ops.repeat(mask, c, axis=0)
                pooled = self.din_attention(flat_cand, rep_hist, rep_mask, training=training)
                logit = self.deep(ops.concatenate([pooled, flat_cand, pooled * flat_cand], -1), training=training)
            logits = ops.reshape(logit, (b, c))
        if training:
            return logits
        return ops.sigmoid(logits[:, :1])  # evaluation rows hold one candidate

    # ----------------------------------------------------------------------------------------- training
    def compile_from_params(self, params):
        super().compile_from_params(params)  # the optimizer of the training keys
        self.compile(optimizer=self.optimizer, loss=self._listwise if self.objective == "listwise" else
                     self._pointwise)

    @staticmethod
    def _listwise(y_true, logits):
        """Softmax cross-entropy of the click (candidate 0) among the 1 + K candidates."""
        return -ops.log_softmax(logits, axis=-1)[:, 0]

