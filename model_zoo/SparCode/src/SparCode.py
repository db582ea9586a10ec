"""SparCode (Su et al., SIGIR'23): sparse retrievable cross-interactions beyond two-tower matching.

Query -> K_u tokens (multi-interest attention of K_u learnable queries over the history encoded by
SASRec, GRU4Rec or plain embeddings) -> a product quantizer shared by the tokens (M sub-vectors,
N codewords each, straight-through, commitment loss) -> an all-to-all scorer shared by the tokens,
E(t, c) = MLP([t; e_c; t * e_c]) (`scorer: dnn`) or one self-attention layer over the pair
[t, e_c] followed by an MLP (`scorer: sa`) -> y(q, c) = sum_k ReLU(E(t_k, c) + b).
Because each quantized token is one of N^M codes, ReLU(E(code, c) + b) can be precomputed for
every code and item and kept sparsely: the code-based inverted index
(`code_index.CodeIndex` in this folder). Training: sampled softmax over y (shared negatives,
logQ-corrected, accidental hits masked). The official code was never released: everything beyond
the scoring equations is a reconstruction (see README).
"""

import keras
import numpy as np
from keras import ops

from fuxi_like.errors import ConfigError
from fuxi_like.layers import FeatureEmbedding, GRU4RecEncoder, MLPBlock, SASRecEncoder
from fuxi_like.layers.quantizer import ProductQuantizer
from fuxi_like.models import RetrievalModel, register_model

from .code_index import CodeIndex

ENCODERS = ("sasrec", "gru4rec", "embedding")
EVAL_MODES = ("index", "brute_force", "all_to_all")
SCORERS = ("dnn", "sa")


@register_model
class SparCode(RetrievalModel):
    def __init__(self, feature_map, model_id="SparCode", query_encoder="sasrec", num_tokens=4, num_subspaces=2,
                 num_codewords=64, commitment_beta=0.25, scorer_hidden_units=(64, 32), num_blocks=1,
                 attention_dropout=0.2, gru_hidden_units=64, sparsity="positive", rho=None, eval_mode="index",
                 softmax="sampled", scorer="dnn", scorer_heads=2, quantize=True, **kwargs):
        super().__init__(feature_map, model_id=model_id, softmax=softmax, **kwargs)
        if softmax != "sampled":
            raise ConfigError("SparCode trains with softmax: sampled (its scores are not dot products)")
        if query_encoder not in ENCODERS:
            raise ConfigError(f"SparCode: query_encoder must be one of {ENCODERS}, got {query_encoder!r}")
        if eval_mode not in EVAL_MODES:
            raise ConfigError(f"SparCode: eval_mode must be one of {EVAL_MODES}, got {eval_mode!r}")
        if scorer not in SCORERS:
            raise ConfigError(f"SparCode: scorer must be one of {SCORERS}, got {scorer!r}")
        if not quantize and eval_mode == "index":
            raise ConfigError("SparCode: quantize: false (the all-to-all model, no code bottleneck) has no codes to "
                              "index; set eval_mode: brute_force")
        self.sparsity, self.rho, self.eval_mode = sparsity, rho, eval_mode
        self.num_tokens = int(num_tokens)
        self.embedding = self.make_embedding(features=[self.item_field, self.history_field])
        self.embedding.build()
        d = self.embedding.dim(self.item_field)
        max_len = feature_map.features[self.history_field]["max_len"]
        self.encoder = {"sasrec": lambda: SASRecEncoder(max_len, num_blocks=num_blocks, dropout=attention_dropout),
                        "gru4rec": lambda: GRU4RecEncoder(gru_hidden_units, dropout=attention_dropout, output_dim=d),
                        "embedding": lambda: None}[query_encoder]()
        self.token_queries = self.add_weight(shape=(self.num_tokens, d), name="token_queries",
                                             initializer=keras.initializers.RandomNormal(stddev=0.1))
        self.token_proj = keras.layers.Dense(d, name="token_proj")
        self.quantizer = ProductQuantizer(num_subspaces, num_codewords, commitment_beta, name="pq")
        if scorer == "sa" and (not isinstance(scorer_heads, int) or scorer_heads < 1 or d % scorer_heads):
            raise ConfigError(f"SparCode: scorer_heads must be a positive integer dividing embedding_dim ({d}), "
                              f"got {scorer_heads!r}")
        self.scorer = (CrossScorer(scorer_hidden_units, name="scorer") if scorer == "dnn"
                       else SelfAttentionScorer(scorer_hidden_units, int(scorer_heads), name="scorer"))
        self.scorer.build((None, d))
        self.score_bias = self.add_weight(shape=(), name="score_bias", initializer=keras.initializers.Constant(1.0))  # ReLUs start active
        # quantize: false trains the paper's all-to-all upper bound: the same encoder, scorer and budget
        # with the unquantized tokens (no codebooks, no commitment loss), scored by brute force
        self.quantize = bool(quantize)

    def training_callbacks(self, pipeline):
        return [CodebookCallback(pipeline.dataset("train"))] if self.quantize else []

    # ------------------------------------------------------------ tokens
    def tokens(self, inputs, training=None):
        """Unquantized query tokens [B, K, d]: K learnable queries attending over the encoded history."""
        ids = inputs[self.history_field]
        mask = FeatureEmbedding.sequence_mask(ids)
        h = self.embedding.lookup(self.item_field, ids)
        if self.encoder is not None:
            h = self.encoder(h, mask, training=training)
        att = ops.einsum("kd,bld->bkl", self.token_queries, h) / (h.shape[-1] ** 0.5)
        att = ops.where(ops.cast(mask, "bool")[:, None, :], att, -1e9)
        return self.token_proj(ops.einsum("bkl,bld->bkd", ops.softmax(att, axis=-1), h))

    def call(self, inputs, training=None):
        t = self.tokens(inputs, training=training)
        return self.quantizer(t, training=training) if self.quantize else t

    def encode_items(self, item_ids, training=None):
        return self.embedding.lookup(self.item_field, item_ids)

    def pair_scores(self, tok, item_vecs, training=None):
        """tok [N, K, d] x items [C, d] -> y [N, C] = sum_k ReLU(E(t_k, c) + b)."""
        return ops.sum(ops.relu(self.scorer.pairs(tok, item_vecs, training=training) + self.score_bias), axis=1)

    def build_loss_layers(self, x):
        vecs = super().build_loss_layers(x)
        return self.row_scores(self(x, training=False), vecs)

    def row_scores(self, tok, vecs, training=None):
        """tok [N, K, d] x one item per row [N, d] -> y [N]."""
        return ops.sum(ops.relu(self.scorer.rows(tok, vecs, training=training) + self.score_bias), axis=1)

    def code_scores(self, codes, item_vecs):
        """Index entries ReLU(E(token(code), c) + b) for codes [b] x all items -> [b, V]."""
        tok = ops.convert_to_tensor(self.quantizer.decode(codes))[:, None, :]
        return ops.convert_to_numpy(ops.relu(self.scorer.pairs(tok, item_vecs, training=False) + self.score_bias))[:, 0, :]

    # ------------------------------------------------------------- loss
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        tok = y_pred
        target = ops.cast(ops.reshape(x[self.item_field], (-1,)), "int32")
        neg_ids = self._sample_negatives()
        pos = self.row_scores(tok, self.item_vectors(target, training=True), training)
        neg = self.pair_scores(tok, self.item_vectors(neg_ids, training=True), training)
        pos, neg = pos / self.temperature, neg / self.temperature
        pos, neg = self.correct_logq(pos, neg, target, neg_ids)  # by the sampler used: none for uniform
        if self.remove_hits:
            neg = ops.where(ops.equal(target[:, None], neg_ids[None, :]), ops.cast(-1e9, neg.dtype), neg)
        ce = ops.logsumexp(ops.concatenate([pos[:, None], neg], 1), axis=1) - pos
        loss = ops.mean(ce)
        if self.losses:
            loss = loss + ops.sum(ops.stack([ops.cast(r, loss.dtype) for r in self.losses]))
        return loss

    # ------------------------------------------------------- evaluation
    def predict_step(self, data):
        out = super().predict_step(data)
        if isinstance(out, dict):
            x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
            out["raw"] = self.tokens(x, training=False)
            if self.quantize:
                out["codes"] = self.quantizer.codes(out["raw"])
        return out

    def build_code_index(self, codes, sparsity=None, rho=None, verbose=0):

        ids, vecs = self.embed_catalogue()
        full = np.zeros((self.num_items, vecs.shape[1]), np.float32)
        full[ids] = vecs
        item_t = ops.convert_to_tensor(full)
        index = CodeIndex(self.num_items, sparsity or self.sparsity, rho if rho is not None else self.rho)

        def score_fn(c):
            s = self.code_scores(c, item_t)
            s[:, 0] = 0.0
            s[:, -1] = 0.0  # PAD and OOV are never retrieved
            return s

        return index.build(codes, score_fn, verbose=verbose)

    def brute_force(self, tokens, k, history=None, batch=64, verbose=0):
        """Exact top-k of sum_k ReLU(E(t_k, c) + b) over the catalogue for tokens [Q, K, d]
        (ties: lower item id first), one batch of queries at a time. On TensorFlow the scoring is
        compiled (tf.function): 2.3x faster than eager on Beauty's 12k items, same scores."""
        ids, vecs = self.embed_catalogue()
        vecs = ops.convert_to_tensor(vecs)
        score = self._compiled_pair_scores()
        bar = keras.utils.Progbar(len(tokens), unit_name="query") if verbose else None
        tops, vals = [], []
        for s in range(0, len(tokens), batch):
            y = np.asarray(score(ops.convert_to_tensor(tokens[s:s + batch]), vecs))
            full = np.zeros((len(y), self.num_items), np.float32)
            full[:, ids] = y
            if history is not None:
                h = history[s:s + batch]
                full[np.repeat(np.arange(len(h)), h.shape[1]), h.reshape(-1)] = 0.0
            full[:, 0] = 0.0
            top = np.argsort(-full, axis=1, kind="stable")[:, :k]
            tops.append(top)
            vals.append(np.take_along_axis(full, top, 1))
            if bar is not None:
                bar.add(len(y))
        top, val = np.concatenate(tops), np.concatenate(vals)
        return np.where(val > 0, top, -1), val

    def _compiled_pair_scores(self):
        if keras.backend.backend() != "tensorflow":
            return lambda t, v: self.pair_scores(t, v, training=False)
        if getattr(self, "_pair_scores_fn", None) is None:
            import tensorflow as tf

            self._pair_scores_fn = tf.function(lambda t, v: self.pair_scores(t, v, training=False),
                                               reduce_retracing=True)
        return self._pair_scores_fn

    def evaluate_split(self, dataset, metrics, group_id=None, verbose=0, index=None):
        from fuxi_like.retrieval.evaluation import check_retrieval_metrics, max_cutoff, metrics_from_ranks, target_ranks

        check_retrieval_metrics(metrics, where="SparCode")
        data = self.embed_queries(dataset, verbose=verbose)
        k = max_cutoff(metrics)
        hist = data.get("history")
        if self.eval_mode == "index":
            index = index or self.build_code_index(np.unique(data["codes"]))
            ranked, _ = index.search(data["codes"], k, exclude=hist)
        else:
            ranked, _ = self.brute_force(data["query"] if self.eval_mode == "brute_force" else data["raw"], k, hist)
        return metrics_from_ranks(target_ranks(ranked, data["target"].reshape(-1)), metrics)


class CrossScorer(keras.layers.Layer):
    """The all-to-all scorer E(t, c) = MLP([t; e_c; t * e_c]) -> scalar, with its first layer split as
    W_t t + W_e e_c + W_p (t * e_c): the token and item parts are computed once per token and once
    per item, only the product part per (token, item) pair, and the [t; e; t*e] concatenation is
    never materialised. Mathematically the same MLP; about 2.3x fewer multiply-adds per pair for
    d = 64, hidden [64, 32]."""

    def __init__(self, hidden_units=(64, 32), **kwargs):
        super().__init__(**kwargs)
        units = list(hidden_units) or [1]
        self.hidden = bool(hidden_units)
        self.w_t = keras.layers.Dense(units[0], name="w_token")
        self.w_e = keras.layers.Dense(units[0], use_bias=False, name="w_item")
        self.w_p = keras.layers.Dense(units[0], use_bias=False, name="w_product")
        self.rest = MLPBlock(units[1:], "relu", output_dim=1, name="rest") if self.hidden else None

    def build(self, input_shape):
        for dense in (self.w_t, self.w_e, self.w_p):
            dense.build(input_shape)
        if self.rest is not None:
            self.rest.build(tuple(input_shape[:-1]) + (self.w_t.units,))
        self.built = True

    def _head(self, h, training):
        if self.rest is None:
            return ops.squeeze(h, -1)
        return ops.squeeze(self.rest(ops.relu(h), training=training), -1)

    def pairs(self, tok, items, training=None):
        """tok [N, K, d] x items [C, d] -> E [N, K, C]. (Computing W_p (t * e) as e @ (diag(t) W_p)
        per token, without the [N, K, C, d] products, was measured 6% slower on a quiet machine:
        `python benchmark/micro_ab.py sparcode-pairs`.)"""
        h = (ops.expand_dims(self.w_t(tok), 2) + self.w_e(items)[None, None]
             + self.w_p(ops.expand_dims(tok, 2) * items[None, None]))
        return self._head(h, training)

    def rows(self, tok, items, training=None):
        """tok [N, K, d] x one item per row [N, d] -> E [N, K]."""
        e = ops.expand_dims(items, 1)
        return self._head(self.w_t(tok) + self.w_e(e) + self.w_p(tok * e), training)

    def call(self, tok, items, training=None):
        return self.pairs(tok, items, training=training)


class SelfAttentionScorer(keras.layers.Layer):
    """The self-attention scorer: one multi-head self-attention layer over the two-token sequence
    [t, e_c] (biased q/k/v/output projections, residual, LayerNorm), then an MLP over the two
    outputs -> scalar. The same function as `keras.layers.MultiHeadAttention` on stacked
    [t, e_c] pairs (tested), computed without materialising the pairs: projections run once per
    token and once per item; per pair only the 2 x 2 attention logits (one dot product each way
    per head), the mixing of the projected values and the LayerNorm remain. A 2-way softmax is a
    sigmoid of the logit difference."""

    def __init__(self, hidden_units=(64, 32), num_heads=2, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.units = list(hidden_units) or [1]
        self.num_heads, self.epsilon = int(num_heads), float(epsilon)
        self.hidden = bool(hidden_units)
        self.norm = keras.layers.LayerNormalization(epsilon=epsilon, name="norm")
        self.read_t = keras.layers.Dense(self.units[0], name="read_token")
        self.read_e = keras.layers.Dense(self.units[0], use_bias=False, name="read_item")
        self.rest = MLPBlock(self.units[1:], "relu", output_dim=1, name="rest") if self.hidden else None

    def build(self, input_shape):
        d = int(input_shape[-1])
        h, dh = self.num_heads, d // self.num_heads
        init = keras.initializers.GlorotUniform()
        for name in ("query", "key", "value"):
            setattr(self, f"w_{name}", self.add_weight(shape=(d, h, dh), initializer=init, name=f"{name}_kernel"))
            setattr(self, f"b_{name}", self.add_weight(shape=(h, dh), initializer="zeros", name=f"{name}_bias"))
        self.w_out = self.add_weight(shape=(h, dh, d), initializer=init, name="output_kernel")
        self.b_out = self.add_weight(shape=(d,), initializer="zeros", name="output_bias")
        self.norm.build(tuple(input_shape))
        self.read_t.build(tuple(input_shape))
        self.read_e.build(tuple(input_shape))
        if self.rest is not None:
            self.rest.build(tuple(input_shape[:-1]) + (self.units[0],))
        self.built = True

    def mha_weights(self):
        """Weights in `keras.layers.MultiHeadAttention` order (q, k, v, output; kernel then bias)."""
        return [self.w_query, self.b_query, self.w_key, self.b_key, self.w_value, self.b_value, self.w_out, self.b_out]

    def _project(self, x):
        """x [..., d] -> q, k, v [..., H, dh] and the values through the output kernel [..., H, d]."""
        q, k, v = (ops.einsum("...d,dhe->...he", x, w) + b for w, b in
                   ((self.w_query, self.b_query), (self.w_key, self.b_key), (self.w_value, self.b_value)))
        return q * (1.0 / float(q.shape[-1]) ** 0.5), k, ops.einsum("...he,heo->...ho", v, self.w_out)

    def _head(self, y_t, y_e, training):
        h = self.read_t(self.norm(y_t)) + self.read_e(self.norm(y_e))
        if self.rest is None:
            return ops.squeeze(h, -1)
        return ops.squeeze(self.rest(ops.relu(h), training=training), -1)

    def pairs(self, tok, items, training=None):
        """tok [N, K, d] x items [C, d] -> E [N, K, C]."""
        qt, kt, ut = self._project(tok)  # [N, K, H, *]
        qe, ke, ue = self._project(items)  # [C, H, *]
        # weight of the token (vs the item) in the token's and in the item's attention row
        a_t = ops.sigmoid(ops.sum(qt * kt, -1)[:, :, None, :] - ops.einsum("nkhd,chd->nkch", qt, ke))
        a_e = ops.sigmoid(ops.einsum("chd,nkhd->nkch", qe, kt) - ops.sum(qe * ke, -1)[None, None])
        base = ops.sum(ue, axis=1) + self.b_out  # [C, d]: all attention on the item

        def attend(a):  # sum_h a_h u_t,h + (1 - a_h) u_e,h, per pair
            return base[None, None] + ops.einsum("nkch,nkho->nkco", a, ut) - ops.einsum("nkch,cho->nkco", a, ue)

        return self._head(ops.expand_dims(tok, 2) + attend(a_t), items[None, None] + attend(a_e), training)

    def rows(self, tok, items, training=None):
        """tok [N, K, d] x one item per row [N, d] -> E [N, K]."""
        qt, kt, ut = self._project(tok)  # [N, K, H, *]
        qe, ke, ue = (ops.expand_dims(z, 1) for z in self._project(items))  # [N, 1, H, *]
        a_t = ops.sigmoid(ops.sum(qt * kt, -1) - ops.sum(qt * ke, -1))  # [N, K, H]
        a_e = ops.sigmoid(ops.sum(qe * kt, -1) - ops.sum(qe * ke, -1))
        base = ops.sum(ue, axis=2) + self.b_out  # [N, 1, d]

        def attend(a):
            return base + ops.einsum("nkh,nkho->nko", a, ut) - ops.sum(ops.expand_dims(a, -1) * ue, axis=2)

        return self._head(tok + attend(a_t), ops.expand_dims(items, 1) + attend(a_e), training)

    def call(self, tok, items, training=None):
        return self.pairs(tok, items, training=training)

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.units if self.hidden else [],
                "num_heads": self.num_heads, "epsilon": self.epsilon}


class CodebookCallback(keras.callbacks.Callback):
    """k-means initialisation of the codebooks before training and dead-code reset after each epoch,
    from the unquantized tokens of a sample of training batches."""

    def __init__(self, dataset, batches=8):
        super().__init__()
        self.dataset, self.batches = dataset, batches

    def _sample(self):
        return np.concatenate([np.asarray(self.model.tokens(x, training=False)).reshape(-1, self.model.token_proj.units)
                               for x, _ in self.dataset.take(self.batches)])

    def on_train_begin(self, logs=None):
        if not bool(np.asarray(self.model.quantizer.initialised)):  # saved with the weights: a resumed run skips it
            self.model.quantizer.init_from(self._sample())

    def on_epoch_end(self, epoch, logs=None):
        self.model.quantizer.reset_dead(self._sample(), seed=epoch)
