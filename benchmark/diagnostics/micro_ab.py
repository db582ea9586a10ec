#!/usr/bin/env python
"""A/B timings behind the speed claims, each pair measured in one process, alternating rounds.

    python benchmark/diagnostics/micro_ab.py adam-table       # Keras Adam vs fuxi_like's fused Adam on a 5.6M-float table
    python benchmark/diagnostics/micro_ab.py adam-deepfm      # DeepFM training step on the 1M-row Criteo-like set, both Adams
    python benchmark/diagnostics/micro_ab.py adam-clip [--batch 10000]  # the same step: the embedding's row slices densified
                                                  # by Keras's clipping (twice), by UnsortedSegmentSum or by a sparse matmul
    python benchmark/diagnostics/micro_ab.py densify --batch 10000  # that densification alone, on one batch's gradient
    python benchmark/diagnostics/micro_ab.py deepfm-parts --batch 10000  # full DeepFM step vs without its MLP vs the MLP alone
    python benchmark/diagnostics/micro_ab.py clip-norm        # a table gradient's squared norm: square + sum vs tf.nn.l2_loss
    python benchmark/diagnostics/micro_ab.py l2-regularizer   # an embedding table's L2 term, fwd + bwd: Keras's vs tf.nn.l2_loss
    python benchmark/diagnostics/micro_ab.py deepfm-elementwise --batch 10000  # FM fwd/bwd and the concat around DeepFM's tower
    python benchmark/diagnostics/micro_ab.py rat-xla          # a RAT_frappe training step without and with XLA (CPU)
    python benchmark/diagnostics/micro_ab.py pipeline --batch 10000  # a shuffled in-memory batch: columns gathered one by one
                                                  # vs packed per dtype (wall ms; the prefetch runs ahead)
    python benchmark/diagnostics/micro_ab.py sparcode-bruteforce  # SparCode brute force over Beauty's catalogue: eager vs compiled
    python benchmark/diagnostics/micro_ab.py sparcode-pairs   # SparCode MLP scorer over 512 x 4 tokens x 200 items, fwd + bwd:
                                                  # W_p(t * e) stacked per pair (kept) vs e @ (diag(t) W_p) per token
    python benchmark/diagnostics/micro_ab.py fm-matmul        # FM fwd + bwd: the layer vs the field sum as a matmul
    python benchmark/diagnostics/micro_ab.py numeric-factored # DeepFM step: FM + MLP on the flattened embeddings vs numeric
                                                  # fields by their factors (call_fields, the default)
    python benchmark/diagnostics/micro_ab.py memory-sampler   # DeepFM step while another process samples its memory:
                                                  # none vs smaps_rollup every 0.2 s vs benchmark/peers/memory.py

Prints the median and every round (ms). Alternating rounds in one process cancels slow drift of a
shared machine, not contention: run it alone for numbers worth quoting.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from fuxi_like.tf_env import configure  # noqa: E402  TF's host allocator as the entry points set it

configure()


def alternate(fns, rounds, reps):
    """{name: fn} -> {name: [ms per call, one per round]}, the functions alternating each round."""
    out = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            for _ in range(reps):
                fn()
            out[k].append((time.perf_counter() - t) / reps * 1e3)
    return out


def adam_table():
    import keras
    import tensorflow as tf

    from fuxi_like.training.optimizers import Adam

    shape = (350_000, 16)  # the Criteo-like table at embedding 16
    g = tf.random.normal(shape)
    fns = {}
    for name, cls in (("keras Adam", keras.optimizers.Adam), ("fused Adam", Adam)):
        v = keras.Variable(np.zeros(shape, "float32"))
        opt = cls(1e-3)
        opt.build([v])
        step = _apply_fn(opt, v, g)
        step()
        fns[name] = step
    return fns


def _apply_fn(opt, v, g):
    import tensorflow as tf

    @tf.function
    def step():  # a closure: tf.function would turn default arguments into inputs
        opt.apply([g], [v])

    return step


def _criteo_batch(batch):
    """(feature map, DeepFM class, one training batch x, y) of the 1M-row Criteo-like set."""
    from benchmark.profile_train_step import processed
    from fuxi_like.data.tf_dataset import InputPipeline
    from fuxi_like.experiment import load_model_module

    fmap = processed(1_000_000)
    DeepFM = load_model_module(ROOT / "model_zoo" / "DeepFM").DeepFM
    x, y = next(iter(InputPipeline(fmap, batch, seed=1).dataset("train", shuffle=True)))
    return fmap, DeepFM, x, y


def _deepfm_steps(optimizers, batch):
    """{name: one DeepFM training step on a fixed batch of the 1M-row Criteo-like set} per optimizer class."""
    import keras

    fmap, DeepFM, x, y = _criteo_batch(batch)
    fns = {}
    for name, cls in optimizers:
        keras.utils.set_random_seed(1)
        m = DeepFM(fmap, hidden_units=[400, 400, 400], embedding_dim=16)
        m.compile(optimizer=cls(learning_rate=1e-3, global_clipnorm=10.0), loss="binary_crossentropy")
        m.train_on_batch(x, y)
        fns[name] = lambda m=m: m.train_on_batch(x, y)
    return fns


def adam_deepfm(batch=4096):
    import keras

    from fuxi_like.training.optimizers import Adam

    return _deepfm_steps((("keras Adam", keras.optimizers.Adam), ("fused Adam", Adam)), batch)


def adam_clip(batch=4096):
    """How the fused Adam gets an embedding's row-slice gradient into dense form under global-norm
    clipping: Keras's clipping (densifies twice, scales the whole table), densifying once by TF's
    UnsortedSegmentSum (both then Keras's clipping: square + sum norm, scaling pass), or what `adam` does:
    once by a sparse-dense matmul, the norm by `tf.nn.l2_loss`, no scaling pass when within the clip."""
    import keras
    import tensorflow as tf

    from fuxi_like.training.optimizers import Adam

    class KerasClipAdam(Adam):  # the fused update after Keras's clipping (row slices densified to clip them)
        _clip_gradients = keras.optimizers.Optimizer._clip_gradients

    class SegmentSumAdam(Adam):  # densified once by convert_to_tensor (UnsortedSegmentSum), then Keras's clipping
        def _clip_gradients(self, grads):
            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
            return keras.optimizers.Optimizer._clip_gradients(self, grads)

    return _deepfm_steps((("fused Adam, Keras clip (densify twice, scale table)", KerasClipAdam),
                          ("fused Adam, densify once by UnsortedSegmentSum", SegmentSumAdam),
                          ("fused Adam, densify once by sparse matmul, l2_loss norm, no scaling within the clip (adam)", Adam)), batch)


def densify(batch=10000):
    """A DeepFM batch's main-table gradient (row slices, [batch x 26 fields] rows of 16) summed into the
    dense table gradient: TF's IndexedSlices -> dense (UnsortedSegmentSum), the earlier dedupe chain
    (unique + two segment sums), `_densify` (sparse-dense matmul) and `tf.scatter_nd`; checks the results are equal."""
    import keras
    import tensorflow as tf

    from fuxi_like.training.optimizers import _densify

    fmap, DeepFM, x, y = _criteo_batch(batch)
    m = DeepFM(fmap, hidden_units=[], embedding_dim=16)
    with tf.GradientTape() as tape:
        loss = keras.losses.binary_crossentropy(y, m(x, training=True))
    g = max((gr for gr in tape.gradient(loss, m.trainable_variables) if isinstance(gr, tf.IndexedSlices)),
            key=lambda gr: int(gr.values.shape[-1]))
    n = int(g.dense_shape[0])

    def dedupe_chain():
        rows, pos = tf.unique(g.indices)
        return tf.math.unsorted_segment_sum(tf.math.unsorted_segment_sum(g.values, pos, tf.shape(rows)[0]), rows, n)

    fns = {"UnsortedSegmentSum (convert_to_tensor)": tf.function(lambda: tf.convert_to_tensor(g)),
           "unique + two segment sums": tf.function(dedupe_chain),
           "sparse-dense matmul (_densify)": tf.function(lambda: _densify(g)),
           "scatter_nd": tf.function(lambda: tf.scatter_nd(tf.expand_dims(g.indices, 1), g.values, [n, 16]))}
    ref = fns["UnsortedSegmentSum (convert_to_tensor)"]().numpy()
    for name, fn in fns.items():
        err = float(np.abs(fn().numpy() - ref).max())
        assert err < 1e-5, (name, err)
    print(f"densify: {int(g.indices.shape[0]):,} rows of {int(g.values.shape[-1])} into a {n:,}-row table "
          f"({len(np.unique(g.indices.numpy())):,} distinct); all equal")
    return fns


def deepfm_parts(batch=10000):
    """Where a DeepFM step goes: the full model, the model without its MLP (embedding + FM + LR + loss +
    optimizer, a linear 624 -> 1 readout) with clipping, without clipping and with LazyAdam, and the MLP
    alone on a dense [batch, 624] input (all fused Adam)."""
    import keras
    import tensorflow as tf

    from fuxi_like.training.optimizers import Adam, LazyAdam

    fmap, DeepFM, x, y = _criteo_batch(batch)
    fns = {}
    for name, units, opt in (("full DeepFM, clip 10", [400, 400, 400], lambda: Adam(1e-3, global_clipnorm=10.0)),
                             ("without MLP, clip 10", [], lambda: Adam(1e-3, global_clipnorm=10.0)),
                             ("without MLP, no clip", [], lambda: Adam(1e-3)),
                             ("without MLP, lazyadam", [], lambda: LazyAdam(1e-3))):
        keras.utils.set_random_seed(1)
        m = DeepFM(fmap, hidden_units=units, embedding_dim=16)
        m.compile(optimizer=opt(), loss="binary_crossentropy")
        m.train_on_batch(x, y)
        fns[name] = lambda m=m: m.train_on_batch(x, y)
    mlp = keras.Sequential([keras.Input((624,))] + [keras.layers.Dense(400, activation="relu") for _ in range(3)]
                           + [keras.layers.Dense(1, activation="sigmoid")])
    mlp.compile(optimizer=Adam(1e-3, global_clipnorm=10.0), loss="binary_crossentropy")
    xd = tf.random.normal((batch, 624))
    mlp.train_on_batch(xd, y)
    fns["MLP only (624 -> 400x3 -> 1)"] = lambda: mlp.train_on_batch(xd, y)
    return fns


def clip_norm():
    """The squared norm of a DeepFM table gradient (300,020 x 16 floats) for global-norm clipping: Keras's
    square then sum vs one `tf.nn.l2_loss` kernel (what `adam` uses), and the scaling pass it skips when the
    norm is within the clip; checks the two norms agree."""
    import tensorflow as tf

    g = tf.random.normal((300_020, 16), seed=1)
    fns = {"square + sum (Keras)": tf.function(lambda: tf.reduce_sum(tf.square(g))),
           "2 * l2_loss (adam)": tf.function(lambda: 2.0 * tf.nn.l2_loss(g)),
           "scaling pass (g * scale)": tf.function(lambda: g * 0.5)}
    a, b = float(fns["square + sum (Keras)"]()), float(fns["2 * l2_loss (adam)"]())
    assert abs(a - b) <= 1e-5 * a, (a, b)
    return fns


def l2_regularizer():
    """An embedding regularizer's term on a 300,020 x 16 table, forward + backward: Keras's L1L2
    (square, sum; autodiff) vs fuxi_like's (`tf.nn.l2_loss`); checks equal values and gradients."""
    import keras
    import tensorflow as tf

    from fuxi_like.layers.regularizers import L1L2

    w = tf.Variable(tf.random.normal((300_020, 16), seed=2))

    def fn(reg):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = reg(w)
            return loss, tape.gradient(loss, w)
        return step

    fns = {"keras L1L2": fn(keras.regularizers.L1L2(l2=0.05)), "fuxi_like L1L2 (l2_loss)": fn(L1L2(l2=0.05))}
    (a, ga), (b, gb) = (f() for f in fns.values())
    assert abs(float(a) - float(b)) <= 1e-5 * abs(float(a)) and float(tf.reduce_max(tf.abs(ga - gb))) < 1e-6
    return fns


def deepfm_elementwise(batch=10000):
    """The element-wise work around DeepFM's tower on [batch, 39, 16] embeddings, each part alone: the FM
    forward (sum of squares, field sum) and backward (upstream * (s - v)), the numeric/categorical concat."""
    import tensorflow as tf

    v = tf.random.normal((batch, 39, 16), seed=3)
    u, s = tf.random.normal((batch, 1), seed=4), tf.reduce_sum(v, 1)
    return {"FM forward: sum of squares": tf.function(lambda: tf.reduce_sum(tf.square(v), axis=(1, 2))),
            "FM forward: field sum": tf.function(lambda: tf.reduce_sum(v, axis=1)),
            "FM backward: u * (s - v)": tf.function(lambda: tf.expand_dims(u, -1) * (tf.expand_dims(s, 1) - v)),
            "concat 13 numeric + 26 categorical fields": tf.function(lambda: tf.concat([v[:, :13], v[:, 13:]], 1))}


def fm_matmul(batch=4096):
    """The FM term on [batch, 39, 16] embeddings, forward + backward: the layer's (field sum by a reduction,
    written-out gradient s - v) vs the field sum as a matmul with a tiled identity ([B, 624] @ [624, 16]),
    by autodiff and with a written-out gradient. Checks all give the same gradient."""
    import tensorflow as tf

    from fuxi_like.layers.interaction import _fm_interaction

    f, d = 39, 16
    v = tf.Variable(tf.random.normal((batch, f, d), seed=3))
    u = tf.random.normal((batch, 1), seed=4)
    tiled = tf.constant(np.tile(np.eye(d, dtype="float32"), (f, 1)))

    def by_matmul(v):
        x = tf.reshape(v, (-1, f * d))
        s = x @ tiled
        return 0.5 * (tf.reduce_sum(s * s, -1, keepdims=True) - tf.reduce_sum(x * x, -1, keepdims=True))

    @tf.custom_gradient
    def by_matmul_written(v):
        x = tf.reshape(v, (-1, f * d))
        s = x @ tiled
        out = 0.5 * (tf.reduce_sum(s * s, -1, keepdims=True) - tf.reduce_sum(x * x, -1, keepdims=True))
        return out, lambda up: tf.reshape(up * (tf.matmul(s, tiled, transpose_b=True) - x), tf.shape(v))

    def step(fm):
        @tf.function
        def run():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(fm(v) * u)
            return tape.gradient(loss, v)
        return run

    fns = {"FM layer (reduction, written-out gradient)": step(_fm_interaction),
           "field sum as matmul, autodiff": step(by_matmul), "field sum as matmul, written-out": step(by_matmul_written)}
    ref = next(iter(fns.values()))().numpy()
    assert all(np.allclose(fn().numpy(), ref, atol=1e-4) for fn in fns.values())
    return fns


def numeric_factored(batch=4096):
    """A DeepFM training step on the 1M-row Criteo-like set (13 numeric of 39 fields): the FM and the MLP
    on the flattened [batch, 39 x 16] embeddings (the plain path) vs on the field embeddings with numeric
    fields by their factors (`MLPBlock.call_fields`, `FactorizationMachine.call_fields`, the DeepFM
    default); checks both give the same predictions before and after a step."""
    import keras

    from fuxi_like.layers import FeatureEmbedding
    from fuxi_like.training.optimizers import Adam

    fmap, DeepFM, x, y = _criteo_batch(batch)

    class PlainDeepFM(DeepFM):
        def call(self, inputs, training=None):
            emb = self.embedding(inputs)
            logit = self.lr(inputs) + self.fm(FeatureEmbedding.stack(emb))
            return self.output_activation(logit + self.mlp(FeatureEmbedding.flatten(emb), training=training))

    models = {}
    for name, cls in (("flattened (plain path)", PlainDeepFM), ("numeric fields factored (call_fields)", DeepFM)):
        keras.utils.set_random_seed(1)
        m = cls(fmap, hidden_units=[400, 400, 400], embedding_dim=16)
        m.compile(optimizer=Adam(1e-3, global_clipnorm=10.0), loss="binary_crossentropy")
        m(x)
        models[name] = m
    a, b = models.values()
    b.set_weights(a.get_weights())
    for _ in range(2):
        err = float(np.abs(a.predict_on_batch(x) - b.predict_on_batch(x)).max())
        assert err < 1e-5, err
        a.train_on_batch(x, y)
        b.train_on_batch(x, y)
    return {k: (lambda m=m: m.train_on_batch(x, y)) for k, m in models.items()}


def rat_xla():
    """A RAT_frappe training step (batch 4096) compiled by tf.function alone vs with XLA (`jit_compile`);
    needs the trained RAT_frappe (`cd model_zoo/RAT && python run_expid.py --expid RAT_frappe`)."""
    from benchmark.op_profile import rat_step

    fns = {"tf.function": rat_step(False), "XLA (jit_compile=True)": rat_step(True)}
    for fn in fns.values():
        fn()
    return fns


def pipeline(batch=10000):
    """One shuffled in-memory training batch of the 1M-row Criteo-like set (40 columns): every column
    gathered alone vs the 1-D columns of a dtype packed row-major (one row gather each, what
    `InputPipeline` does); checks both give the same batches."""
    import tensorflow as tf

    from benchmark.profile_train_step import processed
    from fuxi_like.data import tf_dataset
    from fuxi_like.data.tf_dataset import InputPipeline

    fmap = processed(1_000_000)
    packing = tf_dataset._pack_columns
    iters = {}
    for name, pack in (("each column gathered alone", lambda arrays: ({k: tf.constant(v) for k, v in arrays.items()}, [])),
                       ("columns packed per dtype (InputPipeline)", packing)):
        tf_dataset._pack_columns = pack
        try:
            iters[name] = iter(InputPipeline(fmap, batch, seed=1).dataset("train", shuffle=True).repeat())
        finally:
            tf_dataset._pack_columns = packing
    (xa, ya), (xb, yb) = (next(it) for it in iters.values())
    assert all(np.array_equal(xa[k].numpy(), xb[k].numpy()) for k in xa) and np.array_equal(ya.numpy(), yb.numpy())
    print(f"pipeline: batch {batch}, {len(xa)} columns; both give the same batches")
    return {name: (lambda it=it: next(it)) for name, it in iters.items()}


def sparcode_bruteforce():
    """SparCode brute-force scoring of 512 Beauty test queries' unquantized tokens against the whole
    catalogue: eager `pair_scores` vs the compiled one `SparCode.brute_force` uses (needs the trained
    `SparCode_beauty`: `cd model_zoo/SparCode && python run_expid.py --expid SparCode_beauty`)."""
    import numpy as np
    from keras import ops

    from fuxi_like.data.tf_dataset import InputPipeline
    from fuxi_like.runner import load_trained

    folder = ROOT / "model_zoo" / "SparCode"
    sc = load_trained(folder / "config", "SparCode_beauty", model_dir=folder)["model"]
    tok = sc.embed_queries(InputPipeline(sc.feature_map, 512).dataset("test").take(1))["raw"]
    vecs = ops.convert_to_tensor(sc.embed_catalogue()[1])
    compiled = sc._compiled_pair_scores()
    eager = np.asarray(sc.pair_scores(ops.convert_to_tensor(tok[:64]), vecs, training=False))
    assert np.array_equal(eager, np.asarray(compiled(ops.convert_to_tensor(tok[:64]), vecs))), "scores differ"

    def run(fn, bs):
        return lambda: [np.asarray(fn(ops.convert_to_tensor(tok[s:s + bs]), vecs)) for s in range(0, len(tok), bs)]

    return {"eager, 256 queries per batch": run(lambda t, v: sc.pair_scores(t, v, training=False), 256),
            "compiled, 64 queries per batch (brute_force)": run(compiled, 64)}


def sparcode_pairs():
    import tensorflow as tf
    from keras import ops

    from fuxi_like.experiment import load_model_module

    CrossScorer = load_model_module(ROOT / "model_zoo" / "SparCode").CrossScorer
    n, k, c, d = 512, 4, 200, 64
    tok, items = tf.random.normal((n, k, d)), tf.random.normal((c, d))
    sc = CrossScorer([64, 32])
    sc.build((None, d))

    def per_token_matmul(t, e):  # the alternative: W_p (t * e) = e @ (diag(t) W_p), one matmul per token
        wp = sc.w_p.kernel
        scaled = ops.reshape(ops.expand_dims(t, -1) * wp, (-1, d, wp.shape[-1]))
        prod = ops.reshape(ops.matmul(e[None], scaled), (n, k, -1, wp.shape[-1]))
        return sc._head(ops.expand_dims(sc.w_t(t), 2) + sc.w_e(e)[None, None] + prod, None)

    fns = {}
    for name, fn in (("stacked products (CrossScorer.pairs)", lambda t, e: sc.pairs(t, e)),
                     ("per-token matmul", per_token_matmul)):
        @tf.function
        def step(fn=fn):
            with tf.GradientTape() as tape:
                tape.watch(tok)
                tape.watch(items)
                loss = tf.reduce_sum(tf.nn.relu(fn(tok, items) + 1.0))
            return tape.gradient(loss, [tok, items] + [v.value for v in sc.trainable_variables])

        step()
        fns[name] = step
    return fns


_SAMPLER = """
import sys, threading, time
sys.path.insert(0, sys.argv[2])
from benchmark.peers.memory import TreeMemorySampler, private_kb, tree_pids
pid, mode = int(sys.argv[1]), ["none"]
def read():
    for line in sys.stdin:
        mode[0] = line.strip()
threading.Thread(target=read, daemon=True).start()
cheap, state = TreeMemorySampler(pid), {"anon": 0, "at": 0.0, "not_before": 0.0}
while True:
    if mode[0] == "smaps every 0.2 s":
        private_kb(tree_pids(pid))
    elif mode[0] == "TreeMemorySampler":
        cheap.poll(state)
    time.sleep(0.2)
"""


def memory_sampler(batch=4096):
    """A DeepFM training step (fixed batch, the 1M-row set in memory) while another process samples
    this one's memory: not at all, by smaps_rollup every 0.2 s (the peer harness until 2026-11-30:
    each read walks the page tables), or by `benchmark/peers/memory.py`'s sampler (cheap RssAnon
    polls, smaps_rollup only on growth)."""
    import atexit
    import subprocess

    from fuxi_like.training.optimizers import Adam

    step = _deepfm_steps((("adam", Adam),), batch)["adam"]
    helper = subprocess.Popen([sys.executable, "-c", _SAMPLER, str(os.getpid()), str(ROOT)],
                              stdin=subprocess.PIPE, text=True)
    atexit.register(helper.kill)

    def run(mode):
        helper.stdin.write(mode + "\n")
        helper.stdin.flush()
        step()

    return {m: (lambda m=m: run(m)) for m in ("none", "smaps every 0.2 s", "TreeMemorySampler")}


CASES = {"adam-table": (adam_table, 10), "adam-deepfm": (adam_deepfm, 8), "adam-clip": (adam_clip, 8),
         "deepfm-parts": (deepfm_parts, 4), "densify": (densify, 10),
         "pipeline": (pipeline, 20), "clip-norm": (clip_norm, 20),
         "l2-regularizer": (l2_regularizer, 20), "deepfm-elementwise": (deepfm_elementwise, 20),
         "rat-xla": (rat_xla, 2), "sparcode-bruteforce": (sparcode_bruteforce, 1),
         "sparcode-pairs": (sparcode_pairs, 3), "memory-sampler": (memory_sampler, 10), "fm-matmul": (fm_matmul, 20),
         "numeric-factored": (numeric_factored, 8)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4096, help="batch size of the DeepFM cases")
    a = ap.parse_args()
    make, reps = CASES[a.case]
    from fuxi_like.errors import ConfigError

    try:
        fns = make(a.batch) if a.case in ("adam-deepfm", "adam-clip", "deepfm-parts", "densify", "pipeline", "deepfm-elementwise", "memory-sampler", "fm-matmul", "numeric-factored") else make()
    except ConfigError as e:  # e.g. an untrained model: the weights path and the command to train it
        sys.exit(f"error: {e}")
    for name, times in alternate(fns, a.rounds, reps).items():
        print(f"{a.case} | {name}: median {np.median(times):.1f} ms, rounds {[round(t, 1) for t in times]}")


if __name__ == "__main__":
    main()
