"""RetrievalModel: the base of two-tower and sequential (next-item) retrieval models.

A subclass implements
- `encode_query(inputs, training)` -> `[B, D]` query vectors (and, for models trained
  with a loss at every sequence position, `encode_query_sequence(inputs, training)` ->
  `[B, L, D]`, position t predicting the item after t);
- `encode_items(item_ids, training)` -> `[N, D]` item vectors (default: the item-id
  embedding table shared with the history).
`call(inputs)` returns the query vectors, so `model.predict` embeds queries.

Training (`compute_loss`) is a softmax over candidates, set by `softmax:`
- `inbatch`: the other rows' target items are the negatives; with `logq_correction` the
  logits are corrected by log(sampling probability) (the item's share of training
  targets; Yi et al., RecSys'19; keras-rs SamplingProbabilityCorrection), and
  `remove_accidental_hits` masks negatives that are the row's own target (done here with a
  mask: keras-rs 0.4.0's RemoveAccidentalHits adds ~1e-40, a no-op, and reads per-row ids
  from row 0; keras-rs PR #206);
- `sampled`: `num_negatives` items shared by the batch, drawn by `negative_sampler`
  (`popularity`: by training frequency, or `uniform`), accidental hits masked; with
  `logq_correction` the logits are corrected by the log probability of the sampler that
  drew them (`proposal_log_prob`): the popularity for `popularity`, nothing for `uniform`
  (its log(1/N) is the same for every candidate, so subtracting it leaves the softmax as it
  is); the only choice besides `full` when `sequence_loss` trains every position;
- `full`: all items (exact softmax; fine for catalogues up to ~100k items).
`num_hard_negatives` keeps only the hardest negatives of each row (keras-rs
HardNegativeMining); `temperature` divides the logits; `similarity: cosine`
L2-normalises both towers.

Evaluation (`evaluate_split`, used by validation, early stopping and the test row)
goes through a retrieval index, as serving does: every item of the catalogue is
embedded, an index is built (`eval_index: {backend: auto|exact|scann, ...ScaNN params}`,
default exact), each query searches the top `max k + history length` items, the
user's history items are removed (`exclude_history`, the usual full-ranking protocol)
and HR/Recall/NDCG/MRR are computed at the configured cutoffs. With
`eval_protocol: sampled` the target is ranked against the row's `negatives_field`
items instead (the 99-negatives protocol).
"""

import logging

import keras
import keras_rs
import numpy as np
import pyarrow.parquet as pq
from keras import ops

from ..data.tf_dataset import split_files
from ..errors import ConfigError
from ..retrieval.evaluation import (
    check_retrieval_metrics,
    exclude_seen,
    max_cutoff,
    metrics_from_ranks,
    sampled_ranks,
    target_ranks,
)
from ..retrieval.index import ScaNNIndex, make_index
from .base_model import BaseModel

log = logging.getLogger("fuxi_like")
SOFTMAXES = ("inbatch", "sampled", "full")


class RetrievalModel(BaseModel):
    retrieval = True

    def __init__(self, feature_map, item_field="item_id", history_field="hist_items", softmax="inbatch",
                 num_negatives=1000, negative_sampler="popularity", logq_correction=True,
                 remove_accidental_hits=True, num_hard_negatives=None, temperature=1.0, similarity="dot",
                 sequence_loss=False, exclude_history=True, eval_protocol="full", negatives_field="neg_items",
                 eval_index=None, **kwargs):
        super().__init__(feature_map, **kwargs)
        where = f"{type(self).__name__}"
        feature_map.require(item_field, types=("categorical",), where=f"{where}.item_field")
        if history_field:
            feature_map.require(history_field, types=("sequence",), where=f"{where}.history_field")
            if feature_map.table_owner(history_field) != item_field:
                raise ConfigError(f"{where}: history_field '{history_field}' must share the embedding of "
                                  f"'{item_field}' (share_embedding: {item_field} in the dataset config)")
        if softmax not in SOFTMAXES:
            raise ConfigError(f"{where}: softmax must be one of {SOFTMAXES}, got {softmax!r}")
        if negative_sampler not in ("popularity", "uniform"):
            raise ConfigError(f"{where}: negative_sampler must be popularity or uniform, got {negative_sampler!r}")
        if similarity not in ("dot", "cosine"):
            raise ConfigError(f"{where}: similarity must be dot or cosine, got {similarity!r}")
        if sequence_loss and softmax == "inbatch":
            raise ConfigError(f"{where}: sequence_loss trains every position; use softmax: sampled or full "
                              f"(in-batch candidates would be batch x length items)")
        if sequence_loss and not history_field:
            raise ConfigError(f"{where}: sequence_loss needs a history_field")
        if eval_protocol not in ("full", "sampled"):
            raise ConfigError(f"{where}: eval_protocol must be full or sampled, got {eval_protocol!r}")
        if eval_protocol == "sampled":
            feature_map.require(negatives_field, types=("sequence",), where=f"{where}.negatives_field")
        self.item_field = item_field
        self.history_field = history_field
        self.softmax = softmax
        self.num_negatives = int(num_negatives)
        self.negative_sampler = negative_sampler
        self.logq_correction = bool(logq_correction)
        self.remove_hits = bool(remove_accidental_hits)
        self.num_hard_negatives = num_hard_negatives
        self.temperature = float(temperature)
        self.similarity = similarity
        self.sequence_loss = bool(sequence_loss)
        self.exclude_history = bool(exclude_history) and bool(history_field)
        self.eval_protocol = eval_protocol
        self.negatives_field = negatives_field
        self.eval_index = dict(eval_index or {"backend": "exact"})
        self.num_items = int(feature_map.features[item_field]["vocab_size"])  # PAD + items + OOV
        self.item_log_prob = self.add_weight(
            shape=(self.num_items,), name="item_log_prob", trainable=False,
            initializer=keras.initializers.Constant(self._log_popularity(np.zeros(0, np.int64))))
        self.seed_generator = keras.random.SeedGenerator(1234)
        self.logq = keras_rs.layers.SamplingProbabilityCorrection()
        self.hard_miner = (keras_rs.layers.HardNegativeMining(int(num_hard_negatives))
                           if num_hard_negatives else None)
        self.metrics_list = None

    # ------------------------------------------------------------- catalogue
    def _log_popularity(self, item_ids):
        """log P(item is a training target), +1 smoothed; PAD and OOV get ~0 probability."""
        counts = np.ones(self.num_items, dtype=np.float64)
        counts += np.bincount(np.asarray(item_ids, dtype=np.int64).reshape(-1), minlength=self.num_items)[: self.num_items]
        counts[0] = counts[-1] = 1e-12
        return np.log(counts / counts.sum()).astype("float32")

    def set_item_popularity(self, item_ids):
        """Set the sampling/logQ popularity from the training targets `item_ids` (ids, any shape)."""
        self.item_log_prob.assign(self._log_popularity(item_ids))

    def adapt(self, pipeline):
        """BaseModel hook: item popularity from the training split's targets."""
        files = [str(f) for f in split_files(pipeline.data_dir, "train")]
        self.set_item_popularity(pq.read_table(files, columns=[self.item_field]).column(self.item_field).to_numpy())

    def catalogue_ids(self):
        """Item ids a query can retrieve: 1 .. vocab_size-2 (PAD 0 and OOV excluded)."""
        return np.arange(1, self.num_items - 1, dtype=np.int64)

    # --------------------------------------------------------------- towers
    def encode_query(self, inputs, training=None):
        raise NotImplementedError

    def encode_query_sequence(self, inputs, training=None):
        raise ConfigError(f"{type(self).__name__} has no per-position query encoder; set sequence_loss: false")

    def encode_items(self, item_ids, training=None):
        raise NotImplementedError

    def _norm(self, x):
        if self.similarity == "cosine":
            return x / ops.maximum(ops.norm(x, axis=-1, keepdims=True), 1e-12)
        return x

    def call(self, inputs, training=None):
        if training and self.sequence_loss:
            return self._norm(self.encode_query_sequence(inputs, training=training))
        return self._norm(self.encode_query(inputs, training=training))

    def build_loss_layers(self, x):
        """Create the variables only the loss uses (the item tower), before the optimizer is built."""
        return self.item_vectors(x[self.item_field], training=False)

    def item_vectors(self, item_ids, training=None):
        return self._norm(self.encode_items(item_ids, training=training))

    def score(self, inputs, item_ids):
        """Query x candidate scores [B, N] (no temperature), e.g. for re-scoring a pool."""
        return ops.matmul(self(inputs, training=False), ops.transpose(self.item_vectors(item_ids)))

    # ----------------------------------------------------------------- loss
    def compile_from_params(self, params):
        if params.get("loss", "binary_crossentropy") != "binary_crossentropy":
            raise ConfigError(f"{type(self).__name__}: retrieval models set their loss with 'softmax:' "
                              f"({', '.join(SOFTMAXES)}), not 'loss:'")
        super().compile_from_params(dict(params, loss="binary_crossentropy"))

    def _targets(self, x):
        target = ops.cast(ops.reshape(x[self.item_field], (-1,)), "int32")
        if not self.sequence_loss:
            return target, ops.ones_like(target, dtype="float32")
        hist = ops.cast(x[self.history_field], "int32")
        nxt = ops.concatenate([hist[:, 1:], ops.expand_dims(target, 1)], axis=1)  # item after each position
        weight = ops.cast(ops.not_equal(hist, 0), "float32") * ops.cast(ops.not_equal(nxt, 0), "float32")
        return ops.reshape(nxt, (-1,)), ops.reshape(weight, (-1,))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Softmax cross-entropy of each target against its negatives: [pos | negatives] logits."""
        q = y_pred
        if self.sequence_loss:
            q = ops.reshape(q, (-1, ops.shape(q)[-1]))
        target, weight = self._targets(x)
        if self.sequence_loss and keras.backend.backend() == "tensorflow":
            # drop padded positions before scoring negatives (most of a short history is padding);
            # backends without dynamic shapes keep them, weighted 0
            keep = ops.reshape(ops.nonzero(weight)[0], (-1,))
            q, target, weight = ops.take(q, keep, axis=0), ops.take(target, keep), ops.take(weight, keep)
        pos_vec = self.item_vectors(target, training=True)
        pos = ops.sum(q * pos_vec, axis=-1) / self.temperature  # [N]
        t_col = ops.expand_dims(target, 1)
        if self.softmax == "inbatch":  # the other rows' targets; the diagonal is the positive itself
            neg_ids = target
            neg = ops.matmul(q, ops.transpose(pos_vec)) / self.temperature
            mask = ops.cast(ops.eye(ops.shape(target)[0]), "bool")
            if self.remove_hits:  # the same item as another row's target is not a negative
                mask = ops.logical_or(mask, ops.equal(t_col, ops.expand_dims(neg_ids, 0)))
        elif self.softmax == "sampled":  # one shared set of sampled negatives
            neg_ids = self._sample_negatives()
            neg = ops.matmul(q, ops.transpose(self.item_vectors(neg_ids, training=True))) / self.temperature
            mask = ops.equal(t_col, ops.expand_dims(neg_ids, 0)) if self.remove_hits else None
        else:  # full: every item; PAD, OOV and the target itself are not negatives
            neg_ids = ops.arange(self.num_items, dtype="int32")
            neg = ops.matmul(q, ops.transpose(self.item_vectors(neg_ids, training=True))) / self.temperature
            row = ops.expand_dims(neg_ids, 0)
            mask = ops.logical_or(ops.equal(t_col, row),
                                  ops.logical_or(ops.equal(row, 0), ops.equal(row, self.num_items - 1)))
        pos, neg = self.correct_logq(pos, neg, target, neg_ids)
        if mask is not None:
            neg = ops.where(mask, ops.cast(-1e9, neg.dtype), neg)
        if self.hard_miner is not None:  # keep the hardest negatives (+ the positive, column 0)
            logits = ops.concatenate([ops.expand_dims(pos, 1), neg], axis=1)
            labels = ops.concatenate([ops.ones_like(logits[:, :1]), ops.zeros_like(neg)], axis=1)
            logits, labels = self.hard_miner(logits, labels)
            ce = ops.logsumexp(logits, axis=1) - ops.sum(logits * labels, axis=1)
        else:
            ce = ops.logsumexp(ops.concatenate([ops.expand_dims(pos, 1), neg], axis=1), axis=1) - pos
        loss = ops.sum(ce * weight) / ops.maximum(ops.sum(weight), 1.0)
        reg = self.losses
        if reg:
            loss = loss + ops.sum(ops.stack([ops.cast(r, loss.dtype) for r in reg]))
        return loss

    def proposal_log_prob(self, ids):
        """log Q(item) of the distribution the training negatives come from, or None where the
        correction is a constant (uniform sampling, the full softmax) and so changes nothing.
        In-batch: an item is a negative as often as it is a target, i.e. by its training popularity
        (`adapt`); sampled: the sampler's own probability."""
        if self.softmax == "full" or (self.softmax == "sampled" and self.negative_sampler == "uniform"):
            return None
        return ops.take(self.item_log_prob, ids, axis=0)

    def correct_logq(self, pos, neg, target, neg_ids):
        """Logits minus log Q of their candidate (Yi et al., RecSys'19; keras-rs SamplingProbabilityCorrection),
        when `logq_correction` is on and the sampler's Q is not constant. pos [N], neg [N, M]."""
        q_neg = self.proposal_log_prob(neg_ids) if self.logq_correction else None
        if q_neg is None:
            return pos, neg
        neg = self.logq(neg, ops.expand_dims(ops.exp(q_neg), 0))
        pos = self.logq(pos, ops.exp(self.proposal_log_prob(target)))
        return pos, neg

    def _sample_negatives(self):
        if self.negative_sampler == "uniform":
            return keras.random.randint((self.num_negatives,), 1, self.num_items - 1, seed=self.seed_generator,
                                        dtype="int32")
        neg = keras.random.categorical(ops.expand_dims(self.item_log_prob, 0), self.num_negatives,
                                       seed=self.seed_generator, dtype="int32")
        return ops.reshape(neg, (-1,))

    # ----------------------------------------------------------- evaluation
    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if self._collect_eval is None:
            return self(x, training=False)
        out = {"query": self(x, training=False), "target": x[self.item_field]}
        if self.exclude_history:
            out["history"] = x[self.history_field]
        if self.eval_protocol == "sampled":
            out["negatives"] = x[self.negatives_field]
        return out

    def embed_queries(self, dataset, verbose=0):
        """Query vectors, target ids and (if needed) histories/negatives of a whole split."""
        out = self.predict_collecting(dataset, "retrieval", verbose)
        return {k: np.asarray(v) for k, v in out.items()}

    def embed_catalogue(self, batch_size=8192):
        ids = self.catalogue_ids()
        vecs = [np.asarray(self.item_vectors(ids[s:s + batch_size], training=False))
                for s in range(0, len(ids), batch_size)]
        return ids, np.concatenate(vecs).astype("float32")

    def build_index(self, **overrides):
        """An index over the whole catalogue (eval_index settings, overridable)."""

        params = dict(self.eval_index, **overrides)
        backend = params.pop("backend", "exact")
        ids, vecs = self.embed_catalogue()
        index = make_index(backend, metric="dot", **params)
        if isinstance(index, ScaNNIndex):
            index.build(vecs, ids, k=params.get("k", 100))
        else:
            index.build(vecs, ids)
        return index

    def retrieve(self, queries, index, k, histories=None):
        """Top-k item ids [Q, k] (-1 padded) and their scores, history items removed."""
        depth = k + (histories.shape[1] if histories is not None else 0)
        ids, scores = index.search(queries, k=depth)
        if histories is None:
            return ids[:, :k], scores[:, :k]

        return exclude_seen(ids, histories, k, scores=scores)

    def evaluate_split(self, dataset, metrics, group_id=None, verbose=0, index=None):
        check_retrieval_metrics(metrics, where=type(self).__name__)
        data = self.embed_queries(dataset, verbose=verbose)
        q, target = data["query"], data["target"].reshape(-1)
        if self.eval_protocol == "sampled":
            neg = data["negatives"]
            pos_s = np.sum(q * np.asarray(self.item_vectors(target)), axis=1)
            neg_v = np.asarray(self.item_vectors(neg.reshape(-1))).reshape(neg.shape + (-1,))
            neg_s = np.einsum("qd,qsd->qs", q, neg_v)
            neg_s = np.where(neg > 0, neg_s, -np.inf)
            return metrics_from_ranks(sampled_ranks(pos_s, neg_s), metrics)
        k = max_cutoff(metrics)
        index = index or self.build_index()
        ranked, _ = self.retrieve(q, index, k, data.get("history"))
        return metrics_from_ranks(target_ranks(ranked, target), metrics)
