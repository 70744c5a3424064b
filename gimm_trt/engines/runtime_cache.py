"""TensorRT-RTX's runtime cache kept in a file: the kernels its JIT step compiled for this GPU, so that a second
process starts without compiling them again.

TensorRT-RTX plans are built ahead of time for a set of compute capabilities; the first run on a GPU specialises
them (compiles kernels) for that GPU and the shapes it meets. An ``IRuntimeCache`` holds those kernels; it is
made from an ``IRuntimeConfig``, attached to the config of every execution context, and serialized to bytes.
``deserialize`` validates a blob against the running environment (TensorRT-RTX version, GPU, driver) and
returns False, leaving the cache empty, on any mismatch: a stale file costs one compilation, never a wrong kernel.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from ..core.errors import EngineError
from ..core.files import atomic_write

__all__ = ["RuntimeCacheFile", "runtime_cache_path"]

log = logging.getLogger("gimm_trt.engines")


def runtime_cache_path(engine_dir, *, version: str, gpu: str) -> Path:
    """``<engine_dir>/runtime-cache.<gpu>.rtx<version>.bin``: one file per GPU model and TensorRT-RTX release,
    so that machines with other GPUs sharing an export never overwrite each other's kernels."""
    return Path(engine_dir) / f"runtime-cache.{gpu}.rtx{version}.bin"


class RuntimeCacheFile:
    """One ``IRuntimeCache`` shared by every execution context of an export's engines, loaded from ``path`` when
    the first context is made and written back by ``save`` when it holds kernels the file does not.

    Attributes:
        path: the file.
        loaded: whether the file's kernels were accepted (None until the first context; False for no file or a
            blob TensorRT-RTX refused for this environment).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.loaded: Optional[bool] = None
        self._cache = None
        self._written: Optional[bytes] = None
        self._unwritable = False

    def attach(self, config) -> None:
        """Attach the cache to a new ``IRuntimeConfig`` (the first one creates it and loads the file)."""
        if self._cache is None:
            self._cache = config.create_runtime_cache()
            self.loaded = False
            if self.path.is_file():
                data = self.path.read_bytes()
                self.loaded = bool(self._cache.deserialize(data))
                if self.loaded:
                    self._written = data
                else:
                    log.info(
                        "%s was made for another GPU, driver or TensorRT-RTX: its kernels compile again", self.path
                    )
        if not config.set_runtime_cache(self._cache):
            raise EngineError(f"TensorRT-RTX refused its runtime cache ({self.path}); remove the file and run again")

    def save(self) -> bool:
        """Write the cache to ``path`` (atomically) when it differs from what the file holds; True when written.

        A file that cannot be written (a read-only export, a full disk) is logged once and never tried again:
        the cache only saves time, the frames do not depend on it."""
        if self._cache is None or self._unwritable:
            return False
        host = self._cache.serialize()
        data = b"" if host is None else bytes(memoryview(host))
        if not data or data == self._written:
            return False
        try:
            atomic_write(self.path, data)
        except OSError as err:
            self._unwritable = True
            log.warning(
                "cannot keep TensorRT-RTX's runtime cache in %s (%s): each process compiles again", self.path, err
            )
            return False
        self._written = data
        return True
