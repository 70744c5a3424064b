"""Command line: a thin click layer over the Python API. Each command parses its options and calls one API
function (``interpolate_video``, ``benchmarks.run``, ``engines.prepare``).

Every command exits 0 on success and 2 with one line on stderr for a user mistake (a ``GimmError`` or a
usage error), never a traceback; anything else is a bug and shows its traceback.
"""

import contextlib
import functools
import signal
import sys
import threading

import click

from .core.errors import GimmError
from .core.stages import TimestepProfile
from .core.trt import DEFAULT_FAMILY, FAMILIES
from .export.exporter import PRECISIONS as EXPORT_PRECISIONS
from .model.checkpoint import VARIANTS
from .model.spec import ModelSpec
from .plugins.schema import FORMS as SPLAT_FORMS
from .runtime.registry import BACKENDS, PRECISIONS, check_spec, options_from_text, options_help
from .serve.options import ServeOptions


def user_errors(fn):
    """Turn the API's ``GimmError`` into ``error: ...`` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GimmError as e:
            click.echo(f"error: {' '.join(str(e).split())}", err=True)
            sys.exit(2)

    return wrapper


class OneLineErrors(click.Command):
    """Usage mistakes (a bad option value, a missing argument) as one ``error: ...`` line and exit status 2,
    like the API's errors; click would print the usage block first. Use as ``@click.command(cls=OneLineErrors)``.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            with _terminate_unwinds():
                return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as e:
            click.echo(f"error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        except Terminated:
            click.echo("error: terminated", err=True)
            sys.exit(128 + signal.SIGTERM)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that writers remove their partial output on the way out (the
    default action would end the process on the spot). A BaseException: ``except Exception`` never stops it."""


@contextlib.contextmanager
def _terminate_unwinds():
    """While a command runs, SIGTERM raises ``Terminated`` (as Ctrl-C raises KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _log(message: str) -> None:
    click.echo(message, err=True)


# The model option group: each model-level option is declared here once, and a command that uses the group gets
# one ``ModelSpec`` built from them (``spec=``), as black builds its ``Mode`` once in ``main()``.
_MODEL_OPTIONS = {
    "variant": (
        ("--variant",),
        dict(
            type=click.Choice(VARIANTS),
            default=None,
            help="GIMM-VFI variant: R/R-P use RAFT flow, F/F-P FlowFormer; -P = perceptual (LPIPS) weights.  "
            "[default: R-P; with --export: the export's own, which --variant must match]",
        ),
    ),
    "checkpoint": (
        ("--checkpoint",),
        dict(
            type=click.Path(),
            default=None,
            help="Official .pt or .safetensors file, ComfyUI-GIMM-VFI's GIMM file, or a folder holding the "
            "variant's files (picked by name). Default: the official file name in "
            "$GIMM_TRT_CHECKPOINTS or ./pretrained_ckpt.",
        ),
    ),
    "flow_checkpoint": (
        ("--flow-checkpoint",),
        dict(
            type=click.Path(dir_okay=False),
            default=None,
            help="Flow estimator file of a split pair (raft-things_fp32.safetensors for R/R-P, "
            "flowformer_sintel_fp32.safetensors for F/F-P); its weights replace the GIMM file's. "
            "Default: such a file beside the GIMM file, if any.",
        ),
    ),
    "random_weights": (
        ("--random-weights",),
        dict(
            is_flag=True,
            help="Seeded synthetic weights instead of a checkpoint (speed work and tests: the frames "
            "are not meaningful).",
        ),
    ),
    "seed": (
        ("--seed",),
        dict(
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Seed of --random-weights (gimm-bench: and of its frame pairs).",
        ),
    ),
    "backend": (
        ("--backend",),
        dict(
            help="Where the stages run: torch (the PyTorch model), or an exported backend (onnxruntime, "
            "tensorrt, ...), which exports the model on first use (cached) or runs --export.",
        ),
    ),
    "precision": (("--precision",), dict(help="What the stages compute in; an --export has its own.")),
    "device": (("--device",), dict(help="cpu, cuda or cuda:N.  [default: cuda if available, else cpu]")),
    "ds_scale": (
        ("--ds-scale",),
        dict(
            type=float,
            default=None,
            help="Processing scale: 1.0 up to 1080p, 0.5 for 2K, 0.25 for 4K (official guidance); "
            "0.125 for 8K. Default: 1.0 (gimm-export, gimm-bench: that guidance for --resolution), or an "
            "--export's own.",
        ),
    ),
    "export": (
        ("--export", "export"),
        dict(
            type=click.Path(file_okay=False),
            default=None,
            help="A gimm-export directory to run (its weights, precision and size are its own), with an "
            "exported --backend.",
        ),
    ),
    "max_memory": (
        ("--max-memory",),
        dict(
            default=None,
            help="Memory one frame pair may use (bytes, or e.g. 6GiB): timesteps per batch and tiles are "
            "picked to stay under it; a budget nothing fits is an error naming the smallest that works. "
            "Default: free GPU memory; one timestep per batch on a CPU.",
        ),
    ),
    "backend_option": (
        ("--backend-option", "-O", "backend_option"),
        dict(
            multiple=True,
            metavar="KEY=VALUE",
            help="An option of the backend, repeatable: " + options_help() + ". E.g. -O cuda_graph=on -O threads=4.",
        ),
    ),
}
WEIGHTS_FIELDS = ("variant", "checkpoint", "flow_checkpoint", "random_weights", "seed")
MODEL_FIELDS = WEIGHTS_FIELDS + ("backend", "precision", "device")
RUN_FIELDS = MODEL_FIELDS + ("ds_scale", "export", "max_memory", "backend_option")


def model_options(*fields, lists: bool = False, precisions: tuple = PRECISIONS):
    """The model option group for a command: the options of ``fields`` (names of ``_MODEL_OPTIONS``), parsed
    into one ``ModelSpec`` passed as ``spec=``. With ``lists``, ``--backend`` and ``--precision`` take
    comma-separated lists, passed as ``backends=`` and ``precisions=`` (the spec keeps its defaults); otherwise
    their choices are ``BACKENDS`` and ``precisions``. Put it under ``@user_errors``: a bad value is one line."""

    def choices(name: str, names: tuple, default: str):
        if lists:
            help_ = _MODEL_OPTIONS[name][1]["help"] + " Comma-separated: every backend x precision is a row; one that "
            help_ += "cannot run here is listed as skipped, with the reason."
            return dict(
                default=",".join(names), show_default=True, callback=_list_of(names), metavar="A,B,...", help=help_
            )
        return dict(type=click.Choice(names), default=default, show_default=True)

    per_field = {
        "backend": choices("backend", BACKENDS, "torch"),
        "precision": choices("precision", precisions, "fp32"),
    }

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            values = {name: kwargs.pop(name) for name in fields}
            if lists:
                kwargs["backends"], kwargs["precisions"] = values.pop("backend"), values.pop("precision")
            options = values.pop("backend_option", ())
            if options:
                values["options"] = options_from_text(values.get("backend", "torch"), options)
            kwargs["spec"] = ModelSpec(**values)
            return fn(*args, **kwargs)

        for name in reversed(fields):
            decls, attrs = _MODEL_OPTIONS[name]
            if lists and name == "backend":
                decls = (*decls, "--backends")  # gimm-bench's recorded commands say --backends
            wrapper = click.option(*decls, **{**attrs, **per_field.get(name, {})})(wrapper)
        return wrapper

    return decorate


# gimm-export builds for it, gimm-doctor checks against its parser
ENGINE_OPTION = click.option(
    "--engine",
    type=click.Choice(tuple(FAMILIES)),
    default=DEFAULT_FAMILY,
    show_default=True,
    help="Engine family: tensorrt (builds on a CUDA GPU, one engine per stage) or tensorrt-rtx (TensorRT for "
    "RTX GPUs: builds on any machine, GPU or not; the motion stage as engines around our splat kernel). "
    "gimm-doctor --export: the parser to check the graphs against (tensorrt: its table for 10.9+ and 11.x; "
    "tensorrt-rtx: the real TensorRT-RTX parser when installed).",
)


def _list_of(known: tuple):
    def parse(ctx, param, text) -> tuple:
        values = _split(text)
        unknown = [v for v in values if v not in known]
        if not values or unknown:
            raise click.BadParameter(f"choose from {', '.join(known)} (comma-separated), got {text!r}")
        return values

    return parse


def _interpolator(spec):
    """A factory of the ``Interpolator`` of ``spec``, checked now (before any input is read or model loads);
    it says on stderr what runs when it is called."""
    import warnings

    from .runtime import Interpolator

    check_spec(spec)

    def make():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # said once on stderr below instead
            interp = Interpolator.from_spec(spec)
        _log(f"GIMM-VFI-{interp.variant} on {interp.device} ({interp.backend.name}): {interp.weights}")
        return interp

    return make


def _wrote(result, random_weights: bool) -> None:
    """What ``interpolate_video`` wrote, on stderr, and its path on stdout (for scripts)."""
    for note in result.notes:
        _log(f"note: {note}")
    rate_note = f" at {float(result.fps):.6g} fps" if result.fps is not None else ""
    _log(
        f"wrote {result.frames} frames{rate_note} to {result.output}"
        + (" (random weights: not a trained model)" if random_weights else "")
    )
    click.echo(str(result.output))


@click.command(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, metavar="INPUT OUTPUT")
@click.option(
    "--factor",
    type=click.IntRange(min=2),
    default=2,
    show_default=True,
    help="Frame-rate multiplier: factor - 1 new frames between each pair.",
)
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Frame rate of an OUTPUT video. Default: the input's times FACTOR (images count as 24 fps).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT (a folder: its numbered frames).")
@click.option("--demo", is_flag=True, help="Use a built-in 3-frame clip as INPUT (then give only OUTPUT).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Run on N Ray workers (one GPU each with --device cuda): a video is cut into segments, several "
    "INPUTs run at once. Needs gimm-trt[ray].",
)
@click.option(
    "--ray-address",
    default=None,
    help="With --workers: join this Ray cluster (what `ray start --head` prints) instead of starting one "
    "on this machine, which listens on 127.0.0.1 only.",
)
@user_errors
@model_options(*RUN_FIELDS)
def interpolate(paths, factor, fps, overwrite, demo, workers, ray_address, spec):
    """Interpolate a video or a folder of frames (INPUT) into a video or a folder (OUTPUT) at FACTOR times the
    frame rate.

    \b
    INPUT:  a video file (anything FFmpeg reads) or a folder of images (natural order: 2.png before 10.png).
    OUTPUT: a video if it ends in .mp4, .mkv, .mov or .avi (H.264 yuv420p, odd sizes padded by one pixel; the
            audio is copied unchanged), else a folder of PNGs (000000.png, ...).
    Frames stream from the decoder through the model to the encoder: memory stays flat over any length.

    \b
    Examples:
        gimm-interpolate clip.mp4 clip_x8.mp4 --factor 8 --variant R-P --device cuda
        gimm-interpolate frames/ out/ --factor 2
        gimm-interpolate --demo demo.mp4 --factor 4 --random-weights
        gimm-interpolate a.mp4 b.mp4 frames/ out/ --workers 2 --device cuda
        gimm-interpolate clip.mp4 out.mp4 --export exports/R-P-fp16-4k --backend tensorrt -O cuda_graph=on
    """
    from .core.errors import InputError

    # a size the model cannot run fails before any model loads or worker starts: the default scale without an
    # export is known now (an export's own is read from its manifest)
    ds_scale = spec.ds_scale if spec.ds_scale is not None or spec.export is not None else 1.0
    if workers is not None or ray_address is not None or len(paths) > 2:
        return _interpolate_many(paths, factor, fps, ds_scale, overwrite, demo, workers, ray_address, spec)
    from .runtime.demo import demo_frames
    from .runtime.pipeline import interpolate_video
    from .runtime.video import ImageFrames

    if len(paths) != (1 if demo else 2):
        raise InputError("give INPUT and OUTPUT (each a video file or a folder of images), or --demo and OUTPUT")
    source = ImageFrames(demo_frames(), name="the demo clip") if demo else paths[0]
    result = interpolate_video(
        source,
        paths[-1],
        interpolator=_interpolator(spec),
        factor=factor,
        fps=fps,
        ds_scale=ds_scale,
        overwrite=overwrite,
        progress=True,
    )
    _wrote(result, spec.random_weights)


def _interpolate_many(paths, factor, fps, ds_scale, overwrite, demo, workers, ray_address, spec):
    """Several INPUTs into the folder OUTPUT, or any INPUT on --workers Ray workers (``interpolate_videos``):
    every worker builds its interpolator from the same ``spec``."""
    from pathlib import Path

    from .core.errors import InputError
    from .distributed import WorkerSpec, interpolate_videos
    from .runtime.video import is_video

    if demo:
        raise InputError("--demo runs in one process: drop --workers and extra paths")
    if ray_address is not None and workers is None:
        raise InputError("--ray-address needs --workers N")
    if len(paths) < 2:
        raise InputError("give INPUT... OUTPUT (each INPUT a video file or a folder of images)")
    _check_files(spec)  # before any input is read or worker starts
    *inputs, output = paths
    if len(inputs) > 1 and (Path(output).is_file() or is_video(output)):
        raise InputError(f"with several INPUTs, OUTPUT must be a folder (each result is OUTPUT/<name>), got {output}")
    items = [(inputs[0], output)] if len(inputs) == 1 else inputs
    results = interpolate_videos(
        items,
        None if len(inputs) == 1 else output,
        factor=factor,
        spec=WorkerSpec(model=spec),
        fps=fps,
        ds_scale=ds_scale,
        overwrite=overwrite,
        workers=workers,
        ray_address=ray_address,
        progress=True,
    )
    for result in results:
        _wrote(result, spec.random_weights)


def _split(text: str) -> tuple:
    return tuple(v.strip() for v in text.split(",") if v.strip())


@click.command(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--resolution", default="4k", show_default=True, help="4k, 2k, 1080p, 720p or WxH (width first).")
@click.option(
    "--factor",
    type=click.IntRange(min=2),
    default=8,
    show_default=True,
    help="Frame-rate multiplier: factor - 1 new frames per pair.",
)
@click.option("--pairs", type=click.IntRange(min=1), default=10, show_default=True, help="Timed frame pairs per row.")
@click.option(
    "--warmup", type=click.IntRange(min=0), default=2, show_default=True, help="Untimed pairs run first in every row."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the gimm-bench/1 document here.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    help="Write a PNG here: latency per stage, frames/s, memory.",
)
@click.option("--overwrite", is_flag=True, help="Replace existing --json/--plot files.")
@click.option(
    "--estimate-memory",
    is_flag=True,
    help="Predict peak memory per precision instead of running, for --device (default: cuda if available, else "
    "cpu; nothing runs, so --device cuda plans a GPU on any machine). Prints JSON.",
)
@click.option(
    "--tile",
    type=click.IntRange(min=16),
    default=None,
    help="With --estimate-memory: the synthesis tile in pixels (default untiled).",
)
@click.option(
    "--compare-tiles",
    default=None,
    metavar="TILES",
    help="Instead of the backends: time the torch motion and synthesis stages untiled and at each of these "
    "comma-separated tiles (e.g. 512,256), one timestep, --pairs timed runs each (random weights). Prints JSON.",
)
@user_errors
@model_options(*MODEL_FIELDS, "ds_scale", "max_memory", lists=True)
def bench(
    resolution,
    factor,
    pairs,
    warmup,
    json_path,
    plot_path,
    overwrite,
    estimate_memory,
    tile,
    compare_tiles,
    spec,
    backends,
    precisions,
):
    """Benchmark the PyTorch reference (the model called the official way: fp32, one timestep per call) and each
    backend x precision on the same seeded frame pairs: latency, per-stage latency, frames/s, peak memory,
    accuracy and speed-up against the reference. Exported backends' rows export the model on demand (cached in
    $GIMM_TRT_CACHE) during their warm-up; --max-memory is the batched rows' budget. Prints a table; --json and
    --plot save the results.

    \b
    Examples:
        gimm-bench --resolution 4k --random-weights --json results/h100-4k.json --plot results/h100-4k.png
        gimm-bench --resolution 448x256 --pairs 2 --factor 4 --warmup 1 --random-weights --device cpu
    """
    from .benchmarks import BenchConfig, bench_to_files

    config = BenchConfig(
        model=spec,
        resolution=resolution,
        backends=backends,
        precisions=precisions,
        factor=factor,
        pairs=pairs,
        warmup=warmup,
    )
    if estimate_memory:
        from .benchmarks import estimate_memory as estimate

        _print_json(estimate(config, tile=tile), json_path, overwrite)
        return
    if compare_tiles is not None:
        from .benchmarks.memory import tile_throughput

        tiles = tuple(_tile(x) for x in _split(compare_tiles))
        doc = tile_throughput(
            spec.variant,
            resolution,
            ds=spec.ds_scale,
            tiles=tiles,
            repeats=pairs,
            device=spec.device or "cpu",
            seed=spec.seed,
        )
        _print_json(doc, json_path, overwrite)
        return
    table, written = bench_to_files(config, json_path=json_path, plot_path=plot_path, overwrite=overwrite, log=_log)
    click.echo(table)
    for path in written:
        _log(f"wrote {path}")


def _tile(text: str) -> int:
    from .core.errors import InputError

    if not text.isdigit() or int(text) < 16:
        raise InputError(f"--compare-tiles takes tile sides of at least 16 pixels, such as 512,256; got {text!r}")
    return int(text)


def _print_json(doc: dict, json_path, overwrite) -> None:
    import json

    from .core.files import write_json

    if json_path:
        _log(f"wrote {write_json(doc, json_path, overwrite=overwrite)}")
    click.echo(json.dumps(doc, indent=2))


@click.command(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--fp16",
    is_flag=True,
    help="Same as --precision fp16: fp16 convolutions and matmuls with fp32 islands (coordinates, warps, "
    "splatting, correlation, normalisers); inputs and outputs stay fp32.",
)
@click.option(
    "--resolution",
    default="4k",
    show_default=True,
    help="4k, 2k, 1080p, 720p or WxH (width first): the frame size the export serves (any size that pads "
    "to the same multiple of 32).",
)
@click.option(
    "--splat",
    type=click.Choice(SPLAT_FORMS),
    default="plugin",
    show_default=True,
    help="plugin: one custom node (TensorRT plugin, ONNX Runtime custom op); portable: standard ops only.",
)
@click.option(
    "--out",
    default="exports",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Writes <out>/<variant>-<precision>-<resolution>/.",
)
@click.option(
    "--build-engines",
    is_flag=True,
    help="Then build the --engine family's engines into <dir>/engines (tensorrt: TensorRT >= 10.9 on a CUDA "
    "GPU, --device; tensorrt-rtx: TensorRT-RTX, on any machine).",
)
@click.option(
    "--max-timesteps",
    type=click.IntRange(min=1),
    default=TimestepProfile().max,
    show_default=True,
    help="Largest number of timesteps per call the TensorRT engines accept.",
)
@click.option(
    "--opset",
    type=click.IntRange(17, 19),
    default=18,
    show_default=True,
    help="ONNX opset (20 changed GridSample, which TensorRT 10 parses as nearest).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Run each graph in ONNX Runtime against PyTorch on a synthetic pair and print the differences.",
)
@click.option("--force", is_flag=True, help="Trace every stage again even when the export is up to date.")
@ENGINE_OPTION
@click.option(
    "--compute-capability",
    "compute_capabilities",
    default=None,
    metavar="CC,...",
    help="With --engine tensorrt-rtx: the GPUs' compute capabilities to build for, e.g. 86,89 (default: "
    "TensorRT-RTX's own set).",
)
@user_errors
@model_options(*WEIGHTS_FIELDS, "precision", "device", "ds_scale", precisions=EXPORT_PRECISIONS)
def export(
    fp16, resolution, splat, out, build_engines, max_timesteps, opset, check, force, engine, compute_capabilities, spec
):
    """Export GIMM-VFI to ONNX: flow, motion and synthesis graphs plus manifest.json (and TensorRT engines).

    Re-running with the same inputs reuses the directory; a changed input re-exports only the stages it
    affects. Progress goes to stderr; the export directory is the last line on stdout. TensorRT builds its
    engines on --device.

    \b
    Examples:
        gimm-export --variant R-P --fp16 --resolution 4k --build-engines
        gimm-export --variant R --random-weights --resolution 448x256 --splat portable --out /tmp/exports
        gimm-export --variant R-P --fp16 --resolution 1080p --build-engines --engine tensorrt-rtx
    """
    from .engines.prepare import prepare
    from .export.exporter import ExportOptions

    options = ExportOptions(
        model=spec.replace(precision="fp16") if fp16 else spec,
        resolution=resolution,
        splat=splat,
        opset=opset,
        max_timesteps=max_timesteps,
    )
    result = prepare(
        options,
        out,
        check=check,
        build_engines=build_engines,
        family=engine,
        compute_capabilities=compute_capabilities,
        force=force,
        log=_log,
    )
    for stage, outputs in (result.check or {}).items():
        for name, s in outputs.items():
            db = s.get("psnr_db", False)
            db = "" if db is False else f", PSNR {'inf' if db is None else f'{db:.1f}'} dB"
            _log(
                f"  {stage}/{name}: max |d| {s['max_abs']:.2e}, mean |d| {s['mean_abs']:.2e} "
                f"(values up to {s['ref_max_abs']:.3g}){db}"
            )
    for stage, plan in result.plans.items():
        _log(f"{stage}: {plan}")
    click.echo(str(result.export_dir))


@click.command(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@ENGINE_OPTION
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the gimm-doctor/1 document here.")
@click.option(
    "--work",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the doctor's export and engines go.  [default: $GIMM_TRT_CACHE/doctor]",
)
@user_errors
@model_options("device", "export")
def doctor(engine, json_path, work, spec):
    """Check this machine: library versions, then each path against the PyTorch reference, each check passing,
    failing or skipped with the reason. Exits 1 when a check fails. With --export, only check that export
    against the ONNX parser of --engine (no GPU needed).

    \b
    Everywhere: the torch backend vs the model's forward (torch alone), the Triton interpreter (CPU), ONNX Runtime
    on the CPU, TensorRT's parser (static) and TensorRT-RTX's ahead-of-time build (no GPU needed) on the doctor's
    export (random weights; made once, then reused). On a CUDA GPU: the splat op in Triton and CuPy (3 modes),
    torch fp16 vs fp32, ONNX Runtime's CUDA provider, the TensorRT plugin, a single-node AOT engine and its plan
    loaded with TensorRT alone, R-P engine sets (256x256, fp32 and fp16) vs torch fp32, CUDA-graph replay on a
    new pair vs eager, the TensorRT-RTX engines vs torch fp32. A TensorRT that is installed but does not import
    fails on a GPU.

    \b
    Examples:
        gimm-doctor --json doctor.json
        gimm-doctor --export exports/R-P-fp16-4k
        gimm-doctor --export exports/R-fp32-4k --engine tensorrt-rtx
    """
    from .diagnostics.doctor import run_checks, write_json

    # the table comes out as the run goes: each check's line once, when it ends
    doc = run_checks(device=spec.device, export_dir=spec.export, engine=engine, work=work, log=_log, show=click.echo)
    if json_path:
        _log(f"wrote {write_json(doc, json_path)}")
    if not doc["ok"]:
        sys.exit(1)


@click.command(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 opens the service to the network.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Copies of the model (one GPU each where the cluster has GPUs and --device is not cpu).",
)
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Concurrent requests run as one batch.",
)
@click.option(
    "--max-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=64,
    show_default=True,
    help="Largest request, in MiB (and largest size it may unpack to); 413 beyond.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=ServeOptions.max_pixels,
    show_default=True,
    help="Largest frame, width x height (4K UHD by default); 413 beyond. --max-memory bounds what a pair may "
    "use; this bounds the work of the memory estimate too.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=ServeOptions.body_timeout_s,
    show_default=True,
    help="Seconds a request may take to send its body; 408 beyond (a stalled client frees its slot).",
)
@click.option(
    "--ray-address",
    default=None,
    help="Join this Ray cluster instead of starting one on this machine (127.0.0.1 only).",
)
@user_errors
@model_options(*RUN_FIELDS)
def serve(host, port, replicas, max_batch, max_mb, max_pixels, body_timeout, ray_address, spec):
    """Serve GIMM-VFI over HTTP on Ray Serve: POST /interpolate (an .npz with img0, img1, timesteps and optionally
    ds_scale in, an .npz with frames out; see gimm_trt.serve.protocol) and GET /health. Runs until Ctrl-C.

    \b
    Examples:
        gimm-serve --variant R-P --device cuda --replicas 2 --max-memory 20GiB
        gimm-serve --random-weights --variant R --device cpu --port 8080
    """
    from .distributed import WorkerSpec, ray_session
    from .serve import build_app, serve_forever, start

    _check_files(spec)  # and the backend, device and packages: before Ray starts
    options = ServeOptions(
        max_bytes=int(max_mb * (1 << 20)), max_pixels=max_pixels, max_batch_size=max_batch, body_timeout_s=body_timeout
    )
    with ray_session(ray_address):
        url = start(build_app(WorkerSpec(model=spec), options, replicas=replicas), host=host, port=port)
        model = f"GIMM-VFI-{spec.variant}" if spec.variant else f"the export {spec.export}"
        weights = " with random weights (not a trained model)" if spec.random_weights else ""
        _log(f"serving {model}{weights}: POST {url}interpolate, GET {url}health (Ctrl-C stops)")
        click.echo(url)
        serve_forever(log=_log)


def _check_files(spec) -> None:
    """What a worker started elsewhere would fail on, said here in one line: ``check_spec``'s backend, device
    and packages, then the checkpoint's files (or the export's manifest), which the workers read at the same
    paths."""
    from .export.manifest import ExportInfo
    from .model.checkpoint import checkpoint_files
    from .runtime.interpolator import check_export_variant

    check_spec(spec)
    if spec.export is not None:
        check_export_variant(spec, ExportInfo.read(spec.export).variant)  # the manifest read once
    else:
        checkpoint_files(
            spec.checkpoint, spec.weights, flow_checkpoint=spec.flow_checkpoint, random_weights=spec.random_weights
        )
