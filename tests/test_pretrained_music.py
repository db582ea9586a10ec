"""musicnn (`fuxi_like.pretrained.music`): the librosa-0.7 frontend in NumPy, exactness against the checkpoints' own
TF1 graphs, tags on real music, freezing and adapters between blocks.

The reference is independent of the Keras code: each checkpoint's `.meta` (the authors' training graph, TF 1.12)
imported with `tf.compat.v1.train.import_meta_graph` into a fresh `tf.Graph`, restored by `tf.compat.v1.train.Saver`
from the same prefix and run in a `tf.compat.v1.Session` with the is_training placeholder fed False. TF 2.20 refuses
the graph as saved only for its `_output_shapes` attributes, which disagree with today's shape functions on the
gradient nodes (`gradients/model/batch_normalization_8/cond/FusedBatchNorm_1_grad/FusedBatchNormGrad` output #3 is
annotated [0], TF 2.20 infers [64]); they annotate shapes, compute nothing, and are dropped before the import.

The weights come from the `musicnn` wheel (musicnn==0.1.0, 29.3 MB), fetched once per session into
`$FUXI_LIKE_WEIGHTS` when set, else into a temporary cache. The clips are ../shared/data/music_examples (without
them the tests on real music skip)."""

import os
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from fuxi_like.errors import ConfigError, DataError
from fuxi_like.pretrained import fetch as fetch_mod
from fuxi_like.pretrained import music
from fuxi_like.pretrained.blocks import BottleneckAdapter, set_trainable

ROOT = Path(__file__).resolve().parents[1]
MUSIC = ROOT.parent / "shared" / "data" / "music_examples"
BRAHMS = "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg"  # US Army Strings
RAGTIME = "442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime.ogg"  # solo piano
VIBE_ACE = "Kevin_MacLeod_-_Vibe_Ace.ogg"  # from a jazz sampler
TRUMPET = "sorohanro_-_solo-trumpet-06.ogg"  # a jazz trumpet loop, 5.3 s
# TF1 tensors of the official graph (models.py under tf.name_scope('model'))
TF1_INPUT, TF1_IS_TRAINING = "model/Placeholder:0", "model/Placeholder_2:0"
TF1_OUTPUTS = {"taggram": "model/Sigmoid:0", "penultimate": "model/batch_normalization_10/batchnorm/add_1:0",
               "max_pool": "model/Max:0", "mean_pool": "model/moments/Squeeze:0",
               "frontend": "model/concat:0", "midend": "model/concat_1:0"}


def clip(name, seconds=None):
    path = MUSIC / name
    if not path.is_file():
        pytest.skip(f"{path} absent (the music_examples clips in ../shared/data)")
    x, sr = music.read_audio(path)
    return (x if seconds is None else x[:int(seconds * sr)]), sr


def tf1_outputs(prefix, patches):
    """The checkpoint's TF1 graph run on `patches` [B, 187, 96]: {name: array} for TF1_OUTPUTS."""
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString(Path(prefix + ".meta").read_bytes())
    for node in meta.graph_def.node:
        node.attr.pop("_output_shapes", None)
    graph = tf.Graph()
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, prefix)
            return session.run(TF1_OUTPUTS, {TF1_INPUT: patches, TF1_IS_TRAINING: False})


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory):
    return os.environ.get(fetch_mod.ENV_CACHE) or tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="module")
def encoders(weights_cache):
    return {preset: music.MusicnnEncoder.from_preset(preset, cache_dir=weights_cache) for preset in music.PRESETS}


@pytest.fixture(scope="module")
def patches():
    """Eight log-mel patches of real music: the first three of Brahms, three of Vibe Ace, two of the ragtime."""
    parts = [music.waveform_to_patches(*clip(name, seconds))[:n]
             for name, seconds, n in ((BRAHMS, 9.5, 3), (VIBE_ACE, 9.5, 3), (RAGTIME, 6.5, 2))]
    return np.concatenate(parts)


def librosa_mel_loop(sr, n_fft, n_mels, fmax=None):
    """librosa 0.7's `filters.mel` as written there (a float32 array filled band by band, then scaled in place by
    2 / band width), on `music`'s Slaney conversions."""
    fmax = sr / 2 if fmax is None else fmax
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    fft_hz = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_hz = music.mel_to_hz(np.linspace(music.hz_to_mel(0.0), music.hz_to_mel(fmax), n_mels + 2))
    for i in range(n_mels):
        lower = (fft_hz - mel_hz[i]) / (mel_hz[i + 1] - mel_hz[i])
        upper = (mel_hz[i + 2] - fft_hz) / (mel_hz[i + 2] - mel_hz[i + 1])
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return weights


def resampy_loop(x, sr_orig, sr_new):
    """resampy 0.2's `resample_f` output sample by output sample (the time register accumulated by repeated
    addition, each wing read off the table with linear interpolation), then padded as librosa's `fix_length`."""
    win, per_zero = music._kaiser_best_table()
    ratio = sr_new / sr_orig
    scale = min(1.0, ratio)
    win = win * ratio if ratio < 1 else win
    delta = np.append(np.diff(win), 0.0)
    step = int(scale * per_zero)
    y = np.zeros(int(np.ceil(len(x) * ratio)))
    register = 0.0
    for t in range(int(len(x) * ratio)):
        n = int(register)
        frac = scale * (register - n)
        for f, sign, count in ((frac, -1, n + 1), (scale - frac, 1, len(x) - n - 1)):
            offset, eta = int(f * per_zero), f * per_zero - int(f * per_zero)
            taps = offset + np.arange(min(count, (len(win) - offset) // step)) * step
            samples = x[n - np.arange(len(taps))] if sign < 0 else x[n + 1 + np.arange(len(taps))]
            y[t] += np.dot(win[taps] + eta * delta[taps], samples)
        register += 1.0 / ratio
    return y


# ------------------------------------------------------------------------------------------------ frontend
def test_the_mel_filterbank_is_librosas_slaney_filterbank():
    """Slaney scale (1 kHz = 15 mel, linear below, log above), triangles peaking at the band edges, unit area in Hz;
    and the values librosa's documentation prints for `librosa.filters.mel(22050, 2048)` (0.016) and with
    fmax=8000 (0.02)."""
    assert music.hz_to_mel(1000.0) == pytest.approx(15.0) and music.hz_to_mel(200.0) == pytest.approx(3.0)
    hz = np.array([0.0, 300.0, 999.0, 1000.0, 4321.0, 8000.0])
    np.testing.assert_allclose(music.mel_to_hz(music.hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)

    fb = music.mel_filterbank()
    assert fb.shape == (96, 257) and fb.dtype == np.float32 and (fb >= 0).all() and (fb.max(axis=1) > 0).all()
    edges = music.mel_to_hz(np.linspace(0.0, music.hz_to_mel(8000.0), 98))  # 96 bands need 98 edges
    bins = np.linspace(0.0, 8000.0, 257)  # 31.25 Hz apart
    np.testing.assert_allclose(bins[fb.argmax(axis=1)], edges[1:-1], atol=31.25)  # peaks at the centre edges
    for i in (0, 40, 95):  # zero outside (edge i, edge i + 2)
        assert not fb[i, (bins <= edges[i]) | (bins >= edges[i + 2])].any()
    np.testing.assert_allclose(fb.sum(axis=1)[48:] * 31.25, 1.0, rtol=0.05)  # wide bands integrate to ~1
    for sr, n_fft, n_mels, fmax in ((16000, 512, 96, None), (22050, 2048, 128, None), (16000, 512, 40, 7000.0)):
        np.testing.assert_array_equal(music.mel_filterbank(sr, n_fft, n_mels, fmax=fmax),
                                      librosa_mel_loop(sr, n_fft, n_mels, fmax))
    assert music.mel_filterbank(22050, 2048, 128)[0, 1] == pytest.approx(0.016, abs=5e-4)
    assert music.mel_filterbank(22050, 2048, 128, fmax=8000)[0, 1] == pytest.approx(0.02, abs=5e-3)


@pytest.mark.parametrize("sr", [22050, 44100, 8000])
def test_resampling_is_resampys_kaiser_best(sr):
    """The polyphase form equals resampy's sample-by-sample loop, boundaries and float time register included."""
    x = np.random.default_rng(sr).normal(size=sr // 5).astype(np.float32)
    np.testing.assert_allclose(music.resample(x, sr, 16000), resampy_loop(x.astype(np.float64), sr, 16000), atol=2e-7)


def test_resampling_keeps_the_passband_and_removes_what_the_new_rate_cannot_hold():
    """22.05 -> 16 kHz (resampy kaiser_best, librosa's default): ceil(n * 16000 / 22050) samples; a 440 Hz tone
    comes out as the same tone, a 9 kHz tone (above the new Nyquist) is removed."""
    sr, n = 22050, 22050
    t = np.arange(n) / sr
    y = music.resample(np.sin(2 * np.pi * 440 * t), sr, 16000)
    assert y.shape == (int(np.ceil(n * 16000 / sr)),) and y.dtype == np.float32
    ideal = np.sin(2 * np.pi * 440 * np.arange(len(y)) / 16000)
    assert np.abs(y - ideal)[500:-500].max() < 2e-3
    alias = music.resample(np.sin(2 * np.pi * 9000 * t), sr, 16000)
    assert np.sqrt(np.mean(alias[500:-500] ** 2)) < 1e-3
    np.testing.assert_array_equal(music.resample(y, 16000, 16000), y)
    with pytest.raises(ConfigError, match="integer sample rates"):
        music.resample(y, 22050.5, 16000)


def test_the_spectrogram_is_librosas_centred_stft():
    """Frames centred on every 256th sample (reflect-padded by 256), periodic Hann 512, power, mel, log: the same
    as tf.signal.stft on the padded signal."""
    x = np.random.default_rng(2).normal(scale=0.05, size=20000)
    spec = tf.signal.stft(np.pad(x, 256, mode="reflect").astype(np.float32), 512, 256, 512,
                          window_fn=tf.signal.hann_window)  # periodic Hann
    expected = np.log10(10000 * (np.abs(spec.numpy()) ** 2) @ music.mel_filterbank().T + 1)
    assert expected.shape == (1 + 20000 // 256, 96)
    np.testing.assert_allclose(music.log_mel(x, float16=False), expected, atol=1e-4)


def test_log_mel_does_the_extractors_float16_arithmetic_without_its_overflow():
    """float16=True gives float16 values (the extractor's arithmetic) within float16 rounding of the float32
    computation; a tone loud enough to overflow 10000 x in float16 (the extractor: inf) stays finite."""
    t = np.arange(3 * 16000) / 16000
    quiet = 0.01 * np.sin(2 * np.pi * 440 * t) + 0.001 * np.sin(2 * np.pi * 3000 * t)
    loud = 0.9 * np.sin(2 * np.pi * 110 * t)
    for x in (quiet, loud):
        half, full = music.log_mel(x), music.log_mel(x, float16=False)
        assert half.shape == full.shape == (1 + len(x) // 256, 96)
        np.testing.assert_array_equal(half, half.astype(np.float16).astype(np.float32))
        assert np.isfinite(half).all()
        np.testing.assert_allclose(half, full, atol=5e-3)
    assert music.log_mel(loud, float16=False).max() > np.log10(65504 + 1)  # where float16 would overflow


def test_patches_are_cut_as_the_extractor_cuts_them():
    """10 s at 16 kHz = 626 frames -> 3 patches of 187 (the tail dropped); hop 93 -> 5; under 3 s raises unless
    pad_short; any rate is resampled (22.05 kHz gives the same frames count)."""
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal(160000).astype(np.float32)
    mel = music.log_mel(x)
    p = music.waveform_to_patches(x)
    assert mel.shape == (626, 96) and p.shape == (3, 187, 96)
    np.testing.assert_array_equal(p[2], mel[374:561])
    assert music.waveform_to_patches(x, hop_frames=93).shape == (5, 187, 96)
    with pytest.raises(DataError, match="pad_short"):
        music.waveform_to_patches(x[:32000])
    short = music.waveform_to_patches(x[:32000], pad_short=True)
    assert short.shape == (1, 187, 96)
    np.testing.assert_array_equal(short[0, 126:], short[0, :61])  # 126 frames, repeated
    assert music.waveform_to_patches(music.resample(x, 16000, 22050), 22050).shape == (3, 187, 96)
    with pytest.raises(ConfigError, match="1-D"):
        music.log_mel(np.zeros((100, 2)))


# ------------------------------------------------------------------------------------------ without weights
def test_the_network_has_musicnns_shapes_and_parameter_count():
    """Blocks and output widths of build_musicnn(1.6, 64, 200); 792,079 parameters (the checkpoint's model
    variables); any number of frames runs; the constructor round-trips through a .keras file."""
    keras.utils.set_random_seed(0)
    enc = music.MusicnnEncoder()
    enc.build((None, 187, 96))
    assert enc.block_names == ["frontend", "midend_1", "midend_2", "midend_3"]
    assert enc.count_params() == 792079
    x = np.random.default_rng(0).normal(size=(2, 100, 96)).astype(np.float32)
    out = enc(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "max_pool": (2, 753), "mean_pool": (2, 753), "pooled": (2, 1506), "penultimate": (2, 200),
        "logits": (2, 50), "taggram": (2, 50)}
    np.testing.assert_allclose(np.asarray(out["pooled"])[:, 0::2], np.asarray(out["max_pool"]), atol=0)
    feats = enc.features(x)
    assert {k: tuple(v.shape[1:]) for k, v in feats.items() if k.startswith(("t", "c")) and k != "taggram"} == {
        "timbral": (100, 408), "temporal": (100, 153), "cnn1": (100, 64), "cnn2": (100, 64), "cnn3": (100, 64)}
    np.testing.assert_allclose(np.asarray(enc(x[..., None])["taggram"]), np.asarray(out["taggram"]), atol=1e-6)
    with pytest.raises(ConfigError, match="unknown"):
        music.MusicnnEncoder.from_preset("GTZAN_musicnn")
    with pytest.raises(ConfigError, match="VGG"):
        music.MusicnnEncoder.from_preset("MTT_vgg")


def test_a_saved_encoder_loads_back(tmp_path):
    keras.utils.set_random_seed(1)
    enc = music.MusicnnEncoder(tags=music.MTT_TAGS)
    enc.build((None, 187, 96))
    x = np.random.default_rng(1).normal(size=(1, 187, 96)).astype(np.float32)
    enc.save(tmp_path / "musicnn.keras")
    back = keras.saving.load_model(tmp_path / "musicnn.keras")
    assert back.tags == list(music.MTT_TAGS) and back.block_names == enc.block_names
    np.testing.assert_allclose(np.asarray(back(x)["taggram"]), np.asarray(enc(x)["taggram"]), atol=1e-6)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    tf.train.Checkpoint(v=tf.Variable([1.0])).write(str(tmp_path / "other"))
    enc = music.MusicnnEncoder()
    enc.build()
    with pytest.raises(fetch_mod.WeightsError, match="no variable conv2d/kernel"):
        music.load_tf1_checkpoint(enc, str(tmp_path / "other"))


# ------------------------------------------------------------------------------------------ real weights
@pytest.mark.parametrize("preset", music.PRESETS)
def test_matches_the_checkpoints_tf1_graph_on_real_music(encoders, patches, weights_cache, preset):
    """Keras vs the authors' TF1 graph on the same 8 patches: taggram and penultimate within 1e-5, the pooled and
    block features within 1e-5 relative (max_pool reaches ~90)."""
    enc = encoders[preset]
    ref = tf1_outputs(music.checkpoint_prefix(preset, weights_cache), patches)
    out = enc.features(patches)
    np.testing.assert_allclose(np.asarray(out["taggram"]), ref["taggram"], atol=1e-5)
    np.testing.assert_allclose(np.asarray(out["penultimate"]), ref["penultimate"], atol=1e-5)
    for key in ("max_pool", "mean_pool"):
        np.testing.assert_allclose(np.asarray(out[key]), ref[key][..., 0], rtol=1e-5, atol=1e-4)
    front = np.concatenate([np.asarray(out["timbral"]), np.asarray(out["temporal"])], axis=-1)
    np.testing.assert_allclose(front, ref["frontend"], rtol=1e-5, atol=1e-4)
    mid = np.asarray(enc.forward(patches))
    np.testing.assert_allclose(mid, ref["midend"][..., 0], rtol=1e-5, atol=1e-4)
    assert enc.tags == list(music.TAGS[preset[:3]])


def test_real_music_gets_sensible_tags(encoders):
    """MagnaTagATune tags: the Brahms string orchestra -> classical and strings, the solo piano ragtime -> piano;
    Million Song Dataset tags: a jazz trumpet loop and a jazz-sampler tune -> jazz (top 5 of the mean taggram)."""
    mtt, msd = encoders["MTT_musicnn"], encoders["MSD_musicnn"]
    (x_brahms, sr), (x_ragtime, sr_ragtime) = clip(BRAHMS, 20), clip(RAGTIME, 20)
    assert sr == sr_ragtime
    brahms, ragtime = mtt.tag_clips([x_brahms, x_ragtime], sr=sr, k=5)
    assert {"classical", "strings"} <= {t for t, _ in brahms}, brahms
    assert "piano" in [t for t, _ in ragtime], ragtime
    for name in (TRUMPET, VIBE_ACE):
        x, sr = clip(name, 20)
        tags = [t for t, _ in msd.tag_clips([x], sr=sr, k=5)[0]]
        assert "jazz" in tags, (name, tags)


def test_encode_clips_averages_over_patches(encoders, tmp_path):
    """A path and its waveform give the same per-clip means, the mean of the per-patch outputs."""
    enc = encoders["MTT_musicnn"]
    x, sr = clip(TRUMPET)
    out = enc.encode_clips([MUSIC / TRUMPET, x], sr=sr)
    assert out["patches"].tolist() == [1, 1] and out["taggram"].shape == (2, 50)
    assert out["penultimate"].shape == (2, 200) and out["max_pool"].shape == (2, 753)
    np.testing.assert_allclose(out["taggram"][0], out["taggram"][1], atol=1e-6)
    p = music.waveform_to_patches(x, sr)
    np.testing.assert_allclose(out["taggram"][0], np.asarray(enc(p)["taggram"]).mean(0), atol=1e-5)
    with pytest.raises(DataError, match="not found"):
        enc.encode_clips([tmp_path / "missing.ogg"])


def test_set_trainable_trains_the_top_block_and_the_back_end(encoders, patches):
    """last_n_blocks=1: exactly midend_3 and the back-end are trainable, and a gradient step changes exactly those
    (and the moving statistics of their BatchNorms only); None freezes all, and a frozen encoder is deterministic
    even when called with training=True (BatchNorm in inference mode, dropout off)."""
    enc = encoders["MTT_musicnn"]
    heads = [enc.pooled_bn, enc.penultimate_dense, enc.penultimate_bn, enc.classifier]
    saved = enc.get_weights()
    try:
        set_trainable(enc, None)
        assert not enc.trainable_weights
        x = patches[:2]
        np.testing.assert_allclose(np.asarray(enc(x, training=True)["taggram"]),
                                   np.asarray(enc(x, training=False)["taggram"]), atol=1e-6)

        set_trainable(enc, 1)
        top = {id(v) for layer in [enc.blocks[-1], *heads] for v in layer.trainable_weights}
        assert {id(v) for v in enc.trainable_weights} == top and len(top) == 12
        before = {id(v): np.array(v) for v in enc.weights}
        y = np.zeros((2, 50), np.float32)
        with tf.GradientTape() as tape:
            loss = keras.losses.binary_crossentropy(y, enc(x, training=True)["taggram"])
        grads = tape.gradient(loss, enc.trainable_weights)
        keras.optimizers.SGD(0.1).apply_gradients(zip(grads, enc.trainable_weights, strict=True))
        changed = {id(v) for v in enc.weights if not np.array_equal(np.array(v), before[id(v)])}
        assert changed & {id(v) for v in enc.trainable_weights} == top
        frozen = {id(v) for block in enc.blocks[:-1] for v in block.weights}
        assert not changed & frozen  # frozen blocks: weights and BatchNorm statistics untouched
    finally:
        enc.set_weights(saved)
        set_trainable(enc, None)


def test_an_adapter_between_blocks_starts_as_the_identity(encoders, patches):
    """A zero-initialised BottleneckAdapter after any block leaves every output unchanged; a non-zero one changes
    them; forward(stop=...) returns the dense feature stack of that block."""
    enc = encoders["MSD_musicnn"]
    x = patches[:2]
    base = np.asarray(enc(x)["taggram"])
    assert tuple(enc.forward(x, stop="frontend").shape) == (2, 187, 561)
    assert tuple(enc.forward(x, stop="midend_1").shape) == (2, 187, 625)
    for block, dim in (("frontend", 561), ("midend_2", 689)):
        adapter = BottleneckAdapter(16)
        h = enc.heads(enc.forward(x, adapters={block: adapter}))
        np.testing.assert_allclose(np.asarray(h["taggram"]), base, atol=1e-6)
        assert adapter.up.kernel.shape == (16, dim)
    adapter.up.kernel.assign(np.full((16, 689), 0.05, np.float32))
    moved = np.asarray(enc.heads(enc.forward(x, adapters={"midend_2": adapter}))["taggram"])
    assert np.abs(moved - base).max() > 1e-3
    with pytest.raises(ConfigError, match="unknown blocks"):
        enc.forward(x, adapters={"backend": adapter})
