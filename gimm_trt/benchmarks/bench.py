"""``run(BenchConfig(...)) -> dict``: the reference and each backend x precision on the same frame pairs.

Rows run one after another, each on a fresh interpolator (the previous one is freed first, so its memory is
not counted twice): warm-up pairs (excluded), then the timed pairs. The first row is always the reference,
the model called the official way (``reference.interpolate_official_way``); the others are compared with it.
A backend or precision that is not available here is listed under ``skipped`` with the reason.
"""

import contextlib
import datetime
import functools
import gc
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from ..core.checks import check_count
from ..core.errors import GimmError, InputError
from ..core.files import check_writable
from ..core.sizes import parse_resolution, processing_size
from ..core.stages import STAGES
from ..model.spec import ModelSpec
from ..model.synthetic import synthetic_pair
from ..runtime import Interpolator
from ..runtime.backend import resolve_device
from ..runtime.registry import BACKENDS, PRECISIONS, backend_class, unavailable
from .env import environment
from .measure import Accuracy, PeakMemory, StageTimer, TimedBackend, summary, synchronize
from .official_way import interpolate_official_way

SCHEMA = "gimm-bench/1"


class Skip(Exception):
    """A row that cannot run here; the message says why (and what to install)."""


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """What to benchmark. Invalid values raise InputError naming the field.

    Args:
        model: the ``ModelSpec`` every row starts from: variant, weights (``seed`` also seeds the frame pairs),
            ``device`` (None: CUDA when available, else CPU), ``ds_scale`` (None: the official guidance for the
            resolution: 1.0 to 1080p, 0.5 2K, 0.25 4K), ``max_batch`` and ``max_memory`` (the batched rows'
            memory budget). Its backend and precision are each row's own.
        resolution: ``"4k"``, ``"2k"``, ``"1080p"``, ``"720p"`` or ``"WxH"``.
        backends, precisions: every combination is a row (or a skipped entry with the reason).
        factor: frame-rate multiplier; each pair gives ``factor - 1`` new frames.
        pairs, warmup: timed pairs, and untimed pairs run first in every row.
        accuracy_pairs: how many of the timed pairs are compared with the reference (their outputs are kept
            on disk meanwhile, not in memory, so they do not inflate the memory figures).
        onnxruntime and tensorrt rows export the model on demand (``Interpolator.from_spec``: cached in
        ``$GIMM_TRT_CACHE``) during their first warm-up pair.
    """

    model: ModelSpec = ModelSpec()
    resolution: str = "4k"
    backends: tuple = BACKENDS
    precisions: tuple = PRECISIONS
    factor: int = 8
    pairs: int = 10
    warmup: int = 2
    accuracy_pairs: int = 2

    def __post_init__(self):
        parse_resolution(self.resolution)
        if not isinstance(self.model, ModelSpec):
            raise InputError(f"model must be a gimm_trt.model.ModelSpec, got {type(self.model).__name__}")
        if self.model.export is not None:
            raise InputError("gimm-bench exports on demand per backend: it runs no --export directory")
        for name, value, known in (("backends", self.backends, BACKENDS), ("precisions", self.precisions, PRECISIONS)):
            if isinstance(value, str) or not value or any(v not in known for v in value):
                raise InputError(f"{name} must be a non-empty tuple of {', '.join(known)}; got {value!r}")
        for name, low in (("factor", 2), ("pairs", 1), ("warmup", 0), ("accuracy_pairs", 0)):
            check_count(name, getattr(self, name), low)

    @property
    def frame(self):
        """The ``Resolution``."""
        return parse_resolution(self.resolution)

    @property
    def ds(self) -> float:
        return self.frame.ds(self.model.ds_scale)

    @property
    def timesteps(self) -> list:
        return [i / self.factor for i in range(1, self.factor)]


def run(config: BenchConfig, *, log: Optional[Callable[[str], None]] = None) -> dict:
    """Benchmark ``config``; returns the ``gimm-bench/1`` document (JSON-ready)."""
    log = log or (lambda message: None)
    res, ds = config.frame, config.ds
    device = resolve_device(config.model.device)
    processing_size(res.height, res.width, ds)  # a size the model cannot run fails before any loading
    memory = PeakMemory(device)  # before any CUDA context exists: NVML's baseline must not include ours
    check_memory(res.width, res.height, config.factor, device)
    doc = _document(config, device)
    bench = _Bench(config, device, memory)
    with tempfile.TemporaryDirectory(prefix="gimm-bench-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights are said once in "weights" and "notes"
        bench.saved = Path(tmp)
        log(f"reference: torch fp32, one timestep per call, {config.warmup} warm-up + {config.pairs} pairs")
        ref = bench.reference()
        doc["rows"].append(ref)
        for backend in config.backends:
            for precision in config.precisions:
                name = f"{backend}-{precision}"
                log(f"{name}: {config.warmup} warm-up + {config.pairs} pairs")
                try:
                    doc["rows"].append(bench.batched(backend, precision, ref))
                except (Skip, GimmError) as e:  # GimmError: an on-demand export failed
                    log(f"{name}: skipped: {e}")
                    doc["skipped"].append({"name": name, "backend": backend, "precision": precision, "reason": str(e)})
                _free(device)
    if memory.source:  # known once sampled: NVML may turn out not to see this process
        doc["notes"].append(f"device memory: {memory.source}")
    return doc


def _document(config: BenchConfig, device) -> dict:
    """The document's head: the configuration as run, the environment and the notes on how to read it."""
    res = config.frame
    notes = [
        f"warm-up: {config.warmup} pair(s) per row run first and excluded from every figure",
        f"latency: {'CUDA events on the current stream' if device.type == 'cuda' else 'perf_counter'}; "
        "frames are on the device before each pair; per frame = per pair / (factor - 1)",
        "fps: new (interpolated) frames per second; the originals of a video cost nothing",
        f"accuracy: the first {min(config.accuracy_pairs, config.pairs)} pair(s) against the reference",
        "peak memory: the whole process during the timed pairs (earlier rows' models freed first; "
        "warm-up, where on-demand exports and engine builds happen, excluded)",
    ]
    if config.warmup == 0 and set(config.backends) - {"torch"}:
        notes.append(
            "no warm-up: the on-demand export (and engine build) of onnxruntime and tensorrt "
            "rows is inside their first timed pair"
        )
    if config.model.random_weights:
        notes.append("random weights: frames are not meaningful; timings and accuracy still are")
    model = asdict(config.model)
    model["options"] = None if config.model.options is None else repr(config.model.options)
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": {
            **{k: v for k, v in asdict(config).items() if k != "model"},
            **{k: v for k, v in model.items() if k not in ("backend", "precision", "export")},
            "backends": list(config.backends),
            "precisions": list(config.precisions),
            "resolution": res.name,
            "width": res.width,
            "height": res.height,
            "ds_scale": config.ds,
            "device": str(device),
            "timesteps": config.timesteps,
        },
        "environment": environment(device),
        "notes": notes,
        "rows": [],
        "skipped": [],
    }


class _Bench:
    """The rows of one run: the same seeded frame pairs for each, outputs saved for the accuracy comparison."""

    def __init__(self, config: BenchConfig, device, memory: PeakMemory):
        self.config, self.device, self.memory = config, device, memory
        self.saved = None  # a temporary folder, set by ``run``
        res = config.frame
        # made on demand, never stored: 10 pairs of 4K frames would add 2 GB to the host memory being measured
        self.pair = lambda i: synthetic_pair(res.height, res.width, seed=config.model.seed, index=i % config.pairs)

    def reference(self) -> dict:
        """The model called the official way: torch fp32, eager, one timestep per call."""
        config = self.config
        interp = _load(config, "torch", "fp32")
        timed = TimedBackend(interp.backend, StageTimer(self.device))
        call = functools.partial(interpolate_official_way, timed, timesteps=config.timesteps, ds_scale=config.ds)
        with allocation_errors(config.frame.width, config.frame.height, self.device):
            row = _row(call, timed.timer, self.pair, config, self.device, self.memory, self.saved / "reference")
        row.update(
            name="reference",
            backend="torch",
            precision="fp32",
            mode="official-way",
            weights=interp.weights,
            accuracy={"psnr_db": None, "max_abs": 0.0},
            speedup=1.0,
        )
        del interp, timed, call
        _free(self.device)
        return _ordered(row)

    def batched(self, backend: str, precision: str, ref: dict) -> dict:
        """One backend x precision, all timesteps of a pair per call (unless capped), against ``ref``."""
        config, name = self.config, f"{backend}-{precision}"
        interp = _timed(_open(config, backend, precision, self.device), StageTimer(self.device))
        call = functools.partial(interp.interpolate, timesteps=config.timesteps, ds_scale=config.ds)
        with allocation_errors(config.frame.width, config.frame.height, self.device):
            row = _row(call, interp.backend.timer, self.pair, config, self.device, self.memory, self.saved / name)
        row.update(
            name=name,
            backend=backend,
            precision=precision,
            mode="batched",
            weights=interp.weights,
            accuracy=_compare(self.saved / name, self.saved / "reference"),
            speedup=ref["latency_ms"]["pair"]["mean"] / row["latency_ms"]["pair"]["mean"],
        )
        return _ordered(row)


def frames_bytes(width: int, height: int, factor: int) -> int:
    """A lower bound of the memory one pair takes: its two float32 frames and the ``factor - 1`` new ones
    (the model's own working memory comes on top)."""
    return 3 * 4 * width * height * (factor + 1)


def available_bytes(device) -> Optional[int]:
    """Free memory where the frames live (the GPU's for CUDA, the host's otherwise); None when unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(width: int, height: int, factor: int, device) -> None:
    """InputError, before any model loads, when the frames alone of ``width`` x ``height`` exceed free memory."""
    need, free = frames_bytes(width, height, factor), available_bytes(device)
    if free is not None and need > free:
        where = "the GPU" if device.type == "cuda" else "this machine"
        raise InputError(
            f"{width}x{height} frames need over {need / 2**30:.1f} GiB for the frames alone (factor "
            f"{factor}), more than the {free / 2**30:.1f} GiB free on {where}: use a smaller --resolution"
        )


_ALLOCATION_FAILURES = ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory")


@contextlib.contextmanager
def allocation_errors(width: int, height: int, device):
    """A failed allocation as an InputError naming the size (a row that hits it is skipped with the reason)."""
    try:
        yield
    except RuntimeError as e:  # torch.cuda.OutOfMemoryError is one too
        text = str(e).lower()
        if not isinstance(e, torch.cuda.OutOfMemoryError) and not any(s in text for s in _ALLOCATION_FAILURES):
            raise
        raise InputError(
            f"out of memory on {device} at {width}x{height}: use a smaller --resolution, a smaller "
            "--factor or --ds-scale"
        ) from None


def _check_ran(doc: dict) -> None:
    """InputError when ``doc`` (``run``'s) holds no row besides the reference: every backend x precision asked
    for was skipped, so nothing was benchmarked; the message gives the first skip's reason."""
    if len(doc["rows"]) > 1 or not doc["skipped"]:
        return
    first = doc["skipped"][0]
    more = f" (and {len(doc['skipped']) - 1} more skipped)" if len(doc["skipped"]) > 1 else ""
    raise InputError(f"nothing was benchmarked: every row was skipped; {first['name']}: {first['reason']}{more}")


def estimate_memory(config: BenchConfig, *, tile: Optional[int] = None) -> dict:
    """The memory model instead of a run: one row per precision and timesteps per batch (``factor - 1``, then
    1), ``estimated_peak_mib`` with the per-stage split, for the model's device (None: CUDA when available, else
    the CPU; nothing runs, so a GPU can be planned on any machine by naming it)."""
    from .memory import estimate_peak

    spec, res = config.model, config.frame
    device = str(resolve_device(spec.device, check=False))
    batches = sorted({spec.max_batch or config.factor - 1, 1}, reverse=True)
    rows = [
        estimate_peak(spec.variant, res, ds=config.ds, precision=p, timesteps_per_batch=n, tile=tile, device=device)
        for p in config.precisions
        for n in batches
    ]
    return {
        "schema": "gimm-bench-memory/1",
        "rows": rows,
        "notes": [
            f"for {device}" + ("" if spec.device else " (no --device: CUDA when available, else the CPU)"),
            "predicted by running the torch backend's stages on fake tensors: shapes only, nothing computed",
            "one frame pair; weights, inputs and the pair's flow outputs included; kernel workspaces not",
        ],
    }


def _load(config: BenchConfig, backend: str, precision: str) -> Interpolator:
    # "batched" rows run all timesteps of a pair in one call unless a cap or a memory budget is asked for
    # (engines take at most their profile's timesteps: the interpolator caps those itself)
    spec = config.model
    unbounded = spec.max_memory is None and not backend_class(backend).batch_bound
    batched = spec.max_batch or (config.factor - 1 if unbounded else None)
    return Interpolator.from_spec(spec.replace(backend=backend, precision=precision, max_batch=batched))


def _open(config: BenchConfig, backend: str, precision: str, device) -> Interpolator:
    """The interpolator of one row, or ``Skip`` saying why it cannot run here.

    A checkpoint or device problem has already failed the reference row, so what fails here is this
    backend x precision: a missing package, a precision the backend does not offer on this device.
    """
    reason = unavailable(backend, device, precision)
    if reason:
        raise Skip(reason)
    try:
        return _load(config, backend, precision)
    except GimmError as e:
        raise Skip(str(e)) from None


def _timed(interp: Interpolator, timer: StageTimer) -> Interpolator:
    """An interpolator like ``interp`` whose backend's stage calls are timed by ``timer``."""
    timed = Interpolator(
        TimedBackend(interp.backend, timer), variant=interp.variant, weights=interp.weights, max_batch=interp.max_batch
    )
    timed.budget = interp.budget
    return timed


def _row(call, timer: StageTimer, pair, config: BenchConfig, device, memory: PeakMemory, save: Path) -> dict:
    """Warm-up, then the timed pairs; the first ``accuracy_pairs`` outputs are saved under ``save``."""
    save.mkdir()
    pair_ms, stage_ms = [], {s: [] for s in STAGES}
    for i in range(config.warmup):
        call(*(x.to(device) for x in pair(i)))
    with memory:
        for i in range(config.pairs):
            a, b = (x.to(device) for x in pair(i))
            synchronize(device)
            timer.take()  # forget warm-up spans
            with timer.span("pair"):
                out = call(a, b)
            synchronize(device)
            ms = timer.take()
            pair_ms.append(ms["pair"])
            for s in STAGES:
                stage_ms[s].append(ms.get(s, 0.0))
            if i < config.accuracy_pairs:
                torch.save(out.cpu(), save / f"{i}.pt")
            del out
    new = config.factor - 1
    return {
        "latency_ms": {"pair": summary(pair_ms), "frame": summary([ms / new for ms in pair_ms])},
        "stage_ms": {s: summary(v) for s, v in stage_ms.items()},
        "fps": 1e3 * new * len(pair_ms) / sum(pair_ms),
        "peak_device_mib": memory.device_mib,
        "peak_host_rss_mib": memory.host_mib,
    }


def _compare(rows: Path, reference: Path) -> dict:
    acc = Accuracy()
    for path in sorted(rows.glob("*.pt")):
        acc.add(torch.load(path), torch.load(reference / path.name))
        path.unlink()
    return acc.result()


def _ordered(row: dict) -> dict:
    keys = (
        "name",
        "backend",
        "precision",
        "mode",
        "latency_ms",
        "stage_ms",
        "fps",
        "speedup",
        "accuracy",
        "peak_device_mib",
        "peak_host_rss_mib",
        "weights",
    )
    return {k: row[k] for k in keys}


def _free(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def bench_to_files(
    config: BenchConfig,
    *,
    json_path=None,
    plot_path=None,
    overwrite: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> tuple:
    """``run(config)``, then its table, and the JSON and PNG written where asked: (table, [paths written]).

    Output paths are checked before the benchmark runs: an existing file without ``overwrite``, a folder, or a
    place that cannot be written is refused. Each file is written atomically: an earlier one stays whole until
    the new one replaces it. A run whose every backend x precision was skipped is an InputError (nothing written):
    a table of the reference alone would pass for a result.
    """
    from .report import format_table, write_json, write_plot

    outputs = [(path, write) for path, write in ((json_path, write_json), (plot_path, write_plot)) if path]
    for path, _ in outputs:
        if Path(path).is_dir():
            raise InputError(f"{path} is a folder: give a file name")
        if Path(path).exists() and not overwrite:
            raise InputError(f"{path} exists (use --overwrite to replace it)")
        check_writable(path)
    doc = run(config, log=log)
    _check_ran(doc)
    for path, write in outputs:
        write(doc, path)
    return format_table(doc), [path for path, _ in outputs]
