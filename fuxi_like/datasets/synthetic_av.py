"""Seeded synthetic audio-visual clips with known events, for learning tests.

Each clip has `n_segments` one-second segments. One event class c (of
`n_classes`) is on during a contiguous run of seconds: then a tone at the class
frequency, pulsed at the class rhythm, sounds, and a shape of the class colour
moves across the frame. Distractors: background noise, a grey shape moving all
clip long, and an off-class tone in some background seconds. Labels are per
second: c while the event is on, `n_classes` (background) otherwise.

`write_clip` encodes a clip to an mp4 (MPEG-4 video + AAC audio) with PyAV, so
the decoding pipeline can be tested end to end on files with known content.
"""

from pathlib import Path

import numpy as np
import pandas as pd

BASE_FREQS = (330.0, 660.0, 1320.0, 2640.0, 495.0, 990.0, 1980.0, 3960.0)
RHYTHMS = (0.0, 4.0, 2.0, 8.0, 0.0, 4.0, 2.0, 8.0)  # pulses per second, 0 = steady
COLOURS = ((255, 40, 40), (40, 255, 40), (60, 60, 255), (255, 255, 40),
           (255, 40, 255), (40, 255, 255), (255, 140, 0), (140, 0, 255))


def make_clip(seed, n_classes=4, n_segments=10, sample_rate=16000, fps=8, size=32, min_event=2,
              noise=0.02, distractor_tone=True):
    if not 1 <= n_classes <= len(BASE_FREQS):
        raise ValueError(f"n_classes must be in 1..{len(BASE_FREQS)}")
    rng = np.random.default_rng(seed)
    c = int(rng.integers(0, n_classes))
    length = int(rng.integers(min_event, n_segments + 1))
    on = int(rng.integers(0, n_segments - length + 1))
    labels = np.full(n_segments, n_classes, dtype=np.int32)
    labels[on:on + length] = c

    # ---------------- audio
    n = n_segments * sample_rate
    t = np.arange(n) / sample_rate
    audio = noise * rng.normal(size=n)
    env = np.zeros(n)
    env[on * sample_rate:(on + length) * sample_rate] = 1.0
    if RHYTHMS[c]:
        env *= (np.sin(2 * np.pi * RHYTHMS[c] * t) > 0)
    audio += 0.4 * env * np.sin(2 * np.pi * BASE_FREQS[c] * t + rng.uniform(0, 2 * np.pi))
    if distractor_tone:
        off = [s for s in range(n_segments) if labels[s] == n_classes]
        if off:
            s = int(rng.choice(off))
            seg = slice(s * sample_rate, (s + 1) * sample_rate)
            audio[seg] += 0.2 * np.sin(2 * np.pi * 220.0 * t[seg])
    audio = np.clip(audio, -1, 1).astype(np.float32)

    # ---------------- video
    n_frames = n_segments * fps
    video = np.zeros((n_frames, size, size, 3), dtype=np.uint8)
    r = max(2, size // 8)
    gy = int(rng.integers(r, size - r))
    ey = int(rng.integers(r, size - r))
    for f in range(n_frames):
        sec = f // fps
        x = int((f * 2) % (size - 2 * r)) + r
        video[f, gy - r // 2:gy + r // 2, max(0, x - r):x + r] = 128  # grey distractor bar
        if labels[sec] != n_classes:
            ex = size - 1 - x
            yy, xx = np.ogrid[:size, :size]
            disk = (yy - ey) ** 2 + (xx - ex) ** 2 <= r * r
            video[f][disk] = COLOURS[c]
    return {"audio": audio, "video": video, "labels": labels, "event_class": c, "sample_rate": sample_rate,
            "fps": fps}


def write_clip(path, clip):
    """Encode a clip to `path` (.mp4: MPEG-4 part 2 video + AAC audio)."""
    import av  # lazy: PyAV loads FFmpeg's native libraries; only media decoding needs them

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sr, fps = clip["sample_rate"], clip["fps"]
    video = clip["video"]
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    with av.open(str(tmp), "w") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height = video.shape[2], video.shape[1]
        vs.pix_fmt = "yuv420p"
        vs.options = {"qscale": "2"}
        as_ = out.add_stream("aac", rate=sr)
        as_.layout = "mono"
        for img in video:
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        audio = clip["audio"]
        step = 1024
        for i in range(0, len(audio), step):
            frame = av.AudioFrame.from_ndarray(audio[None, i:i + step].astype(np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate = sr
            frame.pts = i
            for pkt in as_.encode(frame):
                out.mux(pkt)
        for pkt in as_.encode():
            out.mux(pkt)
    tmp.replace(path)
    return str(path)


def make_dataset(out_dir, n_clips, seed=0, **clip_kwargs):
    """Write `n_clips` mp4 clips + `labels.csv` (filename, event_class, per-second labels)."""

    out = Path(out_dir)
    rows = []
    for i in range(n_clips):
        clip = make_clip(seed * 100_003 + i, **clip_kwargs)
        name = f"clip_{i:05d}.mp4"
        write_clip(out / name, clip)
        rows.append({"filename": name, "label": int(clip["event_class"]),
                     "segment_labels": " ".join(map(str, clip["labels"]))})
    pd.DataFrame(rows).to_csv(out / "labels.csv", index=False)
    return str(out)
