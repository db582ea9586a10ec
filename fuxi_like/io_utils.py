"""Small file helpers: atomic writes, locked appends, fingerprints."""

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from .errors import ConfigError


def atomic_write_text(path, text):
    """Write `text` to `path` so a reader never sees a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it over `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    os.unlink(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def file_lock(path):
    """An exclusive advisory lock held on `path` (created if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def expid_lock(path, what):
    """Hold an exclusive lock on `path` for one run of an expid (its checkpoints, resume snapshot and saved model
    live beside it): a second process of the same expid and model_root fails at once with a clear message instead
    of resuming from the first one's live snapshot and writing a duplicate results row. The lock dies with the
    process (flock), so a killed run never leaves a stale one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise ConfigError(f"{what}: already running ({holder}, lock {path}); two runs of one expid would share "
                              f"its checkpoints. Wait for it, or give this run another model_root") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        yield
    finally:
        f.close()  # releases the lock


def pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True  # someone else's live process (or not a pid): leave its files alone
    return True


def remove_stale_temps(directory, pattern, pid_of=None):
    """Remove the files / directories in `directory` matching `pattern` that a killed process left: all of them
    (call it while holding the lock that guards their writer), or with `pid_of(name) -> pid`, those whose process
    is gone. Returns what was removed (logged)."""
    removed = []
    for p in sorted(Path(directory).glob(pattern)) if Path(directory).is_dir() else []:
        if pid_of is not None:
            pid = pid_of(p.name)
            if pid is None or pid_alive(pid):
                continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    if removed:
        logging.getLogger("fuxi_like").warning("Removed %d file(s) a killed run left: %s", len(removed),
                                               ", ".join(p.name for p in removed[:5]))
    return removed


def stable_hash(obj, n=None):
    """sha256 of the canonical JSON of `obj` (dict key order does not matter)."""
    h = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
    return h[:n] if n else h


def file_fingerprint(path):
    """(path, size, mtime) of a file, or of every file under a directory."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        return [file_fingerprint(str(c)) for c in sorted(p.rglob("*")) if c.is_file()]
    if not p.exists():
        return [str(p), None]
    st = p.stat()
    return [str(p), st.st_size, st.st_mtime_ns]


def replace_dir(tmp, directory):
    """Move the finished directory `tmp` onto `directory`, replacing any old one (never half-written)."""

    tmp, directory = Path(tmp), Path(directory)
    old = directory.parent / f".{directory.name}.old-{os.getpid()}"
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
