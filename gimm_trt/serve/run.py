"""Building the Serve application and running it on a cluster (one GPU per replica where there are GPUs)."""

from __future__ import annotations

import time
from typing import Optional

from ..core.errors import InputError
from ..distributed.cluster import LOOPBACK, gpus_each, require_ray
from ..distributed.worker import WorkerSpec

__all__ = ["APP", "build_app", "start", "serve_forever"]

APP = "gimm"  # the Serve application's name


def build_app(
    spec: WorkerSpec,
    options=None,
    *,
    replicas: int = 1,
    gpus_per_replica: Optional[float] = None,
    cpus_per_replica: float = 1.0,
):
    """The bound deployment of ``FrameService``; Ray must be connected (to count its GPUs).

    Args:
        spec: how each replica builds its ``Interpolator``.
        options: ``ServeOptions`` (limits, batching).
        replicas: copies of the model; requests are spread over them.
        gpus_per_replica: None = one GPU each when the cluster has GPUs and ``spec.model.device`` is not ``"cpu"``.
        cpus_per_replica: CPUs Ray reserves for each (fractions allowed).
    """
    ray = require_ray()
    from ray import serve

    from .options import ServeOptions
    from .service import FrameService

    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
        raise InputError(f"replicas must be an integer >= 1, got {replicas!r}")
    options = options or ServeOptions()
    gpus_per_replica = gpus_each(ray, replicas, gpus_per_replica, spec.model.device, "replicas")
    deployment = serve.deployment(
        FrameService,
        name="interpolate",
        num_replicas=replicas,
        ray_actor_options={"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica},
        # the work slots (a full batch waiting while one runs) and room beyond them, where requests wait for a
        # slot in the replica and /health, which takes none, gets in; more wait in the proxy
        max_ongoing_requests=options.work_slots + options.max_waiting + 1,
    )
    return deployment.bind(spec, options)


def start(app, *, host: str = LOOPBACK, port: int = 8000, timeout: Optional[float] = 600) -> str:
    """Deploy ``app`` at ``http://host:port/`` (127.0.0.1 unless a host is given) and return that URL once
    every replica has built its model."""
    from ray import serve

    serve.start(http_options={"host": host, "port": port})
    deadline = None if timeout is None else time.monotonic() + timeout
    serve.run(app, name=APP, route_prefix="/", blocking=False)
    _wait_running(serve, deadline)
    return f"http://{host}:{port}/"


def _wait_running(serve, deadline) -> None:
    while True:
        status = serve.status().applications.get(APP)
        state = str(getattr(status, "status", ""))
        if state.endswith("RUNNING"):
            return
        if state.endswith("DEPLOY_FAILED"):
            raise RuntimeError(f"the service failed to start: {status.message}")
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"the service did not start in time (status {state or 'unknown'})")
        time.sleep(0.5)


def serve_forever(log=print) -> None:
    """Block until interrupted (Ctrl-C), then delete this application (Serve and other applications on a
    joined cluster keep running)."""
    from ray import serve

    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        log("stopping")
    finally:
        serve.delete(APP)
