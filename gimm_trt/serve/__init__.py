"""An online service on Ray Serve: ``POST /interpolate`` (two frames and timesteps in, frames out, as .npz;
see ``protocol``) and ``GET /health``. ``gimm-serve`` runs it.

Nothing here imports Ray until a service is built (``pip install 'gimm-trt[ray]'``).
"""

from __future__ import annotations

from .options import ServeOptions
from .protocol import decode_response, encode_request
from .run import build_app, serve_forever, start

__all__ = ["ServeOptions", "build_app", "start", "serve_forever", "encode_request", "decode_response"]
