"""Optional CuPy summation-splatting kernel (``impl="cupy"``), arithmetic as in the official CUDA kernel.

One thread per input element (n, c, y, x), inputs cast to float32 first (the official op does the same),
bilinear weights written as the official kernel writes them, fp32 ``atomicAdd`` into a zeroed output, compiled
without FMA contraction. Neighbour bounds are decided on the float corner (the official kernel converts
``floor`` to int first, which is undefined for huge coordinates; both agree wherever that is defined).
CuPy is imported on first use; without it ``splat_sum`` raises an ImportError naming the extra.
"""

import torch

from ..core.errors import DeviceError

__all__ = ["splat_sum"]

_SOURCE = r"""
extern "C" __global__ void gimm_splat_sum(const long long total, const int C, const int H, const int W,
                                          const float* __restrict__ x, const float* __restrict__ flow,
                                          float* __restrict__ out) {
    const long long hw = (long long)H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long pixel = i % hw;
        const long long n = i / hw / C;
        const long long plane = i - pixel;  // start of out[n, c]
        const int col = (int)(pixel % W);
        const int row = (int)(pixel / W);
        const float px = (float)col + flow[2 * n * hw + pixel];
        const float py = (float)row + flow[(2 * n + 1) * hw + pixel];
        if (!isfinite(px) || !isfinite(py)) continue;
        const float value = x[i];
        const float x0 = floorf(px), y0 = floorf(py);
        const float x1 = x0 + 1.0f, y1 = y0 + 1.0f;
        const float corner_x[4] = {x0, x1, x0, x1};
        const float corner_y[4] = {y0, y0, y1, y1};
        const float weight[4] = {(x1 - px) * (y1 - py), (px - x0) * (y1 - py),
                                 (x1 - px) * (py - y0), (px - x0) * (py - y0)};
        for (int k = 0; k < 4; ++k) {
            if (corner_x[k] >= 0.0f && corner_x[k] < (float)W && corner_y[k] >= 0.0f && corner_y[k] < (float)H) {
                atomicAdd(&out[plane + (long long)corner_y[k] * W + (long long)corner_x[k]], value * weight[k]);
            }
        }
    }
}
"""

_BLOCK = 512
_kernel = None


def _cupy():
    try:
        import cupy
    except ImportError as err:
        raise ImportError(
            "impl='cupy' needs CuPy: pip install gimm-trt[cupy] (or a cupy-cudaXXx wheel matching your CUDA)"
        ) from err
    return cupy


def splat_sum(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Summation splatting on CUDA tensors: x [N,C,H,W], flow [N,2,H,W] (pixels, x then y) -> [N,C,H,W] float32."""
    global _kernel
    cupy = _cupy()
    if not (x.is_cuda and flow.is_cuda):
        raise DeviceError("impl='cupy' runs on CUDA tensors only")
    n, c, h, w = x.shape
    x = x.float().contiguous()
    flow = flow.float().contiguous()
    out = torch.zeros(n, c, h, w, device=x.device, dtype=torch.float32)
    total = x.numel()
    if total == 0:
        return out
    with cupy.cuda.Device(x.device.index), cupy.cuda.ExternalStream(torch.cuda.current_stream(x.device).cuda_stream):
        if _kernel is None:
            _kernel = cupy.RawKernel(_SOURCE, "gimm_splat_sum", options=("--fmad=false",))
        grid = min((total + _BLOCK - 1) // _BLOCK, 65535 * 32)  # grid-stride loop covers the rest
        _kernel(
            (grid,),
            (_BLOCK,),
            (
                cupy.int64(total),
                cupy.int32(c),
                cupy.int32(h),
                cupy.int32(w),
                cupy.asarray(x),
                cupy.asarray(flow),
                cupy.asarray(out),
            ),
        )
    return out
