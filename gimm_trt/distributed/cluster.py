"""Connecting to Ray: a cluster of this machine that only listens on 127.0.0.1, or an existing one by address.

Ray binds its services to every interface by default and turns a node address of ``127.0.0.1`` into the
machine's network address. Ray only keeps the loopback address when it is told this node is the whole
cluster (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which is how Ray runs on a laptop); gimm-trt sets that for a
cluster it starts itself. Joining other machines is always an explicit ``address``.

Ray also turns on token authentication for a new cluster and saves a new token under ``~/.ray``; a cluster
started here gets its token from the environment instead (``RAY_AUTH_TOKEN``, inherited by the processes
Ray starts), so nothing is written into the home directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from typing import Optional

from ..core import deps
from ..core.errors import InputError

__all__ = ["LOOPBACK", "ray_session", "require_ray", "gpu_count", "gpus_each"]

LOOPBACK = "127.0.0.1"
_ONE_NODE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's switch: "0" = this node is the cluster, on loopback


def require_ray():
    """``import ray``, or a MissingDependency that says ``pip install 'gimm-trt[ray]'``."""
    return deps.require("ray", "running on Ray (--workers, gimm-serve)")


@contextlib.contextmanager
def ray_session(
    address: Optional[str] = None,
    *,
    num_cpus: Optional[float] = None,
    num_gpus: Optional[float] = None,
    log_to_driver: bool = False,
) -> Iterator[object]:
    """Yield the ``ray`` module connected to a cluster; shut down on exit what this call started.

    Args:
        address: None starts a cluster of this machine that listens on 127.0.0.1 only; ``"auto"`` or
            ``"HOST:PORT"`` joins an existing cluster (``ray start --head`` prints its address).
        num_cpus, num_gpus: resources of a cluster started here (Ray counts them when None); logical GPUs
            work for placement tests on a machine without any.
        log_to_driver: show the workers' output here.

    A session that is already connected (``ray.is_initialized()``) is used as it is and left running.
    """
    if address is not None and (num_cpus is not None or num_gpus is not None):
        raise InputError("num_cpus/num_gpus describe a cluster started here, not one joined by address")
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        yield sys.modules["ray"]
        return
    with _environment(address is None):
        ray = require_ray()
        if address is None:
            _start_loopback(ray, num_cpus, num_gpus, log_to_driver)
        else:
            try:
                ray.init(address=address, log_to_driver=log_to_driver)
            except ConnectionError as e:
                raise InputError(f"cannot join the Ray cluster at {address}: {e}") from None
        try:
            yield ray
        finally:
            ray.shutdown()


def _start_loopback(ray, num_cpus, num_gpus, log_to_driver: bool) -> None:
    from ray._private import ray_constants

    # Ray reads its switch once, when it is imported: a ray imported before this call needs it set too
    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            _node_ip_address=LOOPBACK,
            include_dashboard=False,
            log_to_driver=log_to_driver,
        )
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


@contextlib.contextmanager
def _environment(local: bool):
    """What a cluster started here needs in the environment, which the processes Ray starts inherit.

    The one-node switch is restored afterwards. The token stays: Ray keeps the token it loaded for the life of
    this process, so a later cluster started here must get the same one. Ray itself turns token mode on
    (unless ``RAY_AUTH_MODE`` says otherwise), and a token the user provides is used as it is.
    """
    if not local:
        yield
        return
    if os.environ.get("RAY_AUTH_MODE", "token") == "token" and not (
        os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    ):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    saved = os.environ.get(_ONE_NODE)
    os.environ[_ONE_NODE] = "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(_ONE_NODE, None)
        else:
            os.environ[_ONE_NODE] = saved


def gpus_each(ray, count: int, per: Optional[float], device: Optional[str], what: str) -> float:
    """GPUs each of ``count`` actors (``what``: "workers", "replicas") reserves: ``per``, or one each when the
    cluster has GPUs and ``device`` is not the CPU; InputError when the cluster has too few."""
    gpus = gpu_count(ray)
    if per is None:
        per = 1 if gpus and device != "cpu" else 0
    if per and count * per > gpus:
        raise InputError(f"{count} {what} with {per:g} GPU each need {count * per:g} GPUs; the Ray cluster has {gpus}")
    if device and device.startswith("cuda") and not per:
        raise InputError(f"device {device!r} needs GPUs; the Ray cluster has none")
    return per


def gpu_count(ray) -> int:
    """GPUs the connected cluster has (logical ones included)."""
    return int(ray.cluster_resources().get("GPU", 0))
