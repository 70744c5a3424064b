"""Beyond one process: many inputs and long videos on Ray workers (``interpolate_videos``).

Ray is optional (``pip install 'gimm-trt[ray]'``): nothing here imports it until a cluster is used.
"""

from .batch import WorkerPool, interpolate_videos
from .cluster import ray_session
from .worker import WorkerSpec

__all__ = ["interpolate_videos", "WorkerPool", "WorkerSpec", "ray_session"]
