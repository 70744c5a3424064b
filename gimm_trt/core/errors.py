"""gimm_trt's exceptions: one base, ``GimmError``, and one class per kind of problem a user can fix.

Each also derives from the built-in exception a caller would catch for that kind of problem (``ValueError``
for bad values, ``ImportError`` for missing packages, ...), so ``except ValueError`` catches an ``InputError``. The CLI
turns a ``GimmError`` into one line and exit status 2; anything else is a bug and shows its traceback.
"""

__all__ = [
    "GimmError",
    "InputError",
    "CheckpointError",
    "ExportError",
    "ExportMissingError",
    "EngineError",
    "EngineMissingError",
    "MissingDependency",
    "DeviceError",
]


class GimmError(Exception):
    """Something the user can fix: the message says what and how."""


class InputError(GimmError, ValueError):
    """A frame, timestep, size, option value or path given to the API or the CLI cannot be used."""


class DeviceError(GimmError, ValueError):
    """The device asked for is absent, or the backend/precision cannot run on it."""


class CheckpointError(GimmError, ValueError):
    """A checkpoint file is missing, unreadable, or does not match the requested variant."""


class ExportError(GimmError, ValueError):
    """An export directory is missing, incomplete, damaged, or made for other frames or another scale."""


class ExportMissingError(ExportError, FileNotFoundError):
    """A file an export directory must hold is not there."""


class EngineError(GimmError, RuntimeError):
    """A TensorRT engine cannot be built, loaded or run as asked."""


class EngineMissingError(EngineError, FileNotFoundError):
    """No plan matches the key and building is off; the message says which of its parts differ."""


class MissingDependency(GimmError, ImportError):
    """An optional package is not installed (or not usable); the message says what to install."""
