"""Saving and loading parameters, and whole checkpoints, without pickle.

File format ("glassgrad-state", versions 1 and 2)
-------------------------------------------------
A file is an ordinary NumPy ``.npz`` archive (an uncompressed zip of ``.npy``
entries, exactly what ``np.savez`` writes), readable with
``np.load(path, allow_pickle=False)``. It holds:

* one entry per saved array; object arrays are never written, so loading never needs
  pickle;
* a metadata entry ``__glassgrad__.npy``: a 1-d ``uint8`` array holding UTF-8 JSON
  ``{"format": "glassgrad-state", "version": ..., "keys": [...]}``, where ``keys``
  lists the array entries in saved order. Files without it are not glassgrad files.

Version 1 is a flat state dict (``model.state_dict()``): each entry is named after its
key (``<key>.npy``). Keys are non-empty strings without NUL characters that do not start
with ``__glassgrad``.

Version 2 is a checkpoint: nested dicts, lists and numbers with arrays as leaves, e.g.
``{"model": net, "optimizer": opt, "epoch": 3}`` (objects with ``state_dict()`` are
saved as their state). The metadata adds ``"tree"``: the structure in JSON, where a dict
is ``{"__dict__": [[key, value], ...]}`` (keys are strings or ints, so an optimizer's
integer keys come back as ints), a list is a JSON list, an array is
``{"__array__": entry}`` (entries are named by their path, e.g. ``model/fc.weight``),
and numbers, strings, booleans and ``null`` stand for themselves. Readers must refuse a
``version`` they do not know.

Loading reads the declared shape and dtype of every entry (its ``.npy`` header) before
reading any data: a file whose arrays would take more than ``max_bytes`` raises
``ValueError``, and so does an entry that declares more data than it holds.

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
import hashlib
import json
import os
import re
import secrets
import socket
import stat
import zipfile
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from . import _backend as backend

__all__ = ["DEFAULT_MAX_BYTES", "FORMAT", "VERSION", "load", "save"]

FORMAT = "glassgrad-state"
VERSION = 2
DEFAULT_MAX_BYTES = 2**31  # 2 GiB of arrays; load(..., max_bytes=None) lifts the limit
_META = "__glassgrad__"
_RESERVED_PREFIX = "__glassgrad"
# Temporary files are ".glassgrad-tmp-<host>-<pid>-<token>-<name>", so that a later save
# can tell its own leftovers (of a process killed mid-save) from anything else.
_TEMP_PREFIX = ".glassgrad-tmp-"
_TEMP_PATTERN = re.compile(r"^\.glassgrad-tmp-([0-9a-f]{8})-(\d+)-[0-9a-f]+-")


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Atomically write a state dict, a module, or a checkpoint to exactly ``path``.

    ``obj`` is a mapping of names to arrays (a state dict), an object with
    ``state_dict()`` (a module, an optimizer), or a checkpoint: a dict whose values are
    such objects, nested dicts and lists, arrays and plain numbers, for example
    ``gg.save({"model": net, "optimizer": opt, "epoch": 5}, path)``; ``gg.load`` then
    returns ``{"model": {...}, "optimizer": {...}, "epoch": 5}``.

    The file appears complete or not at all; no temporary file is left behind, and the
    temporary files of an earlier save that was killed are removed. Saving over an
    existing file keeps its permission bits.

    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "weights")
    >>> save({"w": np.ones(3)}, path)
    >>> os.listdir(os.path.dirname(path))
    ['weights']
    """
    arrays, tree = _collect(obj)  # validate everything before touching the disk
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    _remove_stale_temps(directory)
    tmp, handle = _create_temp(directory, os.path.basename(target), _mode_of(target))
    try:
        with handle:
            _write_archive(handle, arrays, tree)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def load(path: str | os.PathLike[str], *, max_bytes: int | None = DEFAULT_MAX_BYTES) -> Any:
    """Read a file written by :func:`save`: a state dict (arrays in saved order) or, for
    a checkpoint, the nested structure that was saved.

    Anything that is not a valid glassgrad file raises ``ValueError``, and so does a file
    whose arrays would take more than ``max_bytes`` in memory (2 GiB by default; ``None``
    for no limit), found from the headers before any array is allocated.

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
            return _read_archive(fh, max_bytes)
        except _TooLarge as err:
            raise ValueError(f"{name}: {err}") from None
        except _BadFile as err:
            raise ValueError(f"{name}: not a valid glassgrad state file: {err}") from None
        except Exception as err:
            # A damaged archive can fail in any layer (zip, zlib, npy header); all of
            # them mean the same thing to the caller.
            raise ValueError(f"{name}: corrupt or unreadable file: {err}") from err


# ------------------------------------------------------------------------ writing


def _collect(obj: Any) -> tuple[dict[str, np.ndarray], Any]:
    """The arrays to write, by entry name, and the checkpoint's tree (None if flat)."""
    state = obj.state_dict() if hasattr(obj, "state_dict") else obj
    if not isinstance(state, Mapping):
        raise TypeError(
            f"expected a mapping of name -> array or an object with state_dict(), "
            f"got {type(obj).__name__}"
        )
    if all(_is_array_leaf(v) for v in state.values()):
        return {_check_key(key): _to_array(key, value) for key, value in state.items()}, None
    arrays: dict[str, np.ndarray] = {}
    return arrays, _encode(state, (), arrays)


def _is_array_leaf(value: Any) -> bool:
    if isinstance(value, Mapping) or hasattr(value, "state_dict"):
        return False
    if isinstance(value, list | tuple):  # a list of numbers is an array; of dicts, a tree
        return all(isinstance(v, int | float | complex | np.generic) for v in value)
    return True


def _encode(value: Any, path: tuple[str, ...], arrays: dict[str, np.ndarray]) -> Any:
    """The JSON tree of a checkpoint; its arrays go into ``arrays`` under path names."""
    if hasattr(value, "state_dict"):
        value = value.state_dict()
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, str | int | np.integer):
                raise ValueError(f"checkpoint keys must be strings or ints, got key {key!r} "
                                 f"at {'/'.join(path) or 'the top'}")
            key = _check_key(key) if isinstance(key, str) else int(key)
            items.append([key, _encode(item, (*path, str(key)), arrays)])
        return {"__dict__": items}
    if isinstance(value, list | tuple):
        return [_encode(item, (*path, str(i)), arrays) for i, item in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    name = "/".join(path)
    while name in arrays:
        name += "_"
    arrays[name] = _to_array(name, value)
    return {"__array__": name}


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
    if not backend.is_array(value):
        value = getattr(value, "data", value)
    array = np.asarray(value)  # also a plain ndarray for a tensor's watched .data
    if array.dtype.hasobject:
        raise ValueError(f"state key {key!r} holds an object array, which cannot be saved")
    return array


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _mode_of(target: str) -> int | None:
    """The permission bits of an existing target, which the new file keeps."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return None


def _create_temp(directory: str, base: str, mode: int | None) -> tuple[str, IO[bytes]]:
    """A fresh file next to the target, with the target's permission bits if it exists.

    ``tempfile`` would create it 0600, which ``os.replace`` would carry over to a new
    file; ``os.open`` with 0666 gives what ``open(path, "wb")`` would. Over an existing
    file the temporary one starts 0600 and gets that file's bits before any data is
    written, so a private file's new content is never readable by others, even briefly.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    prefix = f"{_TEMP_PREFIX}{_host_tag()}-{os.getpid()}-"
    while True:
        tmp = os.path.join(directory, f"{prefix}{secrets.token_hex(6)}-{base}")
        try:
            fd = os.open(tmp, flags, 0o666 if mode is None else 0o600)
        except FileExistsError:
            continue
        if mode is not None:
            with contextlib.suppress(OSError):  # a file system without modes
                os.chmod(tmp, mode)
        return tmp, os.fdopen(fd, "wb")


def _remove_stale_temps(directory: str) -> None:
    """Delete this host's temporary files whose saving process no longer exists."""
    host = _host_tag()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = _TEMP_PATTERN.match(name)
        if match and match.group(1) == host and not _alive(int(match.group(2))):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":
        return True  # on Windows os.kill(pid, 0) would terminate the process: never ask
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, OverflowError):
        return True  # exists (another user's) or cannot tell: keep the file
    return True


def _write_archive(handle: IO[bytes], arrays: dict[str, np.ndarray], tree: Any) -> None:
    # Same layout as np.savez, written by hand because np.savez takes the names as
    # keyword arguments, so keys such as "file" or "allow_pickle" would collide.
    header: dict[str, Any] = {"format": FORMAT, "version": 1, "keys": list(arrays)}
    if tree is not None:
        header.update(version=2, tree=tree)
    meta = json.dumps(header)
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


class _TooLarge(Exception):
    """The arrays a file declares exceed the caller's limit."""


def _read_archive(fh: IO[bytes], max_bytes: int | None) -> Any:
    if fh.read(6) == b"\x93NUMPY":
        raise _BadFile("it is a single .npy array, not an .npz archive")
    fh.seek(0)
    with zipfile.ZipFile(fh) as zf:
        entries = {info.filename[:-4]: info for info in zf.infolist()
                   if info.filename.endswith(".npy")}
        if _META not in entries:
            raise _BadFile(f"no {_META!r} metadata entry (a foreign .npz file?)")
        total = sum(_declared_bytes(zf, info) for info in entries.values())
        if max_bytes is not None and total > max_bytes:
            raise _TooLarge(f"its arrays would take {total:,} bytes, more than max_bytes="
                            f"{max_bytes:,}; pass a larger max_bytes (or None) to load a "
                            "file you trust")
        meta = _read_meta(_read_entry(zf, entries[_META]))
        keys = _check_meta(meta, [name for name in entries if name != _META])
        arrays = {key: _read_entry(zf, entries[key]) for key in keys}
    if meta["version"] == 1:
        return arrays
    return _decode(meta["tree"], arrays)


def _declared_bytes(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """An entry's data size from its ``.npy`` header alone, checked against the zip's."""
    with zf.open(info) as entry:
        version = np.lib.format.read_magic(entry)
        read = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read is None:
            raise _BadFile(f"entry {info.filename!r} has .npy version {version}")
        shape, _, dtype = read(entry)
        header_size = entry.tell()
    if dtype.hasobject:
        raise _BadFile(f"entry {info.filename!r} is an object array")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes != info.file_size - header_size:
        raise _BadFile(f"entry {info.filename!r} declares shape {shape} of {dtype} "
                       f"({nbytes:,} bytes) but holds {info.file_size - header_size:,} bytes")
    return nbytes


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with zf.open(info) as entry:
        return np.lib.format.read_array(entry, allow_pickle=False)


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


def _check_meta(meta: dict[str, Any], stored: list[str]) -> list[str]:
    if meta.get("format") != FORMAT:
        raise _BadFile(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
    version = meta.get("version")
    if type(version) is not int or not 1 <= version <= VERSION:
        raise _BadFile(f"unsupported version {version!r} (this glassgrad reads 1 to {VERSION})")
    keys = meta.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _BadFile("metadata 'keys' is not a list of strings")
    if len(set(keys)) != len(keys) or sorted(keys) != sorted(stored):
        raise _BadFile(f"metadata lists keys {keys} but the archive holds {stored}")
    if version == 2 and "tree" not in meta:
        raise _BadFile("a version 2 file without its 'tree'")
    return keys


def _decode(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(tree, list):
        return [_decode(item, arrays) for item in tree]
    if isinstance(tree, dict):
        if set(tree) == {"__array__"} and tree["__array__"] in arrays:
            return arrays[tree["__array__"]]
        items = tree.get("__dict__")
        if set(tree) != {"__dict__"} or not isinstance(items, list) or not all(
                isinstance(i, list) and len(i) == 2 and isinstance(i[0], str | int)
                for i in items):
            raise _BadFile(f"malformed tree node {str(tree)[:80]}")
        return {key: _decode(value, arrays) for key, value in items}
    return tree
