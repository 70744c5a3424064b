"""A built-in clip for trying the toolkit without any input file: textured shapes moving over a gradient."""

import numpy as np


def demo_frames(n: int = 3, height: int = 256, width: int = 448):
    """``n`` deterministic uint8 [H,W,3] RGB frames; a disc, a square and the background all move."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(n):
        shift = 12.0 * i  # pixels per frame: enough motion to need interpolation
        bg = np.stack([(x + shift) / width, y / height, 0.5 + 0.25 * np.sin((x - shift) / 23.0)], axis=-1)
        img = 0.6 * bg + 0.1 * np.sin((x + y + 2 * shift) / 7.0)[..., None]
        disc = (x - (0.3 * width + 2 * shift)) ** 2 + (y - 0.5 * height) ** 2 < (0.18 * height) ** 2
        img[disc] = [0.9, 0.3, 0.2]
        square = (abs(x - 0.7 * width) < 0.12 * height) & (abs(y - (0.35 * height + shift)) < 0.12 * height)
        img[square] = [0.15, 0.35, 0.9] + 0.05 * np.sin(x[square] / 3.0)[:, None]
        frames.append((np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    return frames
