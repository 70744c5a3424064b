"""Frames and timesteps as the API takes them: conversion and validation."""
import numpy as np
import torch

from ..core.errors import InputError


def to_tensor(img, name: str, device) -> torch.Tensor:
    """A frame as float32 [1,3,H,W] in [0,1] on ``device``.

    Accepts float [3,H,W] / [1,3,H,W] in [0,1] (torch or numpy) or uint8 [H,W,3] (torch or numpy, RGB).
    """
    if isinstance(img, np.ndarray):
        img = torch.from_numpy(np.ascontiguousarray(img))
    if not isinstance(img, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(img).__name__}")
    if img.dtype == torch.uint8:
        if img.dim() != 3 or img.shape[2] != 3:
            raise InputError(f"{name}: uint8 frames must be [H,W,3] RGB, got shape {tuple(img.shape)}")
        img = img.to(device).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    elif img.is_floating_point():
        if img.dim() == 3:
            img = img.unsqueeze(0)
        if img.dim() != 4 or img.shape[:2] != (1, 3):
            raise InputError(f"{name}: float frames must be [3,H,W] or [1,3,H,W], got shape {tuple(img.shape)}")
        img = img.to(device=device, dtype=torch.float32)
    else:
        raise InputError(f"{name}: dtype {img.dtype} is not supported (use float in [0,1] or uint8)")
    if not bool(torch.isfinite(img).all()):
        raise InputError(f"{name} contains NaN or infinite pixel values")
    return img.contiguous()


def check_timesteps(timesteps) -> list:
    """Timesteps as a list of floats strictly inside (0, 1) (synthesis divides by t and by 1 - t)."""
    if isinstance(timesteps, torch.Tensor):
        timesteps = timesteps.flatten().tolist()
    if isinstance(timesteps, (int, float)):
        timesteps = [timesteps]
    timesteps = [float(t) for t in timesteps]
    if not timesteps:
        raise InputError("timesteps must not be empty")
    bad = [t for t in timesteps if not 0.0 < t < 1.0]
    if bad:
        raise InputError(f"timesteps must lie strictly inside (0, 1); got {bad}")
    return timesteps
