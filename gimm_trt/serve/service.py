"""The Ray Serve deployment: ``POST /interpolate`` (see ``protocol``) and ``GET /health``.

Each replica holds one ``Interpolator``. A request takes one of the replica's work slots, then sends its body
within ``body_timeout_s`` (408 beyond: a stalled client gives its slot up), is decoded and admitted (its frame
size, ds_scale and memory plan checked; a bad one is answered with a 4xx and never reaches the model), then
gathered by ``@serve.batch`` and run one after another on a worker thread, so the model is never called
concurrently. Decoding, the memory estimate and the model run off the event loop, and ``/health`` takes no
slot, so the replica answers it at once however busy its slots are. This module imports Ray Serve: import it
only to serve.
"""

from __future__ import annotations

import asyncio
import os

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..core.errors import GimmError
from ..distributed.cluster import LOOPBACK
from ..distributed.worker import WorkerSpec
from ..runtime.video import to_uint8
from .admission import Admission
from .options import ServeOptions
from .protocol import BadRequest, TooLarge, TooSlow, decode_request, encode_response

__all__ = ["FrameService"]


class FrameService:
    """One replica: an ``Interpolator`` and the two routes."""

    def __init__(self, spec: WorkerSpec, options: ServeOptions = ServeOptions()):
        _replica_server_on_loopback()
        self.interp = spec.build()
        self.options = options
        self.admission = Admission(self.interp)
        self._slots = asyncio.Semaphore(options.work_slots)
        self._run_batch.set_max_batch_size(options.max_batch_size)
        self._run_batch.set_batch_wait_timeout_s(options.batch_wait_s)
        self.stats = {"requests": 0, "batches": 0, "largest_batch": 0, "refused": 0}
        self.in_flight = 0  # requests to /interpolate in this replica: holding a work slot or waiting for one

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except Exception as e:  # a failure of the service itself is answered in JSON too
            return _error(500, f"the service failed: {type(e).__name__}: {e}")

    async def _route(self, request: Request) -> Response:
        path = request.url.path.rstrip("/") or "/"
        if path == "/health":
            if request.method != "GET":
                return _error(405, "use GET /health")
            return JSONResponse(self._health())
        if path != "/interpolate":
            return _error(404, f"no route {path}: POST /interpolate or GET /health")
        if request.method != "POST":
            return _error(405, "use POST /interpolate")
        self.in_flight += 1
        try:
            async with self._slots:
                return await self._interpolate(request)
        finally:
            self.in_flight -= 1

    def _health(self) -> dict:
        return {
            "status": "ok",
            "pid": os.getpid(),
            "variant": self.interp.variant,
            "weights": self.interp.weights,  # says "random weights ..., not a trained model" when it is
            "backend": self.interp.backend.name,
            "device": str(self.interp.device),
            "work_slots": self.options.work_slots,
            "in_flight": self.in_flight,
            **self.stats,
        }

    async def _interpolate(self, request: Request) -> Response:
        try:
            body = await _read_body(request, self.options)
            pair = await asyncio.to_thread(decode_request, body, self.options)
            ds = await asyncio.to_thread(self.admission.check, pair)
        except BadRequest as e:
            self.stats["refused"] += 1
            return _error(e.status, str(e))
        self.stats["requests"] += 1
        frames = await self._run_batch((pair, ds))
        if isinstance(frames, GimmError):  # a problem of this request's frames or timesteps
            return _error(400, str(frames))
        if isinstance(frames, Exception):
            return _error(500, f"interpolation failed: {type(frames).__name__}: {frames}")
        return Response(encode_response(frames), media_type="application/octet-stream")

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _run_batch(self, items: list) -> list:
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(items))
        return await asyncio.to_thread(self._interpolate_all, items)

    def _interpolate_all(self, items: list) -> list:
        out = []
        for pair, ds in items:
            try:
                frames = self.interp.interpolate(pair.img0, pair.img1, pair.timesteps, ds_scale=ds)
                out.append(np.stack([to_uint8(f) for f in frames]))
            except Exception as e:  # one failed pair fails its own request, not the batch's others
                out.append(e)
        return out


async def _read_body(request: Request, options: ServeOptions) -> bytes:
    """The body, read within ``body_timeout_s`` (``TooSlow`` beyond) and no further than ``max_bytes``."""
    try:
        return await asyncio.wait_for(_stream_body(request, options.max_bytes), options.body_timeout_s)
    except asyncio.TimeoutError:
        raise TooSlow(f"the body did not arrive within {options.body_timeout_s:g} s (body_timeout_s)") from None


async def _stream_body(request: Request, limit: int) -> bytes:
    """The body, read no further than ``limit`` bytes (a declared or streamed larger one is refused)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request is {declared} bytes; the limit is {limit} (max_bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request is over the limit of {limit} bytes (max_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def _replica_server_on_loopback() -> None:
    """Ray Serve (2.54 and later) binds each replica's inter-deployment gRPC server to every interface, whatever
    the node's address; on a node whose address is 127.0.0.1 (a cluster gimm-trt started) it gets 127.0.0.1.

    The replica binds it after this deployment's constructor returns, through this module-level name, so
    rebinding the name in this replica process is enough. Other nodes' replicas are left as Ray makes them.
    """
    import ray
    from ray.serve._private import replica

    bind = getattr(replica, "add_port_to_grpc_server", None)
    if bind is None or ray.util.get_node_ip_address() != LOOPBACK:
        return

    def loopback(server, address: str):
        return bind(server, f"{LOOPBACK}:{address[5:]}" if address.startswith("[::]:") else address)

    replica.add_port_to_grpc_server = loopback
