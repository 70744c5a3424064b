"""A cheap stand-in for the model behind ``Interpolator``: tests of input checks, sinks and faults run in
milliseconds, while the division hazards of the real synthesis stage are kept. And test videos: frames that
differ, and a clip with a variable frame rate with what its interpolation must keep of its timing. And export
manifests without graphs."""

import hashlib
import json
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from gimm_trt import Interpolator
from gimm_trt.runtime import Backend


class CrossFade(Backend):
    """A backend whose synthesis is a cross-fade computed the way the real one divides: by t and by 1 - t in
    float32, so a timestep that is 0, 1 or denormal there gives NaN frames as the model does.

    ``delay`` seconds pass in each synthesis call (to interrupt a run midway); ``fail_at`` raises in that call.
    """

    name, ds_scale, device, precision = "crossfade", None, torch.device("cpu"), "fp32"

    def __init__(self, delay: float = 0.0, fail_at=None, error=RuntimeError("synthesis failed")):
        self.delay, self.fail_at, self.error, self.calls = delay, fail_at, error, 0

    def encode(self, img, ds):
        return img

    def estimate(self, enc0, enc1, ds):
        h, w = int(enc0.shape[2] * ds), int(enc0.shape[3] * ds)
        return {"flow01": torch.zeros(1, 2, h, w), "flow10": torch.zeros(1, 2, h, w)}

    def motion(self, flow01, flow10, t):
        return flow01.expand(t.shape[0], -1, -1, -1)

    def synthesis(self, img0, img1, feats, flowt, t, ds):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise self.error
        time.sleep(self.delay)
        tt = t.view(-1, 1, 1, 1).to(torch.float32)
        # the real stage scales flows by 1/t and 1/(1-t) after multiplying them by t and 1-t
        a = (img0 * tt) * (1.0 / tt)
        b = (img1 * (1.0 - tt)) * (1.0 / (1.0 - tt))
        poison = (a - a) + (b - b)  # 0, or NaN where a division overflowed: clamp would hide an inf
        return ((1.0 - tt) * a + tt * b).clamp(0.0, 1.0) + poison


def crossfade(**kwargs) -> Interpolator:
    return Interpolator(CrossFade(**kwargs), variant="R", weights="cross-fade stand-in")


def gradient_frames(n: int, height: int = 128, width: int = 128) -> list:
    """``n`` uint8 [H,W,3] frames, each different (a moving ramp)."""
    x = np.arange(width, dtype=np.int64)
    return [
        np.broadcast_to(((x * 2 + 17 * i) % 256).astype(np.uint8)[None, :, None], (height, width, 3)).copy()
        for i in range(n)
    ]


def write_vfr_clip(path, frames, times_ms, audio_ms: int):
    """A video of ``frames`` shown at ``times_ms`` (a variable frame rate: FFV1 in .mkv, 1 ms ticks, each frame
    40 ms long) with ``audio_ms`` of FLAC sound, made with PyAV."""
    import av

    with av.open(str(path), "w") as c:
        v = c.add_stream("ffv1", rate=25)  # the rate the container states; the frames keep their own times
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv444p"
        v.codec_context.time_base = Fraction(1, 1000)
        a = c.add_stream("flac", rate=16000)
        a.layout = "mono"
        for img, ms in zip(frames, times_ms):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = ms
            c.mux(v.encode(vf))
        c.mux(v.encode(None))
        mux_tone(c, a, audio_ms * 16)
    return path


def mux_tone(container, stream, samples: int) -> None:
    """``samples`` of a 440 Hz tone, 16 kHz mono s16, encoded on the audio ``stream`` and muxed."""
    import av

    tone = (np.sin(np.arange(samples) * 2 * np.pi * 440 / 16000) * 8000).astype(np.int16)[None]
    for s in range(0, samples, 1024):
        af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, s : s + 1024]), format="s16", layout="mono")
        af.sample_rate, af.pts = 16000, s
        container.mux(stream.encode(af))
    container.mux(stream.encode(None))


def shown(path) -> dict:
    """When a video's frames are shown (seconds, decoded), when its video and its sound end (the latest
    packet's pts plus duration), and its video stream's tick (seconds)."""
    import av

    with av.open(str(path)) as c:
        ends = {}
        for p in c.demux():
            if p.pts is not None:
                ends[p.stream.type] = max(ends.get(p.stream.type, 0), (p.pts + p.duration) * p.time_base)
        tick = c.streams.video[0].time_base
    with av.open(str(path)) as c:
        times = [f.time for f in c.decode(video=0)]
    return {"times": times, "video_end": ends["video"], "audio_end": ends.get("audio"), "tick": tick}


def vfr_times(times_ms, factor: int) -> list:
    """Where ``factor``-times interpolation puts the frames of a video shown at ``times_ms``: the originals at
    theirs, new frame ``k`` of a pair at ``k / factor`` of the way between its two (seconds)."""
    t = [Fraction(ms, 1000) for ms in times_ms]
    return [a + (b - a) * Fraction(k, factor) for a, b in zip(t, t[1:]) for k in range(factor)] + [t[-1]]


VFR_MS, VFR_AUDIO_MS = (0, 40, 50, 200, 210, 600), 640  # frames shown at these times; the last one 40 ms long


def assert_keeps_vfr_timing(path, factor: int) -> int:
    """Asserts that the video at ``path``, a ``factor``-times interpolation of a clip of frames shown at ``VFR_MS``
    with ``VFR_AUDIO_MS`` of sound, keeps its timing: every frame within a tick of ``vfr_times``, the sound as it
    was, and the video ending with it. Returns how many frames it shows."""
    got, want = shown(path), vfr_times(VFR_MS, factor)
    assert len(got["times"]) == len(want), (got["times"], want)
    assert all(abs(g - w) <= got["tick"] for g, w in zip(got["times"], want)), (got["times"], want)
    assert got["audio_end"] == Fraction(VFR_AUDIO_MS, 1000)  # the sound copied as it was
    assert abs(got["video_end"] - got["audio_end"]) <= got["tick"], got
    return len(got["times"])


def write_manifest(folder: Path, files: dict, variant: str = "R") -> Path:
    """``folder`` with a gimm-export/1 manifest listing ``files`` (stage -> name as written), each with its
    file's real sha256 where the name leads to a file, as a manifest made to pass the hash check would."""
    folder.mkdir(parents=True, exist_ok=True)
    stages = {}
    for stage, name in files.items():
        target = folder / name
        digest = hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else "0" * 64
        stages[stage] = {"file": name, "sha256": digest, "inputs": [], "outputs": []}
    data = {
        "schema": "gimm-export/1",
        "variant": variant,
        "precision": "fp32",
        "weights": "random weights (seed 0)",
        "ds_scale": 1.0,
        "padded_size": [128, 224],
        "processing_size": [128, 224],
        "resolution": {"name": "224x128", "width": 224, "height": 128},
        "max_timesteps": 8,
        "splat": {"form": "plugin"},
        "stages": stages,
    }
    (folder / "manifest.json").write_text(json.dumps(data))
    return folder


class FakeLibcuda:
    """``libcuda.so.1`` of a driver whose ``cuDriverGetVersion`` writes ``version`` (13090 for 13.9) through its
    pointer and returns ``status``."""

    def __init__(self, version: int, status: int = 0):
        self.version, self.status = version, status

    def cuDriverGetVersion(self, out):  # noqa: N802 (the CUDA driver API's name)
        out._obj.value = self.version
        return self.status


def fake_driver(monkeypatch, version: int, status: int = 0) -> None:
    """``ctypes.CDLL("libcuda.so.1")`` loads a ``FakeLibcuda``; every other library loads as it is."""
    import ctypes

    real = ctypes.CDLL
    monkeypatch.setattr(
        ctypes,
        "CDLL",
        lambda name, *a, **k: FakeLibcuda(version, status) if name == "libcuda.so.1" else real(name, *a, **k),
    )
