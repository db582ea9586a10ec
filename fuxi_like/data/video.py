"""Video decoding with PyAV: frame sampling at a target fps, resize, crops, AV segments.

- `decode_video(path, fps, resize, crop)`: frames sampled at `fps` (the frame shown
  at each time k/fps, i.e. the last frame whose timestamp is <= k/fps), scaled so
  the shorter side is `resize` (swscale inside PyAV), then cropped to `crop`
  (centre, or random with an rng). Returns uint8 [T, H, W, 3] and the timestamps.
- `av_segments(path, ...)`: per-second segments with audio and video aligned on
  the same clock (the AVE convention: 10 one-second segments per clip): video
  [S, frames_per_segment, H, W, 3], audio [S, sample_rate * segment_seconds], and a
  mask of segments the clip actually covers.
"""

from pathlib import Path

import numpy as np

from .audio import MediaError, decode_audio, decode_container_audio, open_stream, resample, to_mono


def _scaled_size(w, h, resize):
    if not resize:
        return w, h
    if w <= h:
        return int(resize), max(1, int(round(h * resize / w)))
    return max(1, int(round(w * resize / h))), int(resize)


def crop_frames(frames, crop, mode="center", rng=None):
    """Crop [T, H, W, C] to `crop` (int or (h, w)); one offset for the whole clip."""
    if not crop:
        return frames
    ch, cw = (crop, crop) if isinstance(crop, int) else crop
    _, h, w, _ = frames.shape
    if h < ch or w < cw:
        raise ValueError(f"crop {ch}x{cw} larger than frames {h}x{w}; set resize >= crop")
    if mode == "random":
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    else:
        top, left = (h - ch) // 2, (w - cw) // 2
    return frames[:, top:top + ch, left:left + cw]


def video_info(path):
    with open_stream(path, "video") as (c, v):
        dur = float(c.duration / 1e6) if c.duration else (float(v.duration * v.time_base) if v.duration else None)
        return {"width": v.codec_context.width, "height": v.codec_context.height,
                "fps": float(v.average_rate) if v.average_rate else None, "duration": dur,
                "has_audio": bool(c.streams.audio)}


def decode_video(path, fps=None, resize=None, crop=None, crop_mode="center", rng=None, start=0.0, duration=None):
    """Decode frames of `path` in [start, start + duration) sampled at `fps`.

    fps=None keeps every decoded frame. Returns (frames uint8 [T, H, W, 3], times [T]).
    """
    p = Path(path)
    end = None if duration is None else start + duration
    n_targets = None if (end is None or not fps) else int(np.ceil((end - start) * fps - 1e-9))
    frames, times = [], []
    eps = 1e-6
    with open_stream(p, "video") as (c, stream):
        stream.thread_type = "AUTO"
        size = None
        k = 0  # next target time index: start + k / fps
        last = None  # [frame, timestamp, converted image or None]

        def image(entry):
            if entry[2] is None:  # convert lazily: only frames that are emitted
                entry[2] = entry[0].reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()
            return entry[2]

        def more():
            return n_targets is None or k < n_targets

        for frame in c.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * stream.time_base)
            if size is None:
                size = _scaled_size(frame.width, frame.height, resize)
            if not fps:  # every frame in the window
                if start - eps <= t and (end is None or t < end):
                    frames.append(image([frame, t, None]))
                    times.append(t)
                continue
            # the previous frame is the one on screen for every target time before t
            while last is not None and more() and start + k / fps < t - eps:
                frames.append(image(last))
                times.append(start + k / fps)
                k += 1
            if not more():
                break
            last = [frame, t, None]
        if fps and last is not None:
            rate = float(stream.average_rate) if stream.average_rate else fps
            while more() and start + k / fps < last[1] + 1.0 / rate - eps:  # last frame lasts one period
                frames.append(image(last))
                times.append(start + k / fps)
                k += 1
    if not frames:
        raise MediaError(f"{p}: no video frames decoded in [{start}, {end}) (empty, truncated or too short)")
    out = crop_frames(np.stack(frames), crop, crop_mode, rng)
    return out, np.asarray(times, dtype=np.float64)


def av_segments(path, n_segments=10, segment_seconds=1.0, frames_per_segment=1, sample_rate=16000,
                resize=None, crop=None, start=0.0, audio_path=None):
    """Aligned per-second audio and video segments of one clip.

    Segment s covers [start + s*seg, start + (s+1)*seg). Video frames of a segment
    are sampled at `frames_per_segment / segment_seconds` fps from the segment's
    start; audio is the mono waveform resampled to `sample_rate`. Segments past the
    end of the clip are zero and marked 0 in `mask`. `audio_path` reads the audio
    from a separate file (e.g. extracted WAVs) instead of the video's own track.
    Returns dict(video, audio, mask, times).
    """
    fps = frames_per_segment / segment_seconds
    total = n_segments * segment_seconds
    frames, times = decode_video(path, fps=fps, resize=resize, crop=crop, start=start, duration=total)
    n_frames = n_segments * frames_per_segment
    covered = len(frames)
    video = np.zeros((n_frames,) + frames.shape[1:], dtype=np.uint8)
    video[:covered] = frames[:n_frames]
    if audio_path is not None:
        wav, sr = decode_audio(audio_path)
    else:
        wav, sr = decode_container_audio(path)
    wav = resample(to_mono(wav), sr, sample_rate)
    seg_len = int(round(segment_seconds * sample_rate))
    a0 = int(round(start * sample_rate))
    audio = np.zeros(n_segments * seg_len, dtype=np.float32)
    chunk = wav[a0:a0 + len(audio)]
    audio[:len(chunk)] = chunk
    mask = np.array([(s * frames_per_segment) < covered and (s * seg_len) < len(chunk)
                     for s in range(n_segments)], dtype=np.float32)
    return {"video": video.reshape((n_segments, frames_per_segment) + frames.shape[1:]),
            "audio": audio.reshape(n_segments, seg_len), "mask": mask,
            "times": np.asarray(times[:n_frames])}
