#!/usr/bin/env python
"""Throughput and memory of the audio/video pipelines, and the env_sounds CNN.

    python benchmark/media_benchmark.py [--data ../shared/data] [--cnn-seeds 0 1 2]

Each phase runs in its own process so its peak RSS is its own:
- wav:   env_sounds (100 x 5 s WAV, 16 kHz) -> decode + VGGish log-mel through `audio_dataset`
- ogg:   music_examples (14 OGG/Vorbis, 44.1/48 kHz) -> decode + resample to 16 kHz + log-mel
- video: every clip of av_clips + video_clips -> decode all frames + resize (shorter side 224)
- video_fps: the same clips sampled at 4 fps, resize 128 + centre crop 112
- cnn:   the small log-mel CNN on env_sounds (train takes 0-7, test takes 8-9), per seed
Appends the pipeline rows to `benchmark/results/runs/media.csv` and one row per CNN seed to
`runs/media_cnn.csv`, then regenerates `benchmark/results/media.md` (`benchmark/tables.py`: this run's rows,
mean ± sample std over its seeds; earlier runs stay in the CSVs).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase(name, data, seed):
    data = Path(data)
    if name in ("wav", "ogg"):
        import numpy as np

        from fuxi_like.data.media_datasets import audio_dataset

        if name == "wav":
            files = sorted((data / "env_sounds").glob("*.wav"))
        else:
            files = sorted((data / "music_examples").glob("*.ogg"))
        import soundfile as sf

        seconds = sum(sf.info(str(f)).duration for f in files)
        items = [(str(f), 0) for f in files]
        longest = max(sf.info(str(f)).duration for f in files)
        clip = 5.0 if name == "wav" else float(np.ceil(longest))
        # warm-up on 2 files (graph tracing), then time a full pass
        list(audio_dataset(items[:2], "vggish", clip, batch_size=8))
        t0 = time.time()
        n = sum(int(y.shape[0]) for _, y in audio_dataset(items, "vggish", clip, batch_size=8))
        dt = time.time() - t0
        return {"clips": n, "audio_seconds": round(seconds, 1), "wall_s": round(dt, 2),
                "clips_per_s": round(n / dt, 2), "audio_s_per_s": round(seconds / dt, 1), "peak_rss_mb": round(peak_rss_mb())}
    if name in ("video", "video_fps"):
        from fuxi_like.data.video import decode_video

        files = [f for f in sorted((data / "av_clips").iterdir()) if f.suffix in (".mp4", ".webm", ".mkv", ".gif")]
        files += sorted((data / "video_clips").glob("*.mp4"))
        t0 = time.time()
        frames = 0
        for f in files:
            if name == "video":
                v, _ = decode_video(f, resize=224)
            else:
                v, _ = decode_video(f, fps=4, resize=128, crop=112)
            frames += len(v)
        dt = time.time() - t0
        return {"clips": len(files), "frames": frames, "wall_s": round(dt, 2), "frames_per_s": round(frames / dt, 1),
                "peak_rss_mb": round(peak_rss_mb())}
    if name == "cnn":
        from fuxi_like.models.audio_cnn import train_env_sounds

        t0 = time.time()
        acc, n_train, n_test = train_env_sounds(str(data / "env_sounds"), epochs=30, seed=seed)
        return {"seed": seed, "accuracy": acc, "n_train": n_train, "n_test": n_test, "wall_s": round(time.time() - t0, 1),
                "peak_rss_mb": round(peak_rss_mb())}
    raise ValueError(name)


def csv_rows(res, cnn, source):
    """(media.csv rows, media_cnn.csv rows) of one run: the cells as the table shows them."""
    pipes = [
        ("WAV decode + VGGish log-mel (`audio_dataset`)", f"env_sounds: {res['wav']['clips']} x 5 s, 16 kHz",
         f"{res['wav']['audio_seconds']} s of audio",
         f"**{res['wav']['clips_per_s']} clips/s** ({res['wav']['audio_s_per_s']} audio-s/s)", res["wav"]),
        ("OGG decode + resample to 16 kHz + log-mel", f"music_examples: {res['ogg']['clips']} clips, 44.1/48 kHz",
         f"{res['ogg']['audio_seconds']} s of audio",
         f"**{res['ogg']['clips_per_s']} clips/s** ({res['ogg']['audio_s_per_s']} audio-s/s)", res["ogg"]),
        ("video decode, every frame, resize (short side 224)", f"av_clips + video_clips: {res['video']['clips']} clips",
         f"{res['video']['frames']} frames", f"**{res['video']['frames_per_s']} frames/s**", res["video"]),
        ("video decode sampled at 4 fps, resize 128 + crop 112", "same", f"{res['video_fps']['frames']} frames out",
         f"**{res['video_fps']['frames_per_s']} frames/s** out", res["video_fps"]),
    ]
    media = [{"section": 0, "pipeline": p, "input": i, "work": w, "throughput": t, "wall": f"{r['wall_s']} s",
              "peak RSS": f"{r['peak_rss_mb']} MB", "source": source} for p, i, w, t, r in pipes]
    seeds = [{"seed": c["seed"], "test accuracy": c["accuracy"], "wall": f"{c['wall_s']} s", "source": source}
             for c in cnn]
    return media, seeds


def write_results(media, seeds, results_dir=None):
    """Append csv_rows' rows to `<results_dir>/runs/media.csv` and `media_cnn.csv` and regenerate `media.md`
    (results_dir: default benchmark/results). Returns the table's path."""
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    results_dir = Path(results_dir or tables.RESULTS)
    for name, rows in (("media.csv", media), ("media_cnn.csv", seeds)):
        if rows:  # --cnn-seeds with no seed: the table keeps the last run's CNN rows
            tables.append_rows(results_dir / "runs" / name, rows)
    tables.generate(["media.md"], results_dir)
    return results_dir / "media.md"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--cnn-seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--results-dir", default=None,
                   help="a copy of benchmark/results/ to append to and regenerate (default: benchmark/results/)")
    args = p.parse_args()
    if args.phase:
        print("RESULT " + json.dumps(phase(args.phase, args.data, args.seed)))
        return

    def run(name, seed=0):
        r = subprocess.run([sys.executable, __file__, "--phase", name, "--seed", str(seed), "--data", args.data],
                           capture_output=True, text=True)
        line = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
        if r.returncode or not line:
            raise RuntimeError(f"phase {name} failed:\n{r.stderr[-3000:]}")
        res = json.loads(line[0][7:])
        print(name, res, flush=True)
        return res

    res = {n: run(n) for n in ("wav", "ogg", "video", "video_fps")}
    cnn = [run("cnn", s) for s in args.cnn_seeds]
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    out = write_results(*csv_rows(res, cnn, tables.run_source(__file__)), args.results_dir)
    print(out.read_text())
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores (prose of benchmark/table_specs/media.md)")


if __name__ == "__main__":
    main()
