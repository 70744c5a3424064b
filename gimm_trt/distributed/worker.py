"""What one worker runs: an ``Interpolator`` built once from a picklable ``WorkerSpec``, and segments of inputs.

``SegmentWorker`` is a plain class; ``WorkerPool`` makes it a Ray actor. ``run_segment`` needs no Ray, so the
same code runs in a worker and in a test.
"""

from __future__ import annotations

import itertools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..core.errors import InputError
from ..model.spec import ModelSpec
from ..runtime.interpolator import Interpolator
from ..runtime.video import ImageFrames, open_frames, to_uint8
from . import parts
from .plan import Segment

__all__ = ["WorkerSpec", "SegmentTask", "run_segment", "SegmentWorker"]


@dataclass(frozen=True)
class WorkerSpec:
    """How each worker builds its ``Interpolator`` (sent to the workers, so only plain values).

    Attributes:
        model: the ``ModelSpec`` every worker runs (``Interpolator.from_spec``); its files (checkpoint, export)
            must be readable at the same paths on every node. Its device None means ``"cuda"`` where the worker
            was given a GPU, else ``"cpu"``: Ray shows each worker only its own GPUs.
        threads: torch CPU threads per worker (None: what Ray sets, one per CPU it reserved). CPU results
            depend on the thread count: compare runs made with the same count.
        cache_dir: ``$GIMM_TRT_CACHE`` for the workers: where on-demand exports and engines are built once
            (under a file lock) and shared; put it on storage every node sees.
    """

    model: ModelSpec = ModelSpec()
    threads: Optional[int] = None
    cache_dir: Optional[str] = None

    def __post_init__(self):
        if not isinstance(self.model, ModelSpec):
            raise InputError(f"model must be a gimm_trt.model.ModelSpec, got {type(self.model).__name__}")

    def build(self) -> Interpolator:
        """The ``Interpolator`` (in the calling process: a worker, or this one)."""
        import torch

        if self.cache_dir:
            os.environ["GIMM_TRT_CACHE"] = str(self.cache_dir)  # a worker process serves this spec only
        if self.threads:
            torch.set_num_threads(self.threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # random weights are said once, by ``describe``
            return Interpolator.from_spec(self.model)


@dataclass(frozen=True)
class SegmentTask:
    """One segment to interpolate into ``part`` (a folder of PNGs, or an .mkv when ``video``)."""

    source: str
    segment: Segment
    factor: int
    ds_scale: Optional[float]
    part: str
    video: bool
    run: str = ""  # keeps this run's progress apart from other runs on the same workers


def run_segment(interp: Interpolator, task: SegmentTask, on_frame=None) -> dict:
    """Interpolate one segment into its part; ``on_frame(n)`` after each of its ``n`` frames is written."""
    seg = task.segment
    with open_frames(task.source) as src:
        stop = None if seg.stop is None else seg.stop + 1
        if isinstance(src, ImageFrames):  # no image before the segment is decoded
            frames = src.sliced(seg.start, stop).frames() if seg.start < src.frame_count else iter(())
        else:
            frames = itertools.islice(src.frames(), seg.start, stop)  # frames before it are decoded and dropped
        out = (to_uint8(f) for f in interp.stream(frames, factor=task.factor, ds_scale=task.ds_scale))
        if not seg.first:
            out = itertools.islice(out, 1, None)  # the segment before wrote this original
        part = Path(task.part)
        if task.video:
            n = parts.write_video_part(out, part, on_frame)
        else:
            n = parts.write_png_part(out, part, seg.first_output(task.factor), on_frame)
    return {"key": seg.key, "frames": n, "pid": os.getpid()}


class SegmentWorker:
    """Holds one ``Interpolator`` (built at ``start``, or at the first segment after Ray restarted the worker)
    and runs segments one at a time, reporting frames written to a progress actor."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self._interp = None

    def _interpolator(self) -> Interpolator:
        if self._interp is None:
            self._interp = self.spec.build()
        return self._interp

    def start(self) -> dict:
        """Build the model; where this worker runs (for placement checks and logs)."""
        import ray

        interp = self._interpolator()
        return {
            "pid": os.getpid(),
            "gpus": [str(g) for g in ray.get_gpu_ids()],
            "device": str(interp.device),
            "node": ray.get_runtime_context().get_node_id(),
            "describe": describe(interp),
        }

    def run(self, task: SegmentTask, progress=None) -> dict:
        report = None
        if progress is not None:

            def report(n):
                progress.set.remote(f"{task.run}/{task.segment.key}", n)

        return run_segment(self._interpolator(), task, report)


def describe(interp: Interpolator) -> dict:
    return {"variant": interp.variant, "weights": interp.weights, "backend": interp.backend.name}
