"""What the backends that run a ``gimm-export`` directory share: the manifest, the size and scale checks,
and a flow stage that takes the two padded frames (an export has no per-frame part to reuse)."""

from __future__ import annotations

import abc
from pathlib import Path

import torch

from ..core.stages import FLOW_INPUTS
from ..export.manifest import ExportInfo
from .backend import Backend

__all__ = ["ExportedBackend"]


class ExportedBackend(Backend):
    """An export run by one engine; ``ds_scale``, padded frame size and precision are the export's.

    Subclasses implement ``_run(stage, feed) -> {name: tensor}`` for one stage's graph.
    """

    def __init__(self, export_dir, *, device):
        self.info = ExportInfo.read(export_dir)
        self.device = self.check(device, self.info.precision)
        self.info.verify_files()  # before any graph is parsed or run
        self.precision = self.info.precision
        self.ds_scale = self.info.ds_scale

    @property
    def export_dir(self) -> Path:
        return self.info.path

    def check_frames(self, height: int, width: int) -> None:
        self.info.check_frames(height, width)

    def encode(self, img: torch.Tensor, ds: float) -> torch.Tensor:
        self.info.check_padded(img, ds)
        return img

    def estimate(self, enc0: torch.Tensor, enc1: torch.Tensor, ds: float) -> dict:
        return self._run("flow", dict(zip(FLOW_INPUTS, (enc0, enc1))))

    def motion(self, flow01, flow10, t) -> torch.Tensor:
        return self._run("motion", {"flow01": flow01, "flow10": flow10, "t": t})["flowt"]

    def synthesis(self, img0, img1, feats: dict, flowt, t, ds: float) -> torch.Tensor:
        self.info.check_ds(ds)
        return self._run("synthesis", {"img0": img0, "img1": img1, "flowt": flowt, "t": t, **feats})["frames"]

    @abc.abstractmethod
    def _run(self, stage: str, feed: dict) -> dict:
        """One stage's graph on ``feed`` (a superset of its inputs, by name): its outputs by name."""
