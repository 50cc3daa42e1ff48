"""Tests for pickle-free saving and loading (glassgrad._serialize)."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from glassgrad._serialize import load, save


def _state() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "w64": rng.normal(size=(3, 4)),
        "w32": rng.normal(size=5).astype(np.float32),
        "counts": np.arange(6, dtype=np.int64).reshape(2, 3),
        "step": np.array(7),
        "scale": np.array(0.5, dtype=np.float32),
        "fortran": np.asfortranarray(rng.normal(size=(2, 3))),
        "empty": np.zeros((0, 2)),
    }


def _assert_same(loaded: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert list(loaded) == list(expected)
    for key, array in expected.items():
        assert loaded[key].dtype == np.asarray(array).dtype, key
        assert loaded[key].shape == np.shape(array), key
        np.testing.assert_array_equal(loaded[key], array)


def test_roundtrip_keeps_dtypes_shapes_and_order(tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    save(_state(), path)
    _assert_same(load(path), _state())


def test_writes_exactly_the_given_path(tmp_path: Path) -> None:
    save({"w": np.ones(2)}, str(tmp_path / "model.gg"))
    assert os.listdir(tmp_path) == ["model.gg"]
    np.testing.assert_array_equal(load(tmp_path / "model.gg")["w"], np.ones(2))


def test_file_is_a_plain_npz_with_metadata(tmp_path: Path) -> None:
    path = tmp_path / "m.gg"
    save({"w": np.ones(2)}, path)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz["__glassgrad__"].tobytes())
        np.testing.assert_array_equal(npz["w"], np.ones(2))
    assert meta == {"format": "glassgrad-state", "version": 1, "keys": ["w"]}


def test_overwrite_replaces_old_content(tmp_path: Path) -> None:
    path = tmp_path / "m.gg"
    save({"a": np.ones(1)}, path)
    save({"b": np.zeros(1)}, path)
    assert list(load(path)) == ["b"]
    assert os.listdir(tmp_path) == ["m.gg"]


def test_keys_that_clash_with_savez_parameters(tmp_path: Path) -> None:
    state = {"file": np.ones(1), "allow_pickle": np.zeros(1), "a/b.npy": np.arange(2)}
    save(state, tmp_path / "m.gg")
    _assert_same(load(tmp_path / "m.gg"), state)


def test_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "m.gg"
    save({"ok": np.ones(1)}, path)
    with pytest.raises(ValueError, match="'bad'.*object array"):
        save({"ok": np.ones(1), "bad": np.array([{"x": 1}], dtype=object)}, path)
    assert os.listdir(tmp_path) == ["m.gg"]
    assert list(load(path)) == ["ok"]  # the previous file is untouched


def test_failure_while_writing_removes_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk on fire"):
        save({"w": np.ones(3)}, tmp_path / "m.gg")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("key", ["", "__glassgrad__", "__glassgrad_x", 3, "a\0b"])
def test_bad_keys_are_refused(tmp_path: Path, key: object) -> None:
    with pytest.raises(ValueError, match="key"):
        save({key: np.ones(1)}, tmp_path / "m.gg")
    assert os.listdir(tmp_path) == []


def test_refuses_non_mappings(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="state_dict"):
        save([np.ones(1)], tmp_path / "m.gg")


class Tensor:
    def __init__(self, data: np.ndarray) -> None:
        self.data = data


class Model:
    def state_dict(self) -> dict[str, object]:
        return {"layer.weight": Tensor(np.eye(2)), "layer.bias": Tensor(np.zeros(2))}


def test_object_with_state_dict_and_tensor_values(tmp_path: Path) -> None:
    save(Model(), tmp_path / "m.gg")
    loaded = load(tmp_path / "m.gg")
    assert list(loaded) == ["layer.weight", "layer.bias"]
    np.testing.assert_array_equal(loaded["layer.weight"], np.eye(2))


def test_plain_values_and_numpy_scalars(tmp_path: Path) -> None:
    save({"lr": 0.1, "steps": [1, 2], "scalar": np.float32(2.5)}, tmp_path / "m.gg")
    loaded = load(tmp_path / "m.gg")
    assert loaded["lr"] == 0.1 and loaded["lr"].shape == ()
    np.testing.assert_array_equal(loaded["steps"], [1, 2])
    assert loaded["scalar"].dtype == np.float32


def test_empty_state(tmp_path: Path) -> None:
    save({}, tmp_path / "m.gg")
    assert load(tmp_path / "m.gg") == {}


# ----------------------------------------------------------------- bad files


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.gg")


def test_every_truncation_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "m.gg"
    save({"w": np.arange(4.0), "b": np.ones(2)}, path)
    content = path.read_bytes()
    bad = tmp_path / "bad.gg"
    for size in range(len(content)):
        bad.write_bytes(content[:size])
        with pytest.raises(ValueError, match="bad.gg"):
            load(bad)


def test_flipped_bytes_never_crash_differently(tmp_path: Path) -> None:
    path = tmp_path / "m.gg"
    save({"w": np.arange(4.0)}, path)
    content = path.read_bytes()
    bad = tmp_path / "bad.gg"
    for i in range(0, len(content), 3):
        bad.write_bytes(content[:i] + bytes([content[i] ^ 0xFF]) + content[i + 1 :])
        try:
            load(bad)
        except ValueError:
            pass  # a flip inside array data can still load, which is fine


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.gg"
    path.write_bytes(np.random.default_rng(1).bytes(500))
    with pytest.raises(ValueError, match="noise.gg"):
        load(path)


def test_foreign_npz(tmp_path: Path) -> None:
    path = tmp_path / "foreign.npz"
    np.savez(path, w=np.ones(2))
    with pytest.raises(ValueError, match="metadata"):
        load(path)


def test_single_npy_file(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    np.save(path, np.ones(2))
    with pytest.raises(ValueError, match="single .npy"):
        load(path)


def _archive_with(path: Path, meta: object, **arrays: np.ndarray) -> None:
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    np.savez(path, __glassgrad__=np.frombuffer(raw, dtype=np.uint8), **arrays)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"format": "other", "version": 1, "keys": ["w"]}, "format"),
        ({"format": "glassgrad-state", "version": 3, "keys": ["w"]}, "version 3"),
        ({"format": "glassgrad-state", "version": 2, "keys": ["w"]}, "tree"),
        ({"format": "glassgrad-state", "version": True, "keys": ["w"]}, "version"),
        ({"format": "glassgrad-state", "version": 1, "keys": ["w", "x"]}, "keys"),
        ({"format": "glassgrad-state", "version": 1, "keys": "w"}, "keys"),
        ({"format": "glassgrad-state", "version": 1, "keys": ["w", "w"]}, "keys"),
        ({"format": "glassgrad-state", "version": 1, "keys": []}, "keys"),
        (["not", "a", "dict"], "JSON object"),
        (b"{not json", "JSON"),
        (b"\xff\xfe", "JSON"),
    ],
)
def test_bad_metadata(tmp_path: Path, meta: object, message: str) -> None:
    path = tmp_path / "m.npz"  # np.savez would add ".npz" to any other name
    _archive_with(path, meta, w=np.ones(2))
    with pytest.raises(ValueError, match=message):
        load(path)


class Boom:
    """Unpickling this would run code; loading must never get that far."""

    executed = False

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (Boom._explode, ())

    @staticmethod
    def _explode() -> None:
        Boom.executed = True


def test_pickled_object_array_is_refused_without_executing(tmp_path: Path) -> None:
    payload = io.BytesIO()
    np.save(payload, np.array([Boom()], dtype=object), allow_pickle=True)
    assert b"_explode" in payload.getvalue()  # the payload really holds a pickle
    path = tmp_path / "evil.gg"
    meta = {"format": "glassgrad-state", "version": 1, "keys": ["w"]}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__glassgrad__.npy", _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8)))
        zf.writestr("w.npy", payload.getvalue())
    with pytest.raises(ValueError, match="evil.gg"):
        load(path)
    assert not Boom.executed


def test_pickle_file_is_refused_without_executing(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ValueError, match="evil.pkl"):
        load(path)
    assert not Boom.executed


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# ----------------------------------------------------------------- checkpoints


def test_checkpoint_of_model_optimizer_and_numbers_round_trips(tmp_path: Path) -> None:
    import glassgrad as gg

    net = gg.nn.Sequential(gg.nn.Linear(3, 2, rng=0), gg.nn.BatchNorm1d(2))
    opt = gg.optim.Adam(net.parameters(), lr=0.01)
    gg.nn.mse_loss(net(np.ones((4, 3))), np.zeros((4, 2))).backward()
    opt.step()
    path = tmp_path / "ck.gg"
    save({"model": net, "optimizer": opt, "epoch": 3, "note": "x", "none": None}, path)
    ck = load(path)
    assert ck["epoch"] == 3 and ck["note"] == "x" and ck["none"] is None
    assert list(ck["model"]) == list(net.state_dict())
    assert list(ck["optimizer"]["state"]) == list(range(4))  # int keys come back as ints
    assert ck["optimizer"]["param_groups"][0]["betas"] == [0.9, 0.999]
    np.testing.assert_array_equal(ck["optimizer"]["state"][2]["exp_avg"],
                                  opt.state[2]["exp_avg"])
    fresh = gg.nn.Sequential(gg.nn.Linear(3, 2, rng=1), gg.nn.BatchNorm1d(2))
    fresh.load_state_dict(ck["model"])
    fresh_opt = gg.optim.Adam(fresh.parameters())
    fresh_opt.load_state_dict(ck["optimizer"])
    assert fresh_opt.lr == 0.01 and fresh_opt.betas == (0.9, 0.999)
    with np.load(path, allow_pickle=False) as npz:  # still a plain .npz
        assert "model/0.weight" in npz.files and "optimizer/state/0/exp_avg" in npz.files


def test_checkpoint_keys_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="strings or ints"):
        save({"a": {(1, 2): np.ones(1)}}, tmp_path / "m.gg")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------- attacks


def _crafted(path: Path, shape: tuple[int, ...], data: bytes) -> None:
    """A glassgrad file whose entry 'w' declares ``shape`` float32 but holds ``data``."""
    meta = {"format": "glassgrad-state", "version": 1, "keys": ["w"]}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__glassgrad__.npy", _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8)))
        with zf.open(zipfile.ZipInfo("w.npy"), "w", force_zip64=True) as entry:
            entry.write(header.getvalue())
            entry.write(data)


def _peak_bytes(fn) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    except ValueError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_a_header_declaring_gigabytes_is_refused_without_allocating(tmp_path: Path) -> None:
    path = tmp_path / "huge.gg"
    _crafted(path, (500_000_000,), b"\0" * 1_900_000)  # says 2 GB, holds 1.9 MB
    assert path.stat().st_size < 2_000_000
    with pytest.raises(ValueError, match="huge.gg.*declares.*2,000,000,000 bytes"):
        load(path, max_bytes=None)  # even with no limit: the data is not there
    assert _peak_bytes(lambda: load(path)) < 10_000_000


def test_a_compressed_bomb_is_refused_by_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.gg"
    n = 16 * 2**20  # 64 MiB of float32 zeros, a few hundred KB compressed
    meta = {"format": "glassgrad-state", "version": 1, "keys": ["w"]}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__glassgrad__.npy", _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8)))
        with zf.open("w.npy", "w", force_zip64=True) as entry:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": "<f4", "fortran_order": False, "shape": (n,)})
            entry.write(header.getvalue())
            chunk = b"\0" * 2**20
            for _ in range(n * 4 // len(chunk)):
                entry.write(chunk)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ValueError, match=r"67,108,\d{3} bytes, more than max_bytes=1,000,000"):
        load(path, max_bytes=1_000_000)
    assert _peak_bytes(lambda: load(path, max_bytes=1_000_000)) < 10_000_000
    assert load(path, max_bytes=None)["w"].shape == (n,)  # allowed when asked for


def test_max_bytes_counts_every_array(tmp_path: Path) -> None:
    path = tmp_path / "m.gg"
    save({"a": np.zeros(100), "b": np.zeros(100)}, path)  # 1600 bytes of arrays
    assert list(load(path, max_bytes=1700)) == ["a", "b"]
    with pytest.raises(ValueError, match="max_bytes"):
        load(path, max_bytes=1500)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saving_over_a_file_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "secret.gg"
    save({"w": np.ones(2)}, path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # a new file: as open() makes it
    path.chmod(0o600)
    save({"w": np.zeros(2)}, path)
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o640)
    save({"w": np.zeros(3)}, path)
    assert path.stat().st_mode & 0o777 == 0o640 and load(path)["w"].shape == (3,)


@pytest.mark.skipif(os.name != "posix", reason="kill -9 and pids")
def test_temp_files_of_a_killed_save_are_removed_by_the_next_save(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import os, signal, numpy as np\n"
            "from glassgrad import _serialize\n"
            "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # dies mid-save\n"
            f"_serialize.save({{'w': np.ones(1000)}}, {str(tmp_path / 'm.gg')!r})\n")
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", code], env=env, timeout=60)
    assert result.returncode == -9
    leftovers = os.listdir(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(".glassgrad-tmp-")
    live = leftovers[0].split("-")
    live[3] = str(os.getpid())  # the same name, but of a process that is alive
    (tmp_path / "-".join(live)).write_bytes(b"in progress")
    (tmp_path / "notes.tmp").write_bytes(b"not ours")
    save({"w": np.zeros(2)}, tmp_path / "other.gg")
    assert sorted(os.listdir(tmp_path)) == sorted(["-".join(live), "notes.tmp", "other.gg"])


def test_loading_complex_values_into_a_real_model_changes_nothing(tmp_path: Path) -> None:
    import glassgrad as gg

    net = gg.nn.Linear(2, 2, rng=0)
    before = net.state_dict()
    save({"weight": before["weight"] + 0.5j, "bias": before["bias"]}, tmp_path / "c.gg")
    with pytest.raises(ValueError, match="complex"):
        net.load_state_dict(load(tmp_path / "c.gg"))
    np.testing.assert_array_equal(net.weight.data, before["weight"])
