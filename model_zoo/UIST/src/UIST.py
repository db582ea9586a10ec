"""UIST (Liu et al., arXiv 2403.08206): users and items as a few discrete semantic tokens in a CTR model, scored by
hierarchical mixture inference (HMI), and the three paradigms it is compared with, as one model with a switch.

`representation`:
- `tokens` (UIST): an item is its L_i residual-quantization codes of its text vector, a user the L_u codes of the
  history of item text vectors (tokenizers: tokenizer.py, trained in `adapt`); each code is embedded from its
  codebook row (frozen or trainable: `frozen_codebooks`), projected to `embedding_dim`, summed coarse-to-fine
  (level 1, 1+2, ...), and a shared base CTR model scores all L_i x L_u (user granularity, item granularity) pairs;
  a learned Linear(L_i * L_u -> 1) mixes them into the logit (HMI).
- `embedding`: the cached 384-d MiniLM vector of each item (encode once) and the mean of the history's vectors for
  the user, each projected (the embedding-based paradigm).
- `id`: item ID embeddings; the user is the mean of the history's item-ID embeddings (the ID paradigm, with the same
  history the other arms read).
- `content`: MiniLM run inside the model on the item texts of every batch (the batch's distinct items once), the
  user the mean of its history's encoded items (the content-encoding paradigm); `plm_train_layers` top layers train.
The non-token paradigms are HMI with L_i = L_u = 1: the same base model on one (user, item) pair.

`base_model`: `dcn` ([u; i] -> cross network || MLP -> Dense(1)) or `deepfm` (the FM term over the two fields, u . i,
+ MLP([u; i]) -> 1). Training rows of the content_rec data hold the click and `num_negatives` sampled negatives
(`candidates`): every candidate is scored pointwise with binary cross-entropy (the click 1, the negatives 0), as the
official HMI code (use_neg_sampling: false) on impression labels. Evaluation rows hold one candidate each, grouped by
`impression_id` (GAUC = avgAUC over impressions).
"""

import hashlib
from pathlib import Path

import keras
import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf
from keras import ops

from fuxi_like.data.tf_dataset import split_files
from fuxi_like.datasets.content_rec import item_texts
from fuxi_like.errors import ConfigError
from fuxi_like.layers import CrossNetwork, FactorizationMachine, MLPBlock, masked_pool
from fuxi_like.layers.item_encoders import PlmItemEncoder
from fuxi_like.models import register_model
from fuxi_like.models.content_model import ContentRecModel
from fuxi_like.pretrained.encode import encode_items

from .tokenizer import (
    SemanticTokenizer,
    code_dtype,
    export_tokens,
    fit_tokenizer,
    load_tokens,
    tokenize_all,
    tokenizer_fingerprint,
    tokenizer_quality,
)

REPRESENTATIONS = ("tokens", "embedding", "id", "content")
BASE_MODELS = ("dcn", "deepfm")


@register_model
class UIST(ContentRecModel):
    def __init__(self, feature_map, model_id="UIST", representation="tokens", base_model="dcn",
                 item_field="candidates", history_field="hist_items", user_field="user_id", items_file=None,
                 plm="all-minilm-l6-v2", max_words=32, plm_train_layers=1, item_levels=3, user_levels=3,
                 codes_per_level=64, latent_dim=64, tokenizer_hidden=256, tokenizer_steps=3000,
                 user_tokenizer_steps=3000, user_tokenizer_rows=20000, commitment=0.25, dead_code_steps=50,
                 tokenizer_seed=None, tokenizer_cache=None, frozen_codebooks=False, token_dropout=0.1,
                 dnn_hidden_units=(256, 128), cross_layers=3, net_dropout=0.1, cold_field="cold", **kwargs):
        super().__init__(feature_map, model_id=model_id, **kwargs)
        if representation not in REPRESENTATIONS:
            raise ConfigError(f"UIST: representation must be one of {', '.join(REPRESENTATIONS)}, got "
                              f"{representation!r}")
        if base_model not in BASE_MODELS:
            raise ConfigError(f"UIST: base_model must be one of {', '.join(BASE_MODELS)}, got {base_model!r}")
        feature_map.require(item_field, ("sequence",), "UIST item_field")
        feature_map.require(history_field, ("sequence",), "UIST history_field")
        self.representation, self.base_model = representation, base_model
        self.item_field, self.history_field, self.user_field, self.cold_field = (item_field, history_field,
                                                                                   user_field, cold_field)
        owner = feature_map.features[item_field].get("share_embedding") or item_field
        self.vocab_size = int(feature_map.features[owner]["vocab_size"])
        self.num_users = int(feature_map.features[user_field]["vocab_size"]) if user_field in feature_map.features \
            else None
        d = self.embedding_dim
        self.tok_cfg = {"latent_dim": int(latent_dim), "hidden_units": int(tokenizer_hidden),
                        "codes_per_level": int(codes_per_level), "beta": float(commitment)}
        self.item_levels = int(item_levels) if representation == "tokens" else 1
        self.user_levels = int(user_levels) if representation == "tokens" else 1
        self.tokenizer_steps, self.user_tokenizer_steps = int(tokenizer_steps), int(user_tokenizer_steps)
        self.user_tokenizer_rows, self.dead_code_steps = int(user_tokenizer_rows), int(dead_code_steps)
        self.tokenizer_seed, self.tokenizer_cache = tokenizer_seed, tokenizer_cache
        self.tokenizer_report = {}
        self.item_fingerprint = None
        data_dir = Path(feature_map.data_dir or ".")
        self.items_file = Path(items_file) if items_file else data_dir.parents[1] / "raw" / data_dir.name / "items.csv"
        self.plm_name = Path(str(plm)).name
        self.dropout = keras.layers.Dropout(token_dropout)

        if representation in ("tokens", "embedding"):
            vectors = self._item_vectors(owner, plm, max_words)
            self.item_vectors = keras.layers.Embedding(
                self.vocab_size, vectors.shape[1], trainable=False, name="item_text_vectors",
                embeddings_initializer=keras.initializers.Constant(vectors))
            self.item_vectors.build((None,))
            self.text_dim = int(vectors.shape[1])
        if representation == "embedding":
            self.item_proj = keras.layers.Dense(d, name="item_projection")
            self.user_proj = keras.layers.Dense(d, name="user_projection")
        if representation == "id":
            self.item_table = keras.layers.Embedding(self.vocab_size, d, name="item_id_table")
        if representation == "content":
            from fuxi_like.pretrained.text import SentenceEncoder  # lazy: keras-hub is the optional `text` extra

            texts, found = item_texts(feature_map, owner, self.items_file, self.vocab_size)
            if found == 0:
                raise ConfigError(f"UIST: no item of the '{owner}' vocabulary has a text in {self.items_file}")
            encoder = SentenceEncoder.from_preset(plm, sequence_length=max_words)
            token_ids = np.array(encoder.preprocess(texts)["token_ids"], dtype=np.int32)  # a writable copy
            token_ids[[i for i, t in enumerate(texts) if not t]] = 0
            self.content_encoder = PlmItemEncoder(encoder, token_ids, d, train_layers=plm_train_layers,
                                                  name="content_encoder")
            self.content_encoder(np.zeros((1,), np.int32))
            self.item_cache = self.add_weight(name="item_cache", shape=(self.vocab_size, d), trainable=False,
                                              initializer="zeros")
            self.user_proj = keras.layers.Dense(d, name="user_projection")
        if representation == "tokens":
            k = self.tok_cfg["codes_per_level"]
            self.item_tokenizer = SemanticTokenizer(self.text_dim, levels=self.item_levels, name="item_tokenizer",
                                                    **self.tok_cfg)
            self.user_tokenizer = SemanticTokenizer(self.text_dim, levels=self.user_levels, pool_history=True,
                                                    name="user_tokenizer", **self.tok_cfg)
            self.item_tokenizer.build()
            self.user_tokenizer.build()
            self.item_tokenizer.trainable = False  # after build: sublayers made in build() are frozen too
            self.user_tokenizer.trainable = False
            self.item_codes = self.add_weight(name="item_codes", shape=(self.vocab_size, self.item_levels),
                                              dtype="int32", trainable=False, initializer="zeros")
            self.item_token_table = keras.layers.Embedding(self.item_levels * k, self.tok_cfg["latent_dim"],
                                                           trainable=not frozen_codebooks, name="item_token_table")
            self.user_token_table = keras.layers.Embedding(self.user_levels * k, self.tok_cfg["latent_dim"],
                                                           trainable=not frozen_codebooks, name="user_token_table")
            self.item_token_table.build((None,))
            self.user_token_table.build((None,))
            self.item_proj = keras.layers.Dense(d, name="item_token_projection")
            self.user_proj = keras.layers.Dense(d, name="user_token_projection")
        # the shared base CTR model on (user, item) pairs, and HMI's mixing layer
        if base_model == "dcn":
            self.cross = CrossNetwork(cross_layers, name="cross_network")
            self.deep = MLPBlock(dnn_hidden_units, "relu", dropout_rates=net_dropout, name="deep")
            self.head = keras.layers.Dense(1, name="logit")
        else:
            self.fm = FactorizationMachine(name="fm")
            self.deep = MLPBlock(dnn_hidden_units, "relu", output_dim=1, dropout_rates=net_dropout, name="deep")
        self.mix = keras.layers.Dense(1, name="hmi_mix")

    # ------------------------------------------------------------------------------------------ content
    def _item_vectors(self, owner, plm, max_words):
        """The all-MiniLM-L6-v2 vector of every item text, encoded once (the same fingerprinted table as GreenRec's
        OLEO when both read one dataset: a matching fingerprint reuses the file)."""
        from fuxi_like.pretrained.text import SentenceEncoder  # lazy: keras-hub is the optional `text` extra

        texts, found = item_texts(self.feature_map, owner, self.items_file, self.vocab_size)
        if found == 0:
            raise ConfigError(f"UIST: no item of the '{owner}' vocabulary has a text in {self.items_file}")
        encoder = SentenceEncoder.from_preset(plm, sequence_length=max_words)
        keyed = [(str(i), t) for i, t in enumerate(texts) if t]
        cache = Path(self.feature_map.data_dir or ".") / f"oleo_{self.plm_name}.parquet"
        table = encode_items(encoder, keyed, cache, batch_size=64)
        vectors = np.zeros((self.vocab_size, table.values.shape[1]), np.float32)
        vectors[[int(k) for k in table.keys]] = table.values
        self.item_fingerprint = table.fingerprint
        self.has_text = np.zeros(self.vocab_size, bool)
        self.has_text[[int(k) for k in table.keys]] = True
        return vectors

    # ------------------------------------------------------------------------------------------ tokenizers
    def adapt(self, pipeline):
        """BaseModel hook (tokens only): train (or reuse, by fingerprint) the item tokenizer on the item text vectors
        and the user tokenizer on the training rows' histories, then load codes and codebooks into the model."""
        if self.representation != "tokens":
            return
        seed = int(np.random.randint(2 ** 31)) if self.tokenizer_seed is None else int(self.tokenizer_seed)
        cache_dir = Path(self.tokenizer_cache or self.feature_map.data_dir or ".")
        vectors = np.asarray(self.item_vectors.embeddings.numpy())
        rows = np.nonzero(self.has_text)[0]
        cfg = dict(self.tok_cfg, levels=self.item_levels, steps=self.tokenizer_steps, seed=seed,
                   dead_code_steps=self.dead_code_steps)
        fp = tokenizer_fingerprint(self.item_fingerprint, dict(cfg, side="item"))
        path = cache_dir / f"uist_item_tokens_{fp[:12]}.npz"
        saved = load_tokens(path, fp, self.item_tokenizer)
        if saved is None:
            hist = fit_tokenizer(self.item_tokenizer, vectors[rows], steps=self.tokenizer_steps, seed=seed,
                                 dead_code_steps=self.dead_code_steps)
            codes = np.zeros((self.vocab_size, self.item_levels), np.int64)
            codes[rows] = tokenize_all(self.item_tokenizer, vectors[rows])
            quality = tokenizer_quality(self.item_tokenizer, vectors[rows], seed=seed)
            export_tokens(path, self.item_tokenizer, codes, fp, {"history": hist, "quality": quality})
            saved = load_tokens(path, fp)
        self.tokenizer_report["item"] = {"file": str(path), **saved["info"]}
        self.item_codes.assign(saved["codes"].astype(np.int32))
        self.item_token_table.embeddings.assign(saved["codebooks"])

        hist_ids = self._training_histories(pipeline, seed)
        ufp = tokenizer_fingerprint([self.item_fingerprint, hashlib.sha256(hist_ids.tobytes()).hexdigest()],
                                    dict(cfg, side="user", levels=self.user_levels, steps=self.user_tokenizer_steps,
                                         rows=self.user_tokenizer_rows))
        upath = cache_dir / f"uist_user_tokenizer_{ufp[:12]}.npz"
        usaved = load_tokens(upath, ufp, self.user_tokenizer)
        if usaved is None:
            x, m = vectors[hist_ids], (hist_ids > 0).astype(np.float32)
            hist = fit_tokenizer(self.user_tokenizer, x, m, steps=self.user_tokenizer_steps, seed=seed,
                                 dead_code_steps=self.dead_code_steps)
            codes = tokenize_all(self.user_tokenizer, x, m)
            quality = tokenizer_quality(self.user_tokenizer, x, m, seed=seed)
            export_tokens(upath, self.user_tokenizer, codes, ufp, {"history": hist, "quality": quality})
            usaved = load_tokens(upath, ufp)
        self.tokenizer_report["user"] = {"file": str(upath), **usaved["info"]}
        self.user_token_table.embeddings.assign(usaved["codebooks"])

    def extra_inputs(self):
        """tokens: each row's user codes (`user_codes` [n, L_u]), computed once per split by the frozen user
        tokenizer (after `adapt` trained it: the pipeline calls this when it builds a split), so training and
        inference read them like the item codes instead of re-tokenizing every history at every step. Without
        them (e.g. raw histories at serving) `call` tokenizes the history itself: the same codes."""
        if self.representation != "tokens":
            return None
        hist_field = self.history_field

        def augment(split, arrays):
            hist = np.asarray(arrays[hist_field]).astype(np.int32)
            codes = []
            for start in range(0, len(hist), 4096):
                h = hist[start:start + 4096]
                codes.append(np.asarray(self.user_tokenizer.tokens(self.item_vectors(h),
                                                                   (h > 0).astype(np.float32))))
            return {"user_codes": np.concatenate(codes).astype(np.int32) if codes else
                    np.zeros((0, self.user_levels), np.int32)}

        return augment

    def _training_histories(self, pipeline, seed):
        """Distinct non-empty histories of the training rows (at most `user_tokenizer_rows`, sampled with `seed`)."""
        files = [str(f) for f in split_files(pipeline.data_dir, "train")]
        col = pq.read_table(files, columns=[self.history_field]).column(self.history_field).to_pylist()
        hist = np.unique(np.asarray([np.asarray(h, np.int64) for h in col]), axis=0)
        hist = hist[(hist > 0).any(1)]
        if len(hist) > self.user_tokenizer_rows:
            hist = hist[np.sort(np.random.default_rng(seed).choice(len(hist), self.user_tokenizer_rows, False))]
        return hist

    # ------------------------------------------------------------------------------------------ representations
    def _content_vectors(self, ids, training=None):
        ids = ops.cast(ids, "int32")
        if not training:
            return ops.take(self.item_cache, ids, axis=0)
        flat = ops.reshape(ids, (-1,))
        uniq, where = tf.unique(flat)  # measured fast path: the language model runs once per distinct item
        vectors = self.content_encoder(uniq, training=training)
        return ops.reshape(ops.take(vectors, where, axis=0), tuple(ops.shape(ids)) + (self.embedding_dim,))

    def refresh_item_cache(self, batch_size=512):
        """content: encode every item (inference mode) into the table inference reads."""
        if self.representation != "content":
            return
        out = []
        for start in range(0, self.vocab_size, batch_size):
            ids = np.arange(start, min(start + batch_size, self.vocab_size), dtype=np.int32)
            out.append(np.asarray(self.content_encoder(ids, training=False)))
        self.item_cache.assign(np.concatenate(out))

    def item_granularities(self, ids, training=None):
        """[B, C] item ids -> [B, C, L_i, d]: cumulative coarse-to-fine item vectors (L_i = 1 off tokens)."""
        if self.representation == "tokens":
            codes = ops.take(self.item_codes, ops.cast(ids, "int32"), axis=0)  # [B, C, L]
            e = self.item_token_table(codes + ops.arange(self.item_levels, dtype="int32") * self.tok_cfg[
                "codes_per_level"])
            return ops.cumsum(self.dropout(self.item_proj(e), training=training), axis=-2)
        if self.representation == "embedding":
            return ops.expand_dims(self.dropout(self.item_proj(self.item_vectors(ids)), training=training), -2)
        if self.representation == "id":
            return ops.expand_dims(self.item_table(ids), -2)
        return ops.expand_dims(self._content_vectors(ids, training=training), -2)

    def user_granularities(self, hist, training=None, codes=None):
        """[B, H] history ids (or, for tokens, the row's precomputed `codes` [B, L_u]) -> [B, L_u, d]."""
        mask = ops.cast(ops.not_equal(hist, 0), "float32")
        if self.representation == "tokens":
            if codes is None:
                codes = self.user_tokenizer.tokens(self.item_vectors(hist), mask)  # [B, L_u]: the frozen tokenizer
            e = self.user_token_table(ops.cast(codes, "int32") + ops.arange(self.user_levels, dtype="int32")
                                      * self.tok_cfg["codes_per_level"])
            return ops.cumsum(self.dropout(self.user_proj(e), training=training), axis=-2)
        if self.representation == "embedding":
            u = self.user_proj(masked_pool(self.item_vectors(hist), mask))
            return ops.expand_dims(self.dropout(u, training=training), -2)
        if self.representation == "id":
            return ops.expand_dims(masked_pool(self.item_table(hist), mask), -2)
        return ops.expand_dims(self.user_proj(masked_pool(self._content_vectors(hist, training=training), mask)),
                               -2)

    def base_score(self, u, i, training=None):
        """The shared base CTR model on (user, item) rows [N, d] each -> [N, 1]."""
        x = ops.concatenate([u, i], -1)
        if self.base_model == "dcn":
            return self.head(ops.concatenate([self.cross(x), self.deep(x, training=training)], -1))
        return self.fm(ops.stack([u, i], axis=1)) + self.deep(x, training=training)

    def hmi(self, user, item, training=None):
        """HMI: user [B, Lu, d], item [B, C, Li, d] -> logits [B, C]: the base model on every (user level n, item
        level m) pair, mixed by a learned Linear(Li*Lu -> 1)."""
        b, c, li, d = ops.shape(item)[0], ops.shape(item)[1], ops.shape(item)[2], ops.shape(item)[3]
        lu = ops.shape(user)[1]
        it = ops.broadcast_to(ops.expand_dims(item, 3), (b, c, li, lu, d))
        us = ops.broadcast_to(ops.reshape(user, (b, 1, 1, lu, d)), (b, c, li, lu, d))
        s = self.base_score(ops.reshape(us, (-1, d)), ops.reshape(it, (-1, d)), training=training)
        return ops.squeeze(self.mix(ops.reshape(s, (b, c, li * lu))), -1)

    def call(self, inputs, training=None):
        hist, cand = inputs[self.history_field], inputs[self.item_field]
        logits = self.hmi(self.user_granularities(hist, training=training, codes=inputs.get("user_codes")),
                          self.item_granularities(cand, training=training), training=training)
        if training:
            return logits
        return ops.sigmoid(logits[:, :1])  # evaluation rows hold one candidate

    # ------------------------------------------------------------------------------------------ accounting
    def representation_bytes(self):
        """Bytes a server keeps to represent every item and (cached, one per user) every user, by paradigm:
        tokens: codes [N, L] in int16 (int32 past 32,767 codes) + both codebooks (float32); embedding: float32 text
        vectors [N, 384] and one pooled vector per user; id: float32 [N, d] and one pooled vector per user; content:
        no table (the encoder runs; its parameters are in `encoder_params`)."""
        n_items = int(self.has_text.sum()) if hasattr(self, "has_text") else self.vocab_size - 1
        n_users = (self.num_users or 2) - 2  # PAD and OOV rows excluded
        out = {"items": n_items, "users": n_users}
        if self.representation == "tokens":
            width = np.dtype(code_dtype(self.tok_cfg["codes_per_level"])).itemsize
            out.update(item_bytes=n_items * self.item_levels * width, user_bytes=n_users * self.user_levels * width,
                       codebook_bytes=4 * self.tok_cfg["latent_dim"] * self.tok_cfg["codes_per_level"]
                       * (self.item_levels + self.user_levels), dtype=f"int{8 * width} codes + float32 codebooks")
        elif self.representation == "embedding":
            out.update(item_bytes=n_items * self.text_dim * 4, user_bytes=n_users * self.text_dim * 4,
                       codebook_bytes=0, dtype="float32")
        elif self.representation == "id":
            out.update(item_bytes=n_items * self.embedding_dim * 4, user_bytes=n_users * self.embedding_dim * 4,
                       codebook_bytes=0, dtype="float32")
        else:
            out.update(item_bytes=0, user_bytes=0, codebook_bytes=0, dtype="none (encoder runs)",
                       encoder_params=int(sum(np.prod(w.shape) for w in self.content_encoder.weights)))
        out["total_bytes"] = out["item_bytes"] + out["user_bytes"] + out["codebook_bytes"]
        return out

    # ------------------------------------------------------------------------------------------ training / eval
    def compile_from_params(self, params):
        super().compile_from_params(params)
        self.compile(optimizer=self.optimizer, loss=self._pointwise)


