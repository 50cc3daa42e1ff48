"""Saving and loading parameters without pickle.

File format ("glassgrad-state", version 1)
------------------------------------------
A file is an ordinary NumPy ``.npz`` archive (an uncompressed zip of ``.npy``
entries, exactly what ``np.savez`` writes), readable with
``np.load(path, allow_pickle=False)``. It holds:

* one entry per saved array, named after its key (``<key>.npy``); object arrays are
  never written, so loading never needs pickle;
* a metadata entry ``__glassgrad__.npy``: a 1-d ``uint8`` array holding UTF-8 JSON
  ``{"format": "glassgrad-state", "version": 1, "keys": [...]}``, where ``keys``
  lists the array entries in saved order. Files without it are not glassgrad files.

Keys are non-empty strings without NUL characters that do not start with
``__glassgrad``. Readers must refuse a higher ``version`` they do not know.

>>> import os, tempfile
>>> import numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "model.gg")
>>> save({"w": np.eye(2), "b": np.zeros(2)}, path)
>>> state = load(path)
>>> list(state), state["w"].shape
(['w', 'b'], (2, 2))
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

__all__ = ["FORMAT", "VERSION", "load", "save"]

FORMAT = "glassgrad-state"
VERSION = 1
_META = "__glassgrad__"
_RESERVED_PREFIX = "__glassgrad"


def save(module_or_state: Any, path: str | os.PathLike[str]) -> None:
    """Atomically write a state dict (or ``obj.state_dict()``) to exactly ``path``.

    Values may be arrays, array-likes or tensors (anything with a ``.data`` array).
    The file appears complete or not at all; no temporary file is left behind.

    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "weights")
    >>> save({"w": np.ones(3)}, path)
    >>> os.listdir(os.path.dirname(path))
    ['weights']
    """
    arrays = _collect(module_or_state)  # validate everything before touching the disk
    target = os.path.abspath(os.fspath(path))
    tmp, handle = _create_temp(os.path.dirname(target), os.path.basename(target))
    try:
        with handle:
            _write_archive(handle, arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(os.path.dirname(target))


def load(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a file written by :func:`save`; arrays come back fully loaded, in saved order.

    Anything that is not a valid glassgrad state file raises ``ValueError``.

    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "s.npz")
    >>> save({"step": np.array(7)}, path)
    >>> load(path)
    {'step': array(7)}
    """
    name = os.fspath(path)
    with open(name, "rb") as fh:  # open errors (missing file, permissions) propagate
        try:
            return _read_archive(fh)
        except _BadFile as err:
            raise ValueError(f"{name}: not a valid glassgrad state file: {err}") from None
        except Exception as err:
            # A damaged archive can fail in any layer (zip, zlib, npy header); all of
            # them mean the same thing to the caller.
            raise ValueError(f"{name}: corrupt or unreadable file: {err}") from err


# ------------------------------------------------------------------------ writing


def _collect(module_or_state: Any) -> dict[str, np.ndarray]:
    state = module_or_state
    if hasattr(state, "state_dict"):
        state = state.state_dict()
    if not isinstance(state, Mapping):
        raise TypeError(
            f"expected a mapping of name -> array or an object with state_dict(), "
            f"got {type(module_or_state).__name__}"
        )
    return {_check_key(key): _to_array(key, value) for key, value in state.items()}


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"state keys must be non-empty strings, got {key!r}")
    if key.startswith(_RESERVED_PREFIX):
        raise ValueError(f"state key {key!r} is reserved (starts with {_RESERVED_PREFIX!r})")
    if "\0" in key:  # zip readers cut names at NUL
        raise ValueError(f"state key {key!r} contains a NUL character")
    return key


def _to_array(key: str, value: Any) -> np.ndarray:
    # ndarrays (and NumPy scalars) have a .data memoryview; only unwrap other objects.
    if not isinstance(value, np.ndarray | np.generic):
        value = getattr(value, "data", value)
    array = np.asarray(value)
    if array.dtype.hasobject:
        raise ValueError(f"state key {key!r} holds an object array, which cannot be saved")
    return array


def _create_temp(directory: str, base: str) -> tuple[str, IO[bytes]]:
    """A fresh file next to the target, created with the usual umask-based mode.

    ``tempfile`` would create it 0600, which ``os.replace`` would carry over to the
    final file; a plain ``os.open`` with 0666 gives what ``open(path, "wb")`` would.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        return tmp, os.fdopen(fd, "wb")


def _write_archive(handle: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    # Same layout as np.savez, written by hand because np.savez takes the names as
    # keyword arguments, so keys such as "file" or "allow_pickle" would collide.
    meta = json.dumps({"format": FORMAT, "version": VERSION, "keys": list(arrays)})
    entries = {_META: np.frombuffer(meta.encode(), dtype=np.uint8), **arrays}
    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, array in entries.items():
            with zf.open(key + ".npy", mode="w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, array, allow_pickle=False)


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable; not possible on every platform (e.g. Windows).
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------ reading


class _BadFile(Exception):
    """A readable archive whose content is not a glassgrad state."""


def _read_archive(fh: IO[bytes]) -> dict[str, np.ndarray]:
    data = np.load(fh, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise _BadFile("it is a single .npy array, not an .npz archive")
    with data:
        keys = _read_keys(data)
        state = {key: data[key] for key in keys}  # indexing reads the whole entry
    for key, array in state.items():
        if array.dtype.hasobject:
            raise _BadFile(f"entry {key!r} is an object array")
    return state


def _read_keys(data: np.lib.npyio.NpzFile) -> list[str]:
    if _META not in data.files:
        raise _BadFile(f"no {_META!r} metadata entry (a foreign .npz file?)")
    meta = _read_meta(data[_META])
    if meta.get("format") != FORMAT:
        raise _BadFile(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
    version = meta.get("version")
    if type(version) is not int or not 1 <= version <= VERSION:
        raise _BadFile(f"unsupported version {version!r} (this glassgrad reads {VERSION})")
    keys = meta.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _BadFile("metadata 'keys' is not a list of strings")
    stored = [name for name in data.files if name != _META]
    if len(set(keys)) != len(keys) or sorted(keys) != sorted(stored):
        raise _BadFile(f"metadata lists keys {keys} but the archive holds {stored}")
    return keys


def _read_meta(raw: np.ndarray) -> dict[str, Any]:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _BadFile("metadata entry is not a 1-d uint8 array")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except ValueError as err:  # includes JSON and UTF-8 decoding errors
        raise _BadFile(f"metadata is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise _BadFile("metadata is not a JSON object")
    return meta
