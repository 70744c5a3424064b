"""The PyTorch reference of every benchmark: our model called the way the official GIMM-VFI demo calls it.

The official forward runs the flow estimator once per pair, then loops over the timesteps, one motion
prediction and one synthesis per timestep, in fp32 eager PyTorch. ``Interpolator`` batches the T timesteps
instead; this function keeps the official loop so that "batched vs official way" speed-ups and accuracy are
measured against what users of the official code get. (Our motion stage also redoes its small per-pair
part, splat metrics and motion latents, at each call: about 2% of a timestep's work.)
"""

from collections.abc import Sequence

import torch

from ..core.errors import InputError
from ..core.sizes import Padding, processing_size
from ..runtime.frames import check_timesteps, to_tensor


def interpolate_official_way(stages, img0, img1, timesteps: Sequence[float], ds_scale: float = 1.0) -> torch.Tensor:
    """Frames between ``img0`` and ``img1``, one timestep per motion/synthesis call, as the official forward.

    Args:
        stages: an fp32 ``gimm_trt.runtime.Backend`` (``TorchBackend``, e.g. ``interp.backend``).
        img0, img1: frames as ``Interpolator.interpolate`` takes them.
        timesteps: values strictly inside (0, 1); ds_scale: processing scale.

    Returns:
        float32 [T,3,H,W] in [0,1] on ``stages.device``, cropped as the official demo crops.
    """
    ts = check_timesteps(timesteps)
    x0 = to_tensor(img0, "img0", stages.device)
    x1 = to_tensor(img1, "img1", stages.device)
    if x0.shape != x1.shape:
        raise InputError(f"img0 and img1 differ in size: {tuple(x0.shape[-2:])} vs {tuple(x1.shape[-2:])}")
    processing_size(x0.shape[2], x0.shape[3], ds_scale)
    pad = Padding.for_size(x0.shape[2], x0.shape[3], ds_scale)
    x0, x1 = pad.pad(x0), pad.pad(x1)
    feats = stages.flow(x0, x1, ds_scale)  # once per pair
    out = []
    for t in ts:  # the official loop: T separate motion + synthesis calls of batch 1
        tt = torch.tensor([t], dtype=torch.float32, device=stages.device)
        flowt = stages.motion(feats["flow01"], feats["flow10"], tt)
        out.append(pad.crop(stages.synthesis(x0, x1, feats, flowt, tt, ds_scale)))
    return torch.cat(out)
