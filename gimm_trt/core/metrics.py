"""Image-quality numbers shared by the export checks, the benchmarks and the doctor."""

import math
from typing import Optional

__all__ = ["psnr_from_mse"]


def psnr_from_mse(mse: float, data_range: float = 1.0) -> Optional[float]:
    """PSNR in dB for a mean squared error; None when the images are identical (infinite PSNR has no JSON)."""
    return None if mse <= 0 else 10.0 * math.log10(data_range * data_range / mse)
