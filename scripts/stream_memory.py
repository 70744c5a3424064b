"""Host memory of ``gimm-interpolate`` over a long video: flat, or growing with the length?

Writes a synthetic clip (moving shapes, AAC audio), runs the real command on it in a subprocess and samples
that process's RSS (psutil) every ``--every`` seconds. Run once by hand, not in CI (CPU: about 10 s a pair):

    python scripts/stream_memory.py --frames 300 --size 128x128 --out benchmarks/results/cpu-stream-memory.json

Writes one JSON document (--out): RSS per tenth of the run, its slope in MiB/min after model loading, every
sample, and the environment. Needs PyAV and psutil.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_clip(path: Path, n: int, height: int, width: int, fps: int = 24) -> None:
    import av

    from gimm_trt.runtime.demo import demo_frames

    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        a = c.add_stream("aac", rate=48000)
        loop = demo_frames(n=24, height=height, width=width)
        loop += loop[-2:0:-1]  # back and forth: smooth motion of any length from 24 frames
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(loop[i % len(loop)], format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
        t = np.arange(48000 * n // fps) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for k in range(0, tone.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k : k + 1024]), format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, k
            for p in a.encode(af):
                c.mux(p)
        for stream in (v, a):
            for p in stream.encode(None):
                c.mux(p)


def summarize(samples, wall: float) -> dict:
    """RSS per tenth of the run (one sample is noise: each pair's activations come and go) and its trend.

    ``slope_mib_per_min`` is a least-squares fit after the first tenth (model loading): ~0 means flat.
    """
    t = np.array([s[0] for s in samples])
    r = np.array([s[1] for s in samples])
    tenths = []
    for k in range(10):
        m = (t >= k * wall / 10) & (t < (k + 1) * wall / 10)
        tenths.append({"mean": float(r[m].mean()), "min": float(r[m].min()), "max": float(r[m].max())})
    late = t >= wall / 10
    return {
        "start (2nd tenth, mean)": tenths[1]["mean"],
        "middle (6th tenth, mean)": tenths[5]["mean"],
        "end (last tenth, mean)": tenths[9]["mean"],
        "max": float(r.max()),
        "slope_mib_per_min": float(np.polyfit(t[late] / 60, r[late], 1)[0]),
        "by_tenth": tenths,
    }


def dumps(doc: dict) -> str:
    """Indented JSON with the (thousands of) samples on one line."""
    text = json.dumps({**doc, "samples": "@samples@"}, indent=2)
    return text.replace('"@samples@"', json.dumps(doc["samples"], separators=(",", ":"))) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300, help="frames of the synthetic clip")
    ap.add_argument("--size", default="128x224", help="HxW of the synthetic frames")
    ap.add_argument("--factor", type=int, default=2, help="gimm-interpolate's --factor")
    ap.add_argument("--every", type=float, default=2.0, help="seconds between RSS samples")
    ap.add_argument("--device", default="cpu", help="gimm-interpolate's --device")
    ap.add_argument("--out", required=True, help="where the JSON document goes")
    args = ap.parse_args()
    import av
    import psutil

    from gimm_trt.benchmarks.env import environment
    from gimm_trt.runtime.backend import resolve_device

    height, width = (int(v) for v in args.size.split("x"))
    env = environment(resolve_device(args.device))  # now: the tree may change during a long run
    with tempfile.TemporaryDirectory() as tmp:
        clip, result = Path(tmp) / "clip.mp4", Path(tmp) / "out.mp4"
        write_clip(clip, args.frames, height, width)
        cmd = [
            sys.executable,
            "-c",
            "from gimm_trt.cli import interpolate; interpolate()",
            str(clip),
            str(result),
            "--factor",
            str(args.factor),
            "--random-weights",
            "--device",
            args.device,
        ]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ps, samples = psutil.Process(proc.pid), []
        while proc.poll() is None:
            try:
                samples.append((time.perf_counter() - start, ps.memory_info().rss / 2**20))
            except psutil.NoSuchProcess:
                break
            time.sleep(args.every)
        stderr = proc.stderr.read()
        if proc.returncode != 0:
            sys.exit(f"gimm-interpolate failed ({proc.returncode}): {stderr}")
        with av.open(str(result)) as c:
            written = sum(1 for _ in c.decode(video=0))
    wall = time.perf_counter() - start
    doc = {
        "what": "RSS of gimm-interpolate (decoder -> Interpolator.stream -> encoder) over one video",
        "command": " ".join(["gimm-interpolate", "clip.mp4", "out.mp4"] + cmd[5:]),
        "input": {"frames": args.frames, "height": height, "width": width, "fps": 24, "audio": "aac"},
        "output_frames": written,
        "wall_s": wall,
        "rss_mib": summarize(samples, wall),
        "samples": [[round(t, 1), round(r, 1)] for t, r in samples],
        "environment": env,
    }
    Path(args.out).write_text(dumps(doc))
    print(json.dumps({k: doc[k] for k in ("output_frames", "wall_s", "rss_mib")}, indent=2))


if __name__ == "__main__":
    main()
