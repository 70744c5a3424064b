"""``interpolate_videos``: many inputs, long ones cut into segments, on a pool of Ray workers.

Every segment of every input goes into one queue, in order; each worker takes the next one when it is free,
so many videos run at once on the same workers. A worker that dies is restarted by Ray (it builds its
model again) and its segment is run again; parts are only ever whole files, so the output is complete and
identical. Each input's parts are joined in order as they arrive, so the disk holds only the parts that
wait for an earlier one.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from ..core.errors import GimmError, InputError
from ..core.progress import frame_bar
from ..core.sizes import processing_size
from ..runtime.pipeline import VideoResult, check_output, claim_output, interpolate_video
from . import join as joins
from . import parts
from .cluster import gpus_each, ray_session, require_ray
from .plan import Job, outputs_for, probe, segment_pairs, split
from .worker import SegmentTask, SegmentWorker, WorkerSpec

__all__ = ["WorkerPool", "interpolate_videos"]

_POLL_S = 0.25  # how often progress is read while waiting for segments


class WorkerPool:
    """``workers`` Ray actors, each holding one ``Interpolator`` built from ``spec``; Ray must be connected.

    Args:
        gpus_per_worker: None = one GPU each when the cluster has GPUs and ``spec.model.device`` is not ``"cpu"``,
            else none. Ray gives each worker its own GPU(s), so ``workers`` may not exceed the GPUs.
        cpus_per_worker: None = 1, or a share of the cluster's CPUs when it has fewer than ``workers``.
        retries: how often a worker that died is restarted, and its segment run again.
        start_timeout: seconds to wait for every worker to build its model.

    ``info`` says where each worker runs (pid, GPU ids, device, node). Use it as a context manager, or
    ``close()`` it, to free the workers.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        workers: int,
        *,
        gpus_per_worker: Optional[float] = None,
        cpus_per_worker: Optional[float] = None,
        retries: int = 3,
        start_timeout: Optional[float] = 600,
    ):
        ray = require_ray()
        if not ray.is_initialized():
            raise InputError("WorkerPool needs a Ray connection: use it inside gimm_trt.distributed.ray_session()")
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise InputError(f"workers must be an integer >= 1, got {workers!r}")
        self._ray = ray
        self.spec = spec
        gpus_per_worker = gpus_each(ray, workers, gpus_per_worker, spec.model.device, "workers")
        if cpus_per_worker is None:
            cpus_per_worker = min(1.0, ray.cluster_resources().get("CPU", 1) / workers)
        remote = ray.remote(SegmentWorker).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=retries, max_task_retries=retries
        )
        self.retries = retries
        self.actors = [remote.remote(spec) for _ in range(workers)]
        # frames written per segment, reported by the workers; started with them, so a run waits for neither
        self.counter = ray.remote(num_cpus=0)(_Progress).remote()
        self._runs = 0
        try:
            self.info = _get(
                ray,
                [a.start.remote() for a in self.actors],
                start_timeout,
                f"{workers} workers did not start within {start_timeout} s (not enough free resources?)",
            )
        except BaseException:
            self.close()
            raise

    def pids(self) -> list:
        """The workers' process ids as ``info`` last saw them (a restarted worker has a new one)."""
        return [i["pid"] for i in self.info]

    def locate(self, timeout: Optional[float] = 600) -> list:
        """Ask every worker where it runs now (restarted ones too) and update ``info``."""
        self.info = _get(
            self._ray,
            [a.start.remote() for a in self.actors],
            timeout,
            f"the workers did not answer within {timeout} s",
        )
        return self.info

    def close(self) -> None:
        for actor in [*self.actors, self.counter]:
            self._ray.kill(actor)
        self.actors = []

    def next_run(self) -> str:
        """A prefix that keeps one run's progress keys apart from an earlier run's."""
        self._runs += 1
        return f"run{self._runs}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _get(ray, refs, timeout, late: str):
    """``ray.get`` whose failures read as gimm-trt's: a worker's GimmError is raised as itself."""
    try:
        return ray.get(refs, timeout=timeout)
    except ray.exceptions.GetTimeoutError:
        raise TimeoutError(late) from None
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, GimmError):
            raise e.cause from None
        raise
    except ray.exceptions.RayActorError as e:
        raise RuntimeError(f"a worker died more often than it may be restarted: {e}") from None


class _Progress:
    """Frames written per segment, set by the workers; a retried segment starts its count again."""

    def __init__(self):
        self.done = {}

    def set(self, key: str, n: int) -> None:
        self.done[key] = n

    def total(self, run: str) -> int:
        return sum(n for key, n in self.done.items() if key.startswith(f"{run}/"))


def interpolate_videos(
    inputs,
    out_dir=None,
    *,
    factor: int = 2,
    spec: Optional[WorkerSpec] = None,
    fps=None,
    ds_scale: Optional[float] = None,
    overwrite: bool = False,
    workers: Optional[int] = None,
    ray_address: Optional[str] = None,
    pool: Optional[WorkerPool] = None,
    segment_pairs: Optional[int] = None,
    retries: int = 3,
    gpus_per_worker: Optional[float] = None,
    cpus_per_worker: Optional[float] = None,
    progress: bool = False,
    on_progress: Optional[Callable[[int, int], None]] = None,
    timeout: Optional[float] = None,
) -> list:
    """Interpolate each input at ``factor`` times its frame rate; the same frames as ``interpolate_video``.

    Args:
        inputs: video files and folders of images; an item may be an ``(input, output)`` pair.
        out_dir: where ``<name>`` of each plain input goes (a video keeps its name, a folder gives a folder of
            PNGs); outputs follow ``interpolate_video``'s rules (a video file, else a folder of PNGs).
        spec: how each worker builds its ``Interpolator`` (default ``WorkerSpec()``).
        fps, ds_scale, overwrite: as in ``interpolate_video``.
        workers: None runs the inputs one after another in this process, without Ray. N runs them on N Ray
            workers: a cluster of this machine on 127.0.0.1, or the one at ``ray_address``.
        pool: a started ``WorkerPool`` to use instead (its Ray connection and workers are left running).
        segment_pairs: frame pairs per segment (default: all pairs shared evenly by the workers, at most
            ``plan.MAX_SEGMENT_PAIRS``).
        retries, gpus_per_worker, cpus_per_worker: see ``WorkerPool``.
        progress: a progress bar on stderr; ``on_progress(frames_written, frames_expected)`` is also called.
        timeout: seconds for the whole run (None: no limit); then TimeoutError.

    Inputs and outputs must be at the same paths on every node of a cluster (a shared file system).
    Returns a ``VideoResult`` per input, in order.
    """
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 2:
        raise InputError(f"factor must be an integer >= 2, got {factor!r}")
    spec = spec or WorkerSpec()
    jobs = _jobs(outputs_for(inputs, out_dir), overwrite, ds_scale, fps)
    if pool is None and workers is None:
        return _in_process(jobs, spec, factor, fps, ds_scale, overwrite, progress)
    run = functools.partial(
        _run,
        jobs=jobs,
        factor=factor,
        fps=fps,
        ds_scale=ds_scale,
        overwrite=overwrite,
        pairs=segment_pairs,
        progress=progress,
        on_progress=on_progress,
        timeout=timeout,
    )
    with _claimed(jobs, overwrite, fps):  # the outputs are this run's before any worker starts
        if pool is not None:
            return run(pool)
        with (
            ray_session(ray_address) as _,
            WorkerPool(
                spec, workers, gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker, retries=retries
            ) as own,
        ):
            return run(own)


def _claimed(jobs: list, overwrite: bool, fps) -> contextlib.ExitStack:
    """Every job's OUTPUT held for this run alone (``claim_output``) until the stack closes: a second run writing
    one of them fails before any work."""
    with contextlib.ExitStack() as held:
        for job in jobs:
            held.enter_context(claim_output(job.output, overwrite=overwrite, source=job.source, fps=fps))
        return held.pop_all()


def _jobs(pairs: list, overwrite: bool, ds_scale, fps) -> list:
    """Every input and output checked, and every input opened and counted, before any worker starts."""
    if not pairs:
        raise InputError("no inputs")
    jobs = []
    for i, (src, out) in enumerate(pairs):
        video_out = check_output(out, overwrite=overwrite, source=src, fps=fps)
        job = probe(i, src, out, video_out=video_out)
        if ds_scale is not None:  # a size the model cannot run is said before any model loads
            processing_size(job.height, job.width, ds_scale)
        jobs.append(job)
    return jobs


def _in_process(jobs, spec, factor, fps, ds_scale, overwrite, progress) -> list:
    built = []

    def interpolator():  # one model for all inputs, built when the first one needs it
        if not built:
            built.append(spec.build())
        return built[0]

    return [
        interpolate_video(
            job.source,
            job.output,
            interpolator=interpolator,
            factor=factor,
            fps=fps,
            ds_scale=ds_scale,
            overwrite=overwrite,
            progress=progress,
        )
        for job in jobs
    ]


def _run(
    pool: WorkerPool, jobs: list, *, factor, fps, ds_scale, overwrite, pairs, progress, on_progress, timeout
) -> list:
    ray = pool._ray
    pairs = pairs or segment_pairs([j.frames for j in jobs], len(pool.actors))
    segments = {job.index: split(job.index, job.frames, pairs) for job in jobs}
    expected = sum((j.frames - 1) * factor + 1 for j in jobs)  # a video's count is an estimate
    about = pool.info[0]["describe"]
    comment = f"gimm-trt: GIMM-VFI-{about['variant']} x{factor}, {about['weights']}"
    results, staged, opened = {}, [], {}
    run = pool.next_run()
    try:
        tasks = deque()
        for job in jobs:
            staging = joins.staging_dir(job.output)
            joins.remove_staging(staging)  # what a killed run left
            staging.mkdir(parents=True)
            staged.append(staging)
            for seg in segments[job.index]:
                part = parts.part_path(staging, seg.key, job.video_out)
                tasks.append(SegmentTask(job.source, seg, factor, ds_scale, str(part), job.video_out, run))
        with frame_bar(progress, expected) as bar:
            _schedule(
                ray,
                pool,
                tasks,
                run,
                jobs,
                segments,
                opened,
                results,
                bar,
                on_progress,
                expected,
                lambda job: _open_join(job, staged[job.index], factor, fps, overwrite, comment),
                timeout,
            )
    except BaseException:
        for j in opened.values():
            j.abort()
        raise
    finally:
        for staging in staged:
            joins.remove_staging(staging)
    return [results[job.index] for job in jobs]


def _open_join(job: Job, staging: Path, factor, fps, overwrite, comment):
    if not job.video_out:
        return joins.PngJoin(job, staging, overwrite=overwrite)
    rate = joins.output_rate(job, factor, fps)
    return joins.VideoJoin(job, rate=rate, factor=factor, comment=comment, fps_given=bool(fps))


def _schedule(ray, pool, tasks, run, jobs, segments, opened, results, bar, on_progress, expected, make_join, timeout):
    """Keep every worker busy with the next segment; join each input's parts in order as they complete."""
    deadline = None if timeout is None else time.monotonic() + timeout
    idle, running = list(pool.actors), {}
    done = {job.index: {} for job in jobs}  # job -> segment index -> part
    next_part = {job.index: 0 for job in jobs}
    shown = 0
    while tasks or running:
        while idle and tasks:
            actor, task = idle.pop(0), tasks.popleft()
            running[actor.run.remote(task, pool.counter)] = (actor, task)
        ready, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
        for ref in ready:
            actor, task = running.pop(ref)
            _get(ray, ref, None, "")
            idle.append(actor)
            seg = task.segment
            done[seg.job][seg.index] = Path(task.part)
            _join_ready(jobs[seg.job], segments, done, next_part, opened, results, make_join)
        shown = _show(ray, pool.counter, run, bar, shown, on_progress, expected)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"interpolation did not finish within {timeout} s")
    _show(ray, pool.counter, run, bar, shown, on_progress, expected)


def _join_ready(job: Job, segments, done, next_part, opened, results, make_join) -> None:
    """Join the parts of ``job`` that are next in order; finish it when its last part is in."""
    ready = done[job.index]
    while next_part[job.index] in ready:
        if job.index not in opened:
            opened[job.index] = make_join(job)
        opened[job.index].add(ready.pop(next_part[job.index]))
        next_part[job.index] += 1
    if next_part[job.index] == len(segments[job.index]):
        joiner = opened.pop(job.index)
        joiner.finish()
        results[job.index] = VideoResult(
            output=Path(job.output), frames=joiner.frames, fps=joiner.fps, notes=joiner.notes
        )


def _show(ray, counter, run: str, bar, shown: int, on_progress, expected: int) -> int:
    now = ray.get(counter.total.remote(run), timeout=60)
    if now != shown:
        bar.update(now - shown)
        if on_progress:
            on_progress(now, expected)
    return now
