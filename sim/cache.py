"""A disk cache for a run's deterministic set-up (the fleet's trained value functions and
richardsonpy households, the feeders): stored under the hash of everything that determines
them.

Location: ``$BLOCKHEMS_CACHE`` if set, else ``~/.cache/blockhems``; ``BLOCKHEMS_CACHE=off``
turns the cache off. An entry's key is the SHA-256 of its kind, the source code of the
modules that compute it (so an edit to them never returns a stale result) and every input
(arrays by dtype, shape and bytes). Each entry is one file, written to a temporary file in
the same folder and renamed into place (atomic on POSIX), so concurrent runs at worst compute
the same entry twice and a reader never sees half a file. Arrays go to ``.npz`` files that
hold their own key and a SHA-256 of the arrays; objects (:func:`cached_object`, a feeder's
pandapower net) to ``.pickle`` files that start with the key and a SHA-256 of the pickled
bytes, checked before anything is unpickled. An entry that fails to load or to verify (a
truncated or altered file) is treated as missing, recomputed and rewritten.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ENV = "BLOCKHEMS_CACHE"
_OFF = ("off", "0", "false", "no")
_KEY, _DIGEST = "__key__", "__digest__"


def cache_dir() -> Path | None:
    """The cache folder, or None when ``$BLOCKHEMS_CACHE`` turns the cache off."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in _OFF:
        return None
    if value:
        return Path(value).expanduser()
    try:
        return Path.home() / ".cache" / "blockhems"
    except RuntimeError:  # no home folder to be found: no cache
        return None


def source_digest(modules: Iterable[ModuleType]) -> str:
    """SHA-256 of the modules' source files (the code that computes an entry)."""
    h = hashlib.sha256()
    for module in modules:
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()


def _update(h: Any, value: Any) -> None:
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        h.update(f"nd:{arr.dtype.str}:{arr.shape}:".encode())
        h.update(arr.tobytes())
    elif isinstance(value, dict):
        h.update(f"dict:{len(value)}:".encode())
        for k in sorted(value):
            h.update(f"{k!r}=".encode())
            _update(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"seq:{len(value)}:".encode())
        for item in value:
            _update(h, item)
    elif isinstance(value, (str, int, float, bool, type(None), np.integer, np.floating)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    else:
        raise TypeError(f"cannot hash a {type(value).__name__} for the cache key")


def cache_key(kind: str, code: str, inputs: Any) -> str:
    """SHA-256 hex key of an entry: its kind, the code's digest and the inputs."""
    h = hashlib.sha256(f"blockhems-cache-v1:{kind}:{code}:".encode())
    _update(h, inputs)
    return h.hexdigest()


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    _update(h, arrays)
    return h.hexdigest()


def _load(path: Path, key: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
        return None
    stored_key, digest = arrays.pop(_KEY, None), arrays.pop(_DIGEST, None)
    if stored_key is None or digest is None or str(stored_key) != key:
        return None
    if str(digest) != _digest(arrays):
        return None
    return arrays


def _write_atomically(folder: Path, path: Path, write: Callable[[Any], None]) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.stem}.", suffix=".tmp")
    except OSError:
        return  # a read-only or full cache only costs the next run the computation
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def _store(folder: Path, path: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    extra = {_KEY: np.array(key), _DIGEST: np.array(_digest(arrays))}
    _write_atomically(folder, path, lambda f: np.savez(f, **arrays, **extra))


def cached_arrays(
    kind: str, code: str, inputs: Any, compute: Callable[[], dict[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], bool]:
    """``(arrays, hit)``: the entry for ``(kind, code, inputs)`` from the cache, or
    ``compute()`` stored there. ``compute`` must return named numpy arrays (no objects)."""
    folder = cache_dir()
    if folder is None:
        return compute(), False
    key = cache_key(kind, code, inputs)
    folder = folder / kind
    path = folder / f"{key}.npz"
    if path.exists():
        arrays = _load(path, key)
        if arrays is not None:
            return arrays, True
    arrays = {name: np.asarray(value) for name, value in compute().items()}
    _store(folder, path, key, arrays)
    return arrays, False


_MEMO: dict[str, bytes] = {}  # pickled objects already read or built in this process


def cached_object(kind: str, code: str, inputs: Any, compute: Callable[[], Any]) -> Any:
    """A fresh copy of the object for ``(kind, code, inputs)``: unpickled from this process's
    memo or the cache (after checking its digest), or ``compute()`` stored in both. Every call
    returns its own copy, so callers may mutate it."""
    folder = cache_dir()
    if folder is None:
        return compute()
    key = cache_key(kind, code, inputs)
    blob = _MEMO.get(key)
    path = folder / kind / f"{key}.pickle"
    if blob is None and path.exists():
        try:
            raw = path.read_bytes()
        except OSError:
            raw = b""
        head, _, body = raw.partition(b"\n")
        if head == f"{key} {hashlib.sha256(body).hexdigest()}".encode():
            blob = body
    if blob is None:
        blob = pickle.dumps(compute(), protocol=pickle.HIGHEST_PROTOCOL)
        head = f"{key} {hashlib.sha256(blob).hexdigest()}\n".encode()
        _write_atomically(path.parent, path, lambda f: f.write(head + blob))
    _MEMO[key] = blob
    return pickle.loads(blob)
