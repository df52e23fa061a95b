"""Writes that a crash or a Ctrl-C cannot leave half done, and SIGINT handling.

:func:`write_atomic` writes to a temporary file beside the target, flushes and fsyncs it,
renames it over the target with ``os.replace`` and fsyncs the directory: a reader sees the
old file or the new one, never a mix. Temporary files are named after the target and the
writing process (``.NAME.tmp-PID-XXXX.tmp``), so the next write to the same target removes
the ones a killed process left (:func:`clean_stale_temps`).

:func:`sigint_handler` runs a block with a Python-level SIGINT handler of its own and puts
the previous one back; :func:`sigint_deferred` uses it to hold a Ctrl-C off until a block
(a checkpoint save) is done. Neither imports NumPy, so the command line can use them
before it loads anything heavy.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

STALE_AFTER = 3600          # seconds: another process's temp file is abandoned (not POSIX)


# ----------------------------------------------------------------------------- SIGINT

@contextlib.contextmanager
def sigint_handler(handler: Callable) -> Iterator[Callable | None]:
    """Run the body with ``handler`` as SIGINT's Python-level handler.

    Yields the handler it replaced (Python's own ``default_int_handler`` when the previous
    one was not set from Python), or None when no handler could be installed (not the
    main thread); the previous handler is back when the body ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    try:
        previous = signal.signal(signal.SIGINT, handler)
    except (ValueError, OSError):
        yield None
        return
    if previous is None:
        previous = signal.default_int_handler
    try:
        yield previous
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold SIGINT off while the body runs, then deliver it to the previous handler.

    The Python-level handler is swapped (rather than the signal masked) because a
    process-directed SIGINT may land on any thread, e.g. a BLAS worker.
    """
    pending: list = []
    previous = None
    try:
        with sigint_handler(lambda signum, frame: pending.append(frame)) as previous:
            yield
    finally:
        if pending and callable(previous):
            previous(signal.SIGINT, pending[-1])


# ----------------------------------------------------------------------------- writing

def _tmp_prefix(name: str) -> str:
    return f".{name}.tmp-"


# this process's temporary files still being written (by any thread)
_in_flight: set[str] = set()
_in_flight_lock = threading.Lock()


def _stale(p: Path, pid: int) -> bool:
    """Whether a temporary file written by process ``pid`` is abandoned."""
    if pid == os.getpid():
        with _in_flight_lock:   # ours: abandoned unless another thread is writing it
            return os.path.abspath(p) not in _in_flight
    if os.name != "posix":      # os.kill(pid, 0) would terminate a process on Windows
        try:
            return time.time() - p.stat().st_mtime > STALE_AFTER
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False            # alive, but someone else's
    return False


def clean_stale_temps(path) -> list[Path]:
    """Remove the temporary files that interrupted writes to ``path`` left behind.

    Parameters
    ----------
    path : str or os.PathLike
        The target of the writes.

    Returns
    -------
    list of Path
        The files removed.
    """
    path = Path(path)
    removed = []
    pat = re.compile(re.escape(_tmp_prefix(path.name)) + r"(\d+)-")
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = pat.match(p.name)
        if m and _stale(p, int(m.group(1))):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return                  # e.g. Windows: directories cannot be opened
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path, write: Callable[[BinaryIO], object], durable: bool = True) -> Path:
    """Write a file through ``write(f)`` so that ``path`` is the old file or the new one.

    Parameters
    ----------
    path : str or os.PathLike
        The target; its directory is created if needed.
    write : callable
        Writes the content to the binary file object it is given (opened ``w+b``, so it
        may read back what it wrote).
    durable : bool
        fsync the file before the rename and the directory after it, so the new file
        survives a power cut once this returns. Without it the write is still atomic
        (a crash leaves the old file or the new one) but may be lost; for caches.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    BaseException
        Whatever ``write`` or the file system raised; the target is then untouched and
        the temporary file removed.
    """
    path = Path(os.fspath(path))
    d = path.parent
    d.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    with _in_flight_lock:       # made and registered at once: no cleaner sees it unlisted
        fd, tmp = tempfile.mkstemp(prefix=f"{_tmp_prefix(path.name)}{os.getpid()}-",
                                   suffix=".tmp", dir=d)
        tmp = os.path.abspath(tmp)
        _in_flight.add(tmp)
    try:
        with os.fdopen(fd, "w+b") as f:
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)           # mkstemp's 0600, made what open() gives
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        with _in_flight_lock:
            _in_flight.discard(tmp)
    if durable:
        _fsync_dir(d)                           # make the rename itself durable
    return path
