"""UIST's semantic tokenizers: content vectors -> encoder -> residual quantization -> decoder (an autoencoder).

- Item tokenizer: the input is an item's pretrained text vector (all-MiniLM-L6-v2, computed once by
  `encode_items`); the decoder reconstructs that vector (MSE). The paper encodes the text with BART, pools the token
  states by additive attention and reconstructs the TEXT with BART's decoder; ours reconstructs the embedding (a
  substitution, stated in the README).
- User tokenizer: the same machinery over the user's history of frozen item vectors (<= 30): additive-attention
  pooling over the history -> encoder -> RQ -> decoder reconstructing the history's mean vector (the paper's
  decoder reconstructs the history id sequence).

Training (`fit_tokenizer`): Adam on reconstruction MSE + the quantizer's codebook/commitment loss, with the straight-
through estimator (the official code has none: deviation (a)), k-means initialisation of every level on the
encoder outputs of a sample (disabled in the official code: (b)), and dead-code replacement of codes unused for
`dead_code_steps` steps (the official condition is inverted: (c)). Codes are exported per level with the level
offsets kept apart from the concatenated codebooks (the official export drops them: (d)).

`export_tokens` writes codes [N, L] (int16 while codes per level <= 32,767) + codebooks + the tokenizer's weights to
one .npz, atomically, with a fingerprint over what went into it; `load_tokens` reads it back when the fingerprint
matches. `tokenizer_quality` measures a trained tokenizer (reconstruction error per depth, codebook perplexity,
collisions, nearest-neighbour agreement).
"""

import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from fuxi_like.errors import DataError
from fuxi_like.io_utils import atomic_path, stable_hash
from fuxi_like.layers import MLPBlock, ResidualQuantizer
from fuxi_like.layers.attention import AdditiveAttention
from fuxi_like.layers.embedding import masked_pool


class SemanticTokenizer(keras.layers.Layer):
    """content [B, D] (items) or [B, H, D] + mask (users) -> codes [B, L] via encoder -> RQ -> decoder."""

    def __init__(self, input_dim, latent_dim=64, hidden_units=256, levels=3, codes_per_level=64, beta=0.25,
                 pool_history=False, **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.latent_dim, self.pool_history = int(input_dim), int(latent_dim), bool(pool_history)
        if self.pool_history:
            self.pool = AdditiveAttention(hidden_units, name="history_attention")
        self.encoder = MLPBlock([hidden_units], "relu", output_dim=latent_dim, name="encoder")
        self.rq = ResidualQuantizer(levels, codes_per_level, beta, name="rq")
        self.decoder = MLPBlock([hidden_units], "relu", output_dim=input_dim, name="decoder")
        self.levels, self.codes_per_level = int(levels), int(codes_per_level)

    def build(self, input_shape=None):
        shape = (None, None, self.input_dim) if self.pool_history else (None, self.input_dim)
        if self.pool_history:
            self.pool.build(shape)
        self.encoder.build((None, self.input_dim))
        self.rq.build((None, self.latent_dim))
        self.decoder.build((None, self.latent_dim))
        self.built = True

    def pooled(self, x, mask=None):
        """The vector the encoder reads: x itself, or the attention pool of a history [B, H, D]."""
        return self.pool(x, mask) if self.pool_history else x

    def target(self, x, mask=None):
        """What the decoder reconstructs: the item vector, or the history's mean vector."""
        return masked_pool(x, ops.cast(mask, x.dtype)) if self.pool_history else x

    def latent(self, x, mask=None, training=None):
        return self.encoder(self.pooled(x, mask), training=training)

    def tokens(self, x, mask=None):
        """Per-level codes [B, L] (0..codes_per_level-1)."""
        codes, _, _ = self.rq.residual_quantize(self.latent(x, mask))
        return codes

    def call(self, x, mask=None, training=None):
        """(reconstruction [B, D], codes [B, L], quantizer loss)."""
        z_q, codes, q_loss = self.rq(self.latent(x, mask, training=training), training=training, return_loss=True)
        return self.decoder(z_q, training=training), codes, q_loss


def fit_tokenizer(tokenizer, inputs, masks=None, steps=3000, batch_size=256, learning_rate=1e-3, seed=0,
                  dead_code_steps=50, init_sample=4096, verbose=True):
    """Train `tokenizer` on `inputs` [N, D] (items) or [N, H, D] with `masks` [N, H] (users) for `steps` Adam steps
    (whole shuffled epochs, the last one cut at `steps`). Returns a history dict (loss per epoch, codes re-seeded,
    seconds)."""
    rng = np.random.default_rng(seed)
    x_all = np.asarray(inputs, np.float32)
    m_all = None if masks is None else np.asarray(masks, np.float32)
    n = len(x_all)
    if n == 0:
        raise DataError("fit_tokenizer: no inputs to tokenize")
    if not tokenizer.built:
        tokenizer.build()
    keras.utils.set_random_seed(seed)
    sample = rng.choice(n, min(init_sample, n), replace=False)

    def latent_of(idx):
        return np.asarray(tokenizer.latent(x_all[idx], None if m_all is None else m_all[idx]))

    tokenizer.rq.init_from(latent_of(sample), seed=seed)
    opt = keras.optimizers.Adam(learning_rate)
    frozen = not tokenizer.trainable  # a tokenizer frozen inside a CTR model still trains here
    tokenizer.trainable = True
    variables = tokenizer.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(x, m):
        with tf.GradientTape() as tape:
            recon, _, q_loss = tokenizer(x, m, training=True)
            rec = ops.mean(ops.sum((recon - tokenizer.target(x, m)) ** 2, -1))
            loss = rec + q_loss
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, rec

    history = {"loss": [], "reconstruction": [], "reseeded": 0}
    t0 = time.time()
    done = 0
    per_epoch = -(-n // batch_size)
    epochs = -(-steps // per_epoch)
    for epoch in range(epochs):
        order = rng.permutation(n)
        tot = rec_tot = 0.0
        seen = 0
        for start in range(0, n, batch_size):
            if done == steps:
                break
            idx = order[start:start + batch_size]
            m = tf.ones((len(idx), 1)) if m_all is None else m_all[idx]
            loss, rec = step(x_all[idx], m)
            tot += float(loss) * len(idx)
            rec_tot += float(rec) * len(idx)
            seen += len(idx)
            done += 1
            if dead_code_steps and done % dead_code_steps == 0:
                history["reseeded"] += tokenizer.rq.reset_dead(latent_of(rng.choice(n, min(init_sample, n), False)),
                                                               dead_code_steps, seed=int(rng.integers(2 ** 31)))
        history["loss"].append(tot / seen)
        history["reconstruction"].append(rec_tot / seen)
        if verbose and (epoch + 1) % max(1, epochs // 5) == 0:
            print(f"tokenizer epoch {epoch + 1}/{epochs} ({done} steps): loss {tot / seen:.5f}, reconstruction "
                  f"{rec_tot / seen:.5f}", flush=True)
    history["seconds"] = time.time() - t0
    tokenizer.trainable = not frozen
    return history


def tokenize_all(tokenizer, inputs, masks=None, batch_size=4096):
    """Codes [N, L] int64 of every input."""
    out = []
    for s in range(0, len(inputs), batch_size):
        m = None if masks is None else masks[s:s + batch_size]
        out.append(np.asarray(tokenizer.tokens(np.asarray(inputs[s:s + batch_size], np.float32), m)))
    return np.concatenate(out).astype(np.int64)


def code_dtype(codes_per_level):
    return np.int16 if codes_per_level <= np.iinfo(np.int16).max else np.int32


def export_tokens(path, tokenizer, codes, fingerprint, info=None):
    """Write codes [N, L] (int16 while codes per level fit), the concatenated codebooks [L*K, d], the per-level
    offsets and every weight of the tokenizer to `path` (.npz) atomically, with the fingerprint."""
    path = Path(path)
    arrays = {"codes": np.asarray(codes).astype(code_dtype(tokenizer.codes_per_level)),
              "codebooks": np.asarray(tokenizer.rq.codebooks.numpy(), np.float32),
              "offsets": tokenizer.rq.offsets, "fingerprint": np.array(fingerprint),
              "info": np.array(json.dumps(info or {}, default=str))}
    for i, w in enumerate(tokenizer.get_weights()):
        arrays[f"weight_{i}"] = w
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


def load_tokens(path, fingerprint, tokenizer=None):
    """The arrays of `export_tokens` when `path` exists with this fingerprint (and, with `tokenizer`, its weights
    set from the file); None otherwise."""
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path) as z:
        if str(z["fingerprint"]) != fingerprint:
            return None
        out = {k: z[k] for k in z.files}
    if tokenizer is not None:
        if not tokenizer.built:
            tokenizer.build()
        n = len([k for k in out if k.startswith("weight_")])
        tokenizer.set_weights([out[f"weight_{i}"] for i in range(n)])
    out["info"] = json.loads(str(out["info"]))
    return out


def tokenizer_fingerprint(content_fingerprint, config):
    return stable_hash({"content": content_fingerprint, "tokenizer": config})


def tokenizer_quality(tokenizer, inputs, masks=None, neighbours=10, sample=1000, seed=0):
    """Quality of a trained tokenizer on `inputs`:
    - `reconstruction_l{d}`: mean squared error of decode(sum of the first d levels' codewords) against the target,
      relative to the target's total variance (1.0 = no better than the mean), for d = 1..L;
    - `perplexity_l{l}` / `utilisation_l{l}`: exp(entropy) of level l's code usage, and the fraction of its codes used;
    - `collision_rate`: the fraction of inputs whose full code tuple is shared with another input;
    - `nn_agreement@k`: mean overlap of the k nearest neighbours (cosine) of the decoded vectors with those of the
      original targets, over a sample."""
    x = np.asarray(inputs, np.float32)
    codes = tokenize_all(tokenizer, x, masks)
    target = np.asarray(tokenizer.target(x, masks)) if tokenizer.pool_history else x
    var = float(((target - target.mean(0)) ** 2).sum(1).mean())
    out = {}
    recon_full = None
    for depth in range(1, tokenizer.levels + 1):
        recon = np.asarray(tokenizer.decoder(tokenizer.rq.decode(codes, depth)))
        out[f"reconstruction_l{depth}"] = float(((recon - target) ** 2).sum(1).mean()) / max(var, 1e-12)
        recon_full = recon
    for level in range(tokenizer.levels):
        counts = np.bincount(codes[:, level], minlength=tokenizer.codes_per_level).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        out[f"perplexity_l{level + 1}"] = float(np.exp(-(p * np.log(p)).sum()))
        out[f"utilisation_l{level + 1}"] = float((counts > 0).mean())
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    out["collision_rate"] = float((counts[inverse.reshape(-1)] > 1).mean())
    out["unique_tuples"] = int(len(counts))
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), min(sample, len(x)), replace=False)

    def knn(v):
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        s = v[idx] @ v.T
        s[np.arange(len(idx)), idx] = -np.inf  # not itself
        return np.argsort(-s, axis=1)[:, :neighbours]

    a, b = knn(target), knn(recon_full)
    out[f"nn_agreement@{neighbours}"] = float(np.mean([len(set(r) & set(q)) / neighbours for r, q in zip(a, b)]))
    return out
