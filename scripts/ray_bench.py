"""Ray benchmark (not a test): gimm-interpolate on 1 and 2 Ray workers against one process, and a bounded load
test of the Serve service on 127.0.0.1. Writes one JSON document.

    python scripts/ray_bench.py --out benchmarks/results/ray-cpu-r-128.json

Every run uses GIMM-VFI-R with seeded random weights on CPU (speed only: the frames are meaningless) and
splits the machine's cores evenly: one process gets all of them as torch threads, each of N workers 1/N.
Every answer of the service is compared with the same model run in this process. Needs Ray (gimm-trt[ray]).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import torch

from gimm_trt.distributed import WorkerPool, WorkerSpec, interpolate_videos, ray_session
from gimm_trt.runtime import Interpolator
from gimm_trt.runtime.video import ImageWriter, to_uint8
from gimm_trt.serve import ServeOptions, build_app, decode_response, encode_request, start


def _frames(n: int, size: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    base = torch.from_numpy(rng.random((n, 3, 8, 8), dtype=np.float32))
    up = torch.nn.functional.interpolate(base, size=(size, size), mode="bicubic").clamp(0, 1)
    return [(f * 255).round().to(torch.uint8).permute(1, 2, 0).numpy() for f in up]


def _clip(folder: Path, n: int, size: int, seed: int) -> Path:
    writer = ImageWriter(folder)
    for frame in _frames(n, size, seed):
        writer.write(frame)
    return folder


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _batch(root: Path, inputs: list, factor: int, cores: int, variant: str) -> dict:
    """Wall time of the inputs in one process (all cores) and on 1 and 2 workers (cores shared evenly)."""
    frames = sum(len(list(Path(i).iterdir())) - 1 for i in inputs) * factor + len(inputs)
    out = {}
    torch.set_num_threads(cores)
    spec = WorkerSpec(variant=variant, random_weights=True, device="cpu", threads=cores)
    out["one_process_s"] = _timed(lambda: interpolate_videos(inputs, root / "p", factor=factor, spec=spec))
    for workers in (1, 2):
        spec = WorkerSpec(variant=variant, random_weights=True, device="cpu", threads=max(1, cores // workers))
        with WorkerPool(spec, workers, cpus_per_worker=cores / workers, start_timeout=600) as pool:
            # model building is left out: a pool is started once and serves every run
            out[f"workers_{workers}_s"] = _timed(
                functools.partial(
                    interpolate_videos, inputs, root / f"w{workers}", factor=factor, pool=pool, timeout=3600
                )
            )
    out["frames"] = frames
    out["speedup_2_over_1_workers"] = out["workers_1_s"] / out["workers_2_s"]
    out["speedup_2_workers_over_one_process"] = out["one_process_s"] / out["workers_2_s"]
    return out


def _load_test(variant: str, size: int, cores: int, clients: int, per_client: int) -> dict:
    """``clients`` threads each sending ``per_client`` requests one after another; every answer checked."""
    pairs = [_frames(2, size, seed) for seed in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = Interpolator.from_checkpoint(variant=variant, random_weights=True)
    torch.set_num_threads(cores)
    expected = [np.stack([to_uint8(f) for f in local.interpolate(a, b, [0.5])]) for a, b in pairs]
    spec = WorkerSpec(variant=variant, random_weights=True, device="cpu", threads=cores)
    from ray import serve

    try:
        url = start(build_app(spec, ServeOptions(max_batch_size=clients), cpus_per_replica=1), port=_free_port())
        latencies, wrong, lock = [], [], threading.Lock()

        def client(c):
            for r in range(per_client):
                k = (c + r) % len(pairs)
                body = encode_request(*pairs[k], [0.5])
                t = time.perf_counter()
                with urllib.request.urlopen(urllib.request.Request(url + "interpolate", data=body), timeout=600) as rsp:
                    answer = decode_response(rsp.read())
                with lock:
                    latencies.append(time.perf_counter() - t)
                    if not np.array_equal(answer, expected[k]):
                        wrong.append((c, r))

        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=3600)
        wall = time.perf_counter() - t0
        with urllib.request.urlopen(url + "health", timeout=60) as rsp:
            health = json.loads(rsp.read())
    finally:
        serve.shutdown()
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {
        "clients": clients,
        "requests": len(latencies),
        "all_correct": not wrong and len(latencies) == clients * per_client,
        "p50_s": q[49],
        "p99_s": q[98],
        "wall_s": wall,
        "requests_per_s": len(latencies) / wall,
        "largest_batch": health["largest_batch"],
        "batches": health["batches"],
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/ray-cpu-r-128.json"), help="where the JSON document goes"
    )
    parser.add_argument("--variant", default="R", help="GIMM-VFI variant (random weights)")
    parser.add_argument("--size", type=int, default=128, help="square frames of this side")
    parser.add_argument("--frames", type=int, default=5, help="frames of the long video")
    parser.add_argument("--videos", type=int, default=4, help="number of short videos (3 frames each)")
    parser.add_argument("--factor", type=int, default=2, help="frame-rate factor")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients of the service")
    parser.add_argument("--per-client", type=int, default=2, help="requests each client sends")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    doc = {
        "schema": "gimm-ray-bench/1",
        "variant": args.variant,
        "weights": "random (speed only)",
        "size": f"{args.size}x{args.size}",
        "factor": args.factor,
        "cores": cores,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "load_average_before": os.getloadavg(),
    }
    root = Path(tempfile.mkdtemp(prefix="gimm-ray-bench-"))
    try:
        long_clip = [_clip(root / "long", args.frames, args.size, 0)]
        short = [_clip(root / f"short{i}", 3, args.size, 10 + i) for i in range(args.videos)]
        with ray_session(num_cpus=cores) as ray:
            doc["ray"] = ray.__version__
            doc["same_video"] = _batch(root / "a", long_clip, args.factor, cores, args.variant)
            doc["many_videos"] = {"videos": args.videos, **_batch(root / "b", short, args.factor, cores, args.variant)}
            doc["serve"] = _load_test(args.variant, args.size, cores, args.clients, args.per_client)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    doc["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
