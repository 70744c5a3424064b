"""Files that are never seen half-written: atomic writes, a cross-process lock, streaming hashes."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import socket
import tempfile
import threading
from pathlib import Path
from typing import Optional

from .errors import InputError

__all__ = [
    "sha256_file",
    "atomic_write",
    "write_json",
    "remove_stale_tmp",
    "file_lock",
    "claim",
    "partial_prefix",
    "partial_path",
    "partial_writer",
    "check_writable",
]


def sha256_file(path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so a large ONNX file never sits in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def partial_prefix(path) -> str:
    """How the names start that this process writes ``path`` under before renaming them into place: beside
    ``path`` (the same file system, so the rename is atomic), hidden (no glob for the output's own names matches
    them), and naming this host and process, so a later writer can tell a killed writer's leftovers
    (``partial_writer``)."""
    return f".{Path(path).name}.partial-{_host()}-{os.getpid()}-"


def partial_path(path, tag: str = "") -> Path:
    """This process's partial of ``path``: ``partial_prefix``, ``tag`` (to keep this process's writers of
    ``path`` apart), and ``path``'s suffix, so a tool that picks a file format by the name picks the same one."""
    path = Path(path)
    return path.with_name(f"{partial_prefix(path)}{tag}{path.suffix}")


def partial_writer(path, name: str) -> Optional[int]:
    """The process id of the writer on this host that made ``name`` (in ``path``'s folder) as a partial of
    ``path``; None when ``name`` is no such partial."""
    found = re.match(rf"\.{re.escape(Path(path).name)}\.partial-{_host()}-([0-9]+)-", name)
    return None if found is None else int(found.group(1))


def _host() -> str:
    """This host, as a short name-safe token (host names may hold characters file names cannot)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def atomic_write(path, data, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file, or the whole new one, never a part.

    ``data`` is bytes-like (bytes, memoryview, ``trt.IHostMemory``) or a callable that writes into the open
    binary file. The bytes go to a temporary file in the same directory (same file system, so the rename
    is atomic), are flushed and fsynced, then ``os.replace`` puts them under the final name. On any error
    the temporary file is removed and the old file, if any, is left as it was. ``mode`` is applied before
    the rename (``mkstemp`` creates 0600 files, which other users of a shared cache could not read).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # ".tmp", not path's suffix: a glob for the final names (``*.plan``) never lists a file still being written
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=partial_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(memoryview(data))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)  # make the rename itself durable
    return path


def write_json(doc, path, *, overwrite: bool = True, default=None) -> Path:
    """``doc`` as indented JSON (and a final newline) at ``path``, written as ``atomic_write`` does.

    InputError when ``path`` exists and ``overwrite`` is false. ``default`` as in ``json.dumps`` (how values JSON
    has no type for are written). NaN and infinities raise ValueError: strict JSON parsers could not read the file.
    """
    if not overwrite and Path(path).exists():
        raise InputError(f"{path} exists (use --overwrite to replace it)")
    return atomic_write(path, (json.dumps(doc, indent=2, allow_nan=False, default=default) + "\n").encode())


def check_writable(path) -> None:
    """InputError unless a file can be created beside ``path`` (in its folder, or in the nearest existing folder
    above it when that folder is still to be made): for checking an output before the work, not after it.

    The check creates and removes a file there: permission bits alone do not tell (a read-only file system,
    root, ACLs).
    """
    folder = Path(path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".gimm-write-check-")
    except OSError as e:
        raise InputError(
            f"cannot write {path}: {folder} is not writable ({e.strerror or e}); choose another place"
        ) from None
    try:
        os.close(fd)
    finally:
        os.unlink(probe)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def remove_stale_tmp(path) -> None:
    """Remove the temporary files killed ``atomic_write`` calls for ``path`` left, on any host; call only under the
    lock its writers take."""
    path = Path(path)
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.partial-*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows; NTFS renames are journaled
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _ThreadLocks:
    """One ``threading.Lock`` per lock path, for the threads of this process."""

    def __init__(self):
        self._locks: dict = {}
        self._guard = threading.Lock()

    def __call__(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


_THREAD_LOCKS = _ThreadLocks()


@contextlib.contextmanager
def file_lock(path):
    """Exclusive lock on ``path`` for other processes and for other threads of this one; waits, no timeout.

    Across processes: ``flock`` on ``<path>.lock`` (``msvcrt.locking`` on Windows). A per-path thread lock is
    taken first, so two threads of one process serialise too. The ``.lock`` file stays: deleting it would let
    a late opener lock a different inode.
    """
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with _THREAD_LOCKS(os.path.abspath(lock_path)), open(lock_path, "a+b") as f:
        _lock(f)
        try:
            yield
        finally:
            _unlock(f)


@contextlib.contextmanager
def claim(path):
    """Hold ``path`` for this block alone, for writing it: an InputError at once when another process, or another
    claim in this one, holds it (two runs writing one output must not both succeed, each replacing the other's).

    The lock is ``flock`` (``msvcrt.locking`` on Windows) on the hidden ``.<name>.lock`` beside ``path``; the
    kernel drops it when its holder dies, however it dies. The block's end removes the file while still holding
    it (POSIX), and a claimer that then finds it locked a removed file tries again, so no lock file outlives a
    run that ended, and no two claimers ever hold two different files. Folders made for it that stay empty go
    too.
    """
    path = Path(path)
    lock_path = path.with_name(f".{path.name}.lock")
    made = _make_folder(lock_path.parent)
    try:
        f = _claimed(lock_path, path)
        try:
            yield
        finally:
            try:
                if os.name == "posix":
                    lock_path.unlink(missing_ok=True)
            finally:  # a lock file that cannot be removed must not keep this process holding its lock
                _unlock(f)
                f.close()
    finally:
        for folder in reversed(made):  # a run that wrote nothing leaves no new empty folder
            with contextlib.suppress(OSError):
                folder.rmdir()


def _claimed(lock_path: Path, path: Path):
    """``lock_path`` opened and locked without waiting (see ``claim``)."""
    while True:
        f = open(lock_path, "a+b")
        if not _lock(f, wait=False):
            f.close()
            raise InputError(f"{path} is being written by another run: wait for it to end, or write elsewhere")
        try:
            if os.name != "posix" or os.path.samestat(os.fstat(f.fileno()), os.stat(lock_path)):
                return f
        except FileNotFoundError:
            pass
        _unlock(f)  # its holder removed it after it was opened here: lock the file now under that name
        f.close()


def _make_folder(folder: Path) -> list:
    """Make ``folder`` and its missing parents; the folders made, outermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _lock(f, wait: bool = True) -> bool:
    """Lock the open file ``f``; False when ``wait`` is false and another holder has it."""
    if os.name == "posix":
        import fcntl

        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True
    import msvcrt

    f.seek(0)
    while True:
        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
            return True
        except OSError:  # LK_LOCK gives up after ~10 s; keep waiting as flock does
            if not wait:
                return False


def _unlock(f) -> None:
    if os.name == "posix":
        import fcntl

        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    else:
        import msvcrt

        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
