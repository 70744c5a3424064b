"""An online service on Ray Serve: ``POST /interpolate`` (two frames and timesteps in, frames out, as .npz;
see ``protocol``) and ``GET /health``. ``gimm-serve`` runs it.

Nothing here imports Ray until a service is built (``pip install 'gimm-trt[ray]'``), and importing this package
loads the running parts (and the Ray runner they share with ``distributed``) only when one is used: the CLI reads
``ServeOptions``' defaults at every start.
"""

import importlib

_EXPORTS = {
    "ServeOptions": "options",
    "build_app": "run",
    "start": "run",
    "serve_forever": "run",
    "encode_request": "protocol",
    "decode_response": "protocol",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
