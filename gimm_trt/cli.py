"""Command line: a thin click layer over the Python API (``gimm_trt.Interpolator`` and friends).

Every command exits 0 on success and 2 with one line on stderr for a user mistake (bad input, missing
checkpoint, wrong size), never a traceback.
"""
import functools
import sys
from pathlib import Path

import click

from .model.checkpoint import VARIANTS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def user_errors(fn):
    """Turn the API's ValueError/TypeError/OSError family into ``error: ...`` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError, OSError, ImportError) as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return wrapper


def model_options(fn):
    """The options every command shares to pick the model and where it runs."""
    options = [
        click.option("--variant", type=click.Choice(VARIANTS), default="R-P", show_default=True,
                     help="GIMM-VFI variant: R/R-P use RAFT flow, F/F-P FlowFormer; -P = perceptual (LPIPS) weights."),
        click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
                     help="Official .pt or .safetensors file. Default: the official file name in "
                          "$GIMM_TRT_CHECKPOINTS or ./pretrained_ckpt."),
        click.option("--random-weights", is_flag=True,
                     help="Seeded synthetic weights instead of a checkpoint (speed work and tests: the frames "
                          "are not meaningful)."),
        click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _interpolator(variant, checkpoint, random_weights, device, **kwargs):
    import warnings

    from .runtime import Interpolator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said once on stderr below instead
        interp = Interpolator.from_checkpoint(checkpoint, variant=variant, device=device,
                                              random_weights=random_weights, **kwargs)
    click.echo(f"GIMM-VFI-{variant} on {interp.device}: {interp.weights}", err=True)
    return interp


def _read_folder(folder: Path):
    import numpy as np
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    for path in files:
        with Image.open(path) as im:
            yield np.asarray(im.convert("RGB"))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, metavar="INPUT OUTPUT")
@click.option("--factor", type=click.IntRange(min=2), default=2, show_default=True,
              help="Frame-rate multiplier: factor - 1 new frames between each pair.")
@click.option("--ds-scale", type=float, default=None,
              help="Processing scale: 1.0 up to 1080p, 0.5 for 2K, 0.25 for 4K (official guidance).")
@click.option("--demo", is_flag=True, help="Use a built-in 3-frame clip as INPUT (then give only OUTPUT).")
@model_options
@user_errors
def interpolate(paths, factor, ds_scale, demo, variant, checkpoint, random_weights, device):
    """Interpolate a folder of frames (INPUT) into a folder of frames (OUTPUT), FACTOR times the frame rate.

    \b
    Example:
        gimm-interpolate frames/ out/ --factor 8 --variant R-P
        gimm-interpolate --demo out/ --factor 4 --random-weights
    """
    from PIL import Image

    from .runtime.demo import demo_frames

    if len(paths) != (1 if demo else 2):
        raise ValueError("give INPUT and OUTPUT folders, or --demo and an OUTPUT folder")
    out = Path(paths[-1])
    frames = demo_frames() if demo else _read_folder(Path(paths[0]))
    interp = _interpolator(variant, checkpoint, random_weights, device)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for n, frame in enumerate(interp.stream(frames, factor=factor, ds_scale=ds_scale), 1):
        img = (frame.clamp(0, 1) * 255 + 0.5).to("cpu", dtype=__import__("torch").uint8).permute(1, 2, 0).numpy()
        Image.fromarray(img).save(out / f"{n - 1:06d}.png")
    click.echo(f"wrote {n} frames to {out}" + (" (random weights: not a trained model)" if random_weights else ""),
               err=True)
    click.echo(str(out))
