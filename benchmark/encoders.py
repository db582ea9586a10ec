#!/usr/bin/env python
"""Throughput of the pretrained encoders (fuxi_like.pretrained), each beside its reference runtime, in one run.

    python benchmark/encoders.py                     # all five, on the real data in ../shared/data
    python benchmark/encoders.py --only minilm llm   # a subset
    python benchmark/encoders.py --quick             # 1/8 of the items (a smoke run; rows marked quick)

Rows go to `benchmark/results/runs/encoders.csv`; `benchmark/results/encoders.md` is generated from them. Per encoder:
- MiniLM (all-MiniLM-L6-v2): item texts/s over the 4,385 Amazon Scientific item texts (sequence length 128,
  batch 64), Keras (keras-hub BertBackbone) vs the int8 ONNX export under onnxruntime (HF `tokenizers`, mean pooling
  in NumPy), both with tokenisation;
- MobileNetV2: images/s over the 999 fashion_products photos (JPEG decoding, centre crop 224, batch 32), Keras only
  (no other runtime of these weights exists here);
- YAMNet: clips/s over the 100 env_sounds clips (5 s, 10 patches each), Keras (batch 32 patches) vs the int8 export
  under onnxruntime (its default, fused int8 session; batch 1, as the export is fixed), both from waveforms;
- musicnn (MTT_musicnn): 3 s patches/s over the music_examples clips (batch 32), Keras vs the checkpoint's TF1 graph;
- SmolLM2-135M-Instruct: new tokens/s at batch 1 with the KV cache (128 tokens after a chat prompt, no early stop)
  vs greedy decoding without a cache (the whole sequence recomputed per token, 16 tokens).
Every timed section runs once untimed first (compilation, caches); ratio = Keras throughput / the reference's.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmark"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tables  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
ENCODERS = ("minilm", "mobilenet", "yamnet", "musicnn", "llm")


def _timed(fn, repeat=1):
    fn()  # warm-up: compilation, caches
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_minilm(frac):
    import onnxruntime as ort
    import tokenizers

    from fuxi_like.pretrained import weights_dir, weights_file
    from fuxi_like.pretrained.text import SentenceEncoder

    lines = (DATA / "amazon_scientific_text" / "Scientific.text").read_text(encoding="utf-8").splitlines()[1:]
    texts = [line.split("\t", 1)[1] for line in lines]
    texts = texts[:max(64, int(len(texts) * frac))]
    enc = SentenceEncoder.from_preset("all-minilm-l6-v2", sequence_length=128)
    keras_s, emb = _timed(lambda: enc.encode_texts(texts, batch_size=64))
    tok = tokenizers.Tokenizer.from_file(str(weights_dir("all-minilm-l6-v2") / "tokenizer.json"))
    tok.enable_truncation(128)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    session = ort.InferenceSession(str(weights_file("all-minilm-l6-v2-int8")), providers=["CPUExecutionProvider"])

    def run_ort():
        out = []
        for i in range(0, len(texts), 64):
            e = tok.encode_batch(texts[i:i + 64])
            ids = np.array([x.ids for x in e], dtype=np.int64)
            mask = np.array([x.attention_mask for x in e], dtype=np.int64)
            h = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                    "token_type_ids": np.zeros_like(ids)})[0]
            v = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        return np.concatenate(out)

    ort_s, ref = _timed(run_ort)
    cos = float(np.min(np.sum(emb * ref, axis=1)))
    n = len(texts)
    return [dict(encoder="MiniLM", runtime="keras (keras-hub BERT, fp32)", workload="Scientific item texts, len 128",
                 n=n, unit="texts", seconds=keras_s, reference="onnxruntime int8", ref_seconds=ort_s,
                 check=f"min cosine vs onnxruntime {cos:.4f}")]


def bench_mobilenet(frac):
    from fuxi_like.pretrained.image import MobileNetV2Encoder

    images = sorted((DATA / "fashion_products" / "images").glob("*.jpg"))
    images = images[:max(32, int(len(images) * frac))]
    enc = MobileNetV2Encoder.from_preset()
    s, pooled = _timed(lambda: enc.encode_images(images, batch_size=32))
    return [dict(encoder="MobileNetV2", runtime="keras (fp32)", workload="fashion_products photos -> 1280-d, crop 224",
                 n=len(images), unit="images", seconds=s, reference="", ref_seconds="",
                 check=f"pooled {pooled.shape[1]}-d")]


def bench_yamnet(frac):
    import onnxruntime as ort

    from fuxi_like.pretrained import audio

    clips = sorted((DATA / "env_sounds").glob("*.wav"))
    clips = clips[:max(10, int(len(clips) * frac))]
    enc = audio.YAMNetEncoder.from_preset()
    waves = [audio.read_wav(c)[0] for c in clips]  # 16 kHz mono
    s, out = _timed(lambda: enc.encode_clips(waves, batch_size=32))
    model = audio.read_onnx(audio._one_file(audio.resolve_preset(), audio.EXPORT_PATTERN))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    scale, zero = 0.047937885, 144  # the export's input QuantizeLinear (checked in tests/test_pretrained_audio.py)

    def run_ort():
        top = []
        for w in waves:
            patches = np.asarray(audio.waveform_to_patches(w))[..., 0]
            q = np.clip(np.round(patches / scale) + zero, 0, 255).astype(np.uint8)
            logits = [session.run(None, {name: p[None, None]})[0] for p in q]
            top.append(int(np.argmax(np.mean([np.asarray(x).reshape(-1) for x in logits], axis=0))))
        return top

    ref_s, ref_top = _timed(run_ort)
    same = float(np.mean(np.argmax(np.asarray(out["scores"]), axis=1) == np.asarray(ref_top)))
    return [dict(encoder="YAMNet", runtime="keras (fp32, dequantised weights)", workload="env_sounds 5 s clips",
                 n=len(waves), unit="clips", seconds=s, reference="onnxruntime int8 (default session)",
                 ref_seconds=ref_s, check=f"same clip top-1 as onnxruntime on {same:.0%}")]


def bench_musicnn(frac):
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    from fuxi_like.pretrained import music

    clips = sorted((DATA / "music_examples").glob("*.ogg"))
    clips = clips[:max(3, int(len(clips) * frac))]
    patches = np.concatenate([music.waveform_to_patches(*music.read_audio(c), pad_short=True) for c in clips])
    enc = music.MusicnnEncoder.from_preset("MTT_musicnn")
    s, out = _timed(lambda: np.concatenate([np.asarray(enc.predict_on_batch(patches[i:i + 32])["taggram"])
                                            for i in range(0, len(patches), 32)]))
    # the reference: the checkpoint's own TF1 graph from its .meta file (stale `_output_shapes` annotations dropped;
    # see tests/test_pretrained_music.py), in a graph-mode session
    prefix = music.checkpoint_prefix("MTT_musicnn")
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString(Path(prefix + ".meta").read_bytes())
    for node in meta.graph_def.node:
        node.attr.pop("_output_shapes", None)
    graph = tf.Graph()
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        session = tf.compat.v1.Session(graph=graph)
        saver.restore(session, prefix)
    ref_s, ref = _timed(lambda: np.concatenate([
        session.run("model/Sigmoid:0", {"model/Placeholder:0": patches[i:i + 32], "model/Placeholder_2:0": False})
        for i in range(0, len(patches), 32)]))
    session.close()
    diff = float(np.nanmax(np.abs(out - ref)))
    return [dict(encoder="musicnn (MTT)", runtime="keras (fp32)", workload="music_examples 3 s patches, batch 32",
                 n=len(patches), unit="patches", seconds=s, reference="TF1 graph of the checkpoint (Session)",
                 ref_seconds=ref_s, check=f"max |taggram diff| {diff:.1e}")]


def bench_llm(frac):
    from fuxi_like.pretrained.llm import CausalLanguageModel

    lm = CausalLanguageModel.from_preset()
    ids = lm.encode(lm.chat_prompt("Write a short story about a cat who learns to play the piano."))
    n_new = 128 if frac >= 1 else 32
    s, out = _timed(lambda: lm.generate_ids([ids], max_new_tokens=n_new, stop=False))
    n_ref = 16 if frac >= 1 else 4
    ref_s, ref = _timed(lambda: lm.greedy_uncached(ids, n_ref))
    same = out[0][:len(ref)] == ref
    return [dict(encoder="SmolLM2-135M-Instruct", runtime="keras-hub Llama3 + KV cache, XLA step, batch 1 (fp32)",
                 workload=f"{len(ids)}-token chat prompt, {n_new} new tokens", n=n_new, unit="tokens", seconds=s,
                 reference="keras, no cache (recompute per token)", ref_seconds=ref_s * n_new / n_ref,
                 check=f"first {n_ref} tokens equal uncached greedy: {same}")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", choices=ENCODERS, default=list(ENCODERS))
    ap.add_argument("--quick", action="store_true", help="1/8 of the items; rows marked quick")
    ap.add_argument("--results-dir", default=str(tables.RESULTS))
    args = ap.parse_args(argv)
    frac = 0.125 if args.quick else 1.0
    source = tables.run_source(__file__, argv)
    rows = []
    for name in args.only:
        load0 = os.getloadavg()[0]
        for r in globals()[f"bench_{name}"](frac):
            per_s = r["n"] / r["seconds"]
            ref_per_s = r["n"] / r["ref_seconds"] if r["ref_seconds"] else ""
            rows.append({**r, "source": source, "quick": args.quick, "per_second": round(per_s, 2),
                         "ref_per_second": round(ref_per_s, 2) if ref_per_s else "",
                         "ratio": round(per_s / ref_per_s, 3) if ref_per_s else "",
                         "seconds": round(r["seconds"], 3),
                         "ref_seconds": round(r["ref_seconds"], 3) if r["ref_seconds"] else "",
                         "load_avg": round(max(load0, os.getloadavg()[0]), 2), "cpus": os.cpu_count()})
            print(f"{r['encoder']}: {per_s:.1f} {r['unit']}/s"
                  + (f" vs {ref_per_s:.1f} ({r['reference']}), x{per_s / ref_per_s:.2f}" if ref_per_s else "")
                  + f"; {r['check']}", flush=True)
    tables.record("encoders.csv", rows, ["encoders.md"], results_dir=args.results_dir)


if __name__ == "__main__":
    main()
