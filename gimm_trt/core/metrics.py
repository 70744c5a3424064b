"""Image-quality numbers shared by the export checks, the benchmarks and the doctor."""

import math
from typing import Optional

__all__ = ["psnr_from_mse", "psnr"]


def psnr_from_mse(mse: float, data_range: float = 1.0) -> Optional[float]:
    """PSNR in dB for a mean squared error; None when the images are identical (infinite PSNR has no JSON)."""
    return None if mse <= 0 else 10.0 * math.log10(data_range * data_range / mse)


def psnr(a, b, data_range: float = 1.0) -> Optional[float]:
    """PSNR in dB of torch image tensors ``a`` against ``b`` (any device; compared in float64 on the CPU);
    None when they are identical."""
    diff = a.detach().double().cpu() - b.detach().double().cpu()
    return psnr_from_mse(diff.pow(2).mean().item(), data_range)
