"""Read a PyTorch `.pth` state dict into `{name: numpy array}` without torch, refusing anything but tensors.

A `.pth` file is a pickle, and unpickling runs whatever callables the file names. `load_state_dict` uses a
`pickle.Unpickler` whose `find_class` resolves only the handful of names a state dict needs, each to a
stand-in written here that only records arguments (`_rebuild_tensor_v2` -> a lazy tensor, `torch.FloatStorage`
-> a dtype marker, `collections.OrderedDict` -> itself); any other name (`os.system`, `builtins.eval`, a
`torch.nn` module class, `torch.storage._load_from_bytes`, which would call `torch.load` on nested bytes)
raises `UnsafePickleError` when the unpickler looks it up, before anything is called. Tensors are built
at the end from the raw storage bytes, with their sizes and strides checked against the storage length.

Both layouts `torch.save` writes are read (torch/serialization.py):

- zip (torch >= 1.6): `<archive>/data.pkl` (the object, storages as persistent ids
  `('storage', storage_type, key, location, numel)`), `<archive>/data/<key>` (raw bytes),
  `<archive>/byteorder` (optional, default little);
- legacy (torchvision's `mobilenet_v2-b0353104.pth`): five pickles in a row: magic number, protocol version
  1001, system info, the object (persistent ids `('storage', type, root_key, location, numel, view)`), the
  list of storage keys; then each storage as an int64 element count and its little-endian bytes.

Not read: the pre-1.0 tar format and tensors saved with `torch.storage._load_from_bytes`.
"""

import collections
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


class UnsafePickleError(DataError):
    """The pickle names a global outside the state-dict allow-list; nothing of it was called."""


class _Kind:
    """Stand-in for a torch storage class or dtype: the element type it stands for, nothing callable."""

    __slots__ = ("code", "torch_name")

    def __init__(self, torch_name, code):
        self.torch_name, self.code = torch_name, code

    def __repr__(self):
        return f"<stand-in {self.torch_name}>"


# numpy codes without byte order ('bf16': bfloat16, read as uint16 and widened to float32)
_CODES = {"float32": "f4", "float64": "f8", "float16": "f2", "bfloat16": "bf16", "int64": "i8", "int32": "i4",
          "int16": "i2", "int8": "i1", "uint8": "u1", "bool": "b1"}
_STORAGES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
             "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
             "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool"}


class _Storage:
    """A storage's raw bytes (filled after the object pickle in the legacy layout) or a view into another."""

    def __init__(self, code, numel, where, base=None, elem_offset=0):
        self.code, self.numel, self.where, self.base, self.elem_offset = code, numel, where, base, elem_offset
        self.data = None

    def raw(self):
        if self.base is not None:
            start = self.elem_offset * _itemsize(self.code)
            return self.base.raw()[start:start + self.numel * _itemsize(self.code)]
        if self.data is None:
            raise DataError(f"{self.where}: a storage the object refers to has no data in the file")
        return self.data


class _LazyTensor:
    __slots__ = ("code", "offset", "size", "storage", "stride")

    def __init__(self, storage, offset, size, stride, code):
        if not isinstance(storage, _Storage):
            raise DataError(f"tensor rebuilt from {type(storage).__name__}, not a storage")
        if not (_ints(size) and _ints(stride) and len(size) == len(stride) and isinstance(offset, int)):
            raise DataError(f"tensor with malformed size/stride/offset {size!r}/{stride!r}/{offset!r}")
        self.storage, self.offset, self.size, self.stride, self.code = storage, offset, tuple(size), tuple(stride), code

    def numpy(self, endian):
        raw = self.storage.raw()
        code = self.code
        flat = np.frombuffer(raw, dtype=np.dtype(endian + ("u2" if code == "bf16" else code)),
                             count=len(raw) // _itemsize(code))
        if 0 in self.size:
            out = np.zeros(self.size, flat.dtype)
        else:
            last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
            if self.offset < 0 or min(self.stride, default=0) < 0 or last >= flat.size:
                raise DataError(f"{self.storage.where}: tensor of size {self.size}, stride {self.stride}, offset "
                                f"{self.offset} reaches past its storage of {flat.size} elements")
            view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.size,
                                                   strides=[s * flat.itemsize for s in self.stride])
            out = np.array(view, dtype=flat.dtype.newbyteorder("="))
        if code == "bf16":
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out


def _ints(xs):
    return isinstance(xs, (tuple, list)) and all(isinstance(x, int) and x >= 0 for x in xs)


def _itemsize(code):
    return 2 if code == "bf16" else np.dtype(code).itemsize


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _LazyTensor(storage, storage_offset, size, stride, getattr(storage, "code", None))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _LazyTensor(storage, storage_offset, size, stride, getattr(storage, "code", None))


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    if not isinstance(dtype, _Kind) or not isinstance(storage, _Storage):
        raise DataError(f"tensor rebuilt with dtype {dtype!r}")
    # the storage is untyped (bytes): view it as the tensor's dtype
    if len(storage.raw()) % _itemsize(dtype.code):
        raise DataError(f"{storage.where}: storage of {len(storage.raw())} bytes is not a whole number of {dtype}")
    typed = _Storage(dtype.code, len(storage.raw()) // _itemsize(dtype.code), storage.where)
    typed.data = storage.raw()
    return _LazyTensor(typed, storage_offset, size, stride, dtype.code)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch", "UntypedStorage"): _Kind("torch.UntypedStorage", "u1"),
    ("torch.storage", "UntypedStorage"): _Kind("torch.storage.UntypedStorage", "u1"),
    **{("torch", s): _Kind(f"torch.{s}", _CODES[d]) for s, d in _STORAGES.items()},
    **{("torch", d): _Kind(f"torch.{d}", c) for d, c in _CODES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED` names; storages come from `persistent_load` of the layout being read."""

    def __init__(self, file, where, storage_for=None):
        super().__init__(file)
        self.where, self.storage_for = where, storage_for

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise UnsafePickleError(f"{self.where}: refuses to load '{module}.{name}': a state dict only needs "
                                    "tensors, storages and OrderedDict (nothing of the file was run)") from None

    def persistent_load(self, pid):
        if self.storage_for is None or not isinstance(pid, tuple) or not pid or pid[0] not in ("storage", b"storage"):
            raise UnsafePickleError(f"{self.where}: unexpected persistent id {str(pid)[:80]!r}")
        return self.storage_for(pid[1:])


def _load_one(f, where, storage_for=None):
    try:
        return _RestrictedUnpickler(f, where, storage_for).load()
    except (UnsafePickleError, DataError):
        raise
    except Exception as e:  # noqa: BLE001  a malformed pickle: opcodes the stand-ins cannot take, truncation
        raise DataError(f"{where}: not a readable PyTorch pickle ({type(e).__name__}: {e})") from None


def _str(x):
    return x.decode("ascii") if isinstance(x, bytes) else x


def _kind(storage_type, where):
    if not isinstance(storage_type, _Kind):
        raise DataError(f"{where}: storage of type {storage_type!r}")
    return storage_type.code


def _load_zip(path, where):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkls = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise DataError(f"{where}: a zip but not a torch.save archive (no single <archive>/data.pkl)")
        prefix = pkls[0][: -len("data.pkl")]
        endian = "<"
        if prefix + "byteorder" in names:
            endian = {"little": "<", "big": ">"}.get(zf.read(prefix + "byteorder").decode().strip())
            if endian is None:
                raise DataError(f"{where}: {prefix}byteorder is {zf.read(prefix + 'byteorder')!r}")
        storages = {}

        def storage_for(data):
            if len(data) != 4:
                raise DataError(f"{where}: storage id {data!r} has not 4 fields (type, key, location, numel)")
            storage_type, key, _location, numel = data
            key = _str(key)
            if key not in storages:
                code = _kind(storage_type, where)
                member = f"{prefix}data/{key}"
                if member not in names:
                    raise DataError(f"{where}: missing storage record {member}")
                raw = zf.read(member)
                if not isinstance(numel, int) or len(raw) != numel * _itemsize(code):
                    raise DataError(f"{where}: {member} holds {len(raw)} bytes, not {numel} x {_itemsize(code)}")
                storages[key] = _Storage(code, numel, where)
                storages[key].data = raw
            return storages[key]

        with zf.open(pkls[0]) as f:
            return _load_one(f, where, storage_for), endian


def _load_legacy(path, where):
    with open(path, "rb") as f:
        if _load_one(f, where) != LEGACY_MAGIC:
            raise DataError(f"{where}: not a PyTorch file (no torch.save magic number)")
        protocol = _load_one(f, where)
        if protocol != LEGACY_PROTOCOL:
            raise DataError(f"{where}: legacy torch.save protocol {protocol!r}, expected {LEGACY_PROTOCOL}")
        sys_info = _load_one(f, where)
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise DataError(f"{where}: written on a big-endian machine or without system info: not supported")
        storages = {}

        def storage_for(data):
            if len(data) != 5:
                raise DataError(f"{where}: storage id {data!r} has not 5 fields (type, key, location, numel, view)")
            storage_type, key, _location, numel, view = data
            key, code = _str(key), _kind(storage_type, where)
            if not isinstance(numel, int) or numel < 0:
                raise DataError(f"{where}: storage {key} with {numel!r} elements")
            if key not in storages:
                storages[key] = _Storage(code, numel, where)
            root = storages[key]
            if view is None:
                return root
            view_key, offset, size = view
            if not (isinstance(offset, int) and isinstance(size, int) and 0 <= offset and offset + size <= root.numel):
                raise DataError(f"{where}: storage view {view_key!r} ({offset}+{size}) outside storage {key}")
            return _Storage(code, size, where, base=root, elem_offset=offset)

        obj = _load_one(f, where, storage_for)
        keys = _load_one(f, where)
        if not isinstance(keys, list) or set(map(_str, keys)) != set(storages):
            raise DataError(f"{where}: the storage key list does not match the storages the object uses")
        for key in map(_str, keys):
            st = storages[key]
            head = f.read(8)
            if len(head) != 8:
                raise DataError(f"{where}: file ends before storage {key}")
            (count,) = struct.unpack("<q", head)
            if count != st.numel:
                raise DataError(f"{where}: storage {key} holds {count} elements, the object declares {st.numel}")
            st.data = f.read(count * _itemsize(st.code))
            if len(st.data) != count * _itemsize(st.code):
                raise DataError(f"{where}: file ends inside storage {key}")
        return obj, "<"


def _materialize(obj, endian):
    if isinstance(obj, _LazyTensor):
        return obj.numpy(endian)
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _materialize(v, endian)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _materialize(v, endian) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v, endian) for v in obj)
    return obj


def load(path):
    """The object a `.pth` file holds, tensors as numpy arrays (zip or legacy layout); see the module doc."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise DataError(f"{where}: no such file")
    obj, endian = _load_zip(path, where) if zipfile.is_zipfile(path) else _load_legacy(path, where)
    return _materialize(obj, endian)


def load_state_dict(path):
    """`{parameter name: numpy array}` of a `.pth` state dict (a flat mapping of tensors; `_metadata` dropped).

    Example:
        >>> from fuxi_like.pretrained import torch_pickle, weights_file
        >>> sd = torch_pickle.load_state_dict(weights_file("mobilenet-v2-imagenet"))  # doctest: +SKIP
        >>> sd["features.0.0.weight"].shape  # doctest: +SKIP
        (32, 3, 3, 3)
    """
    obj = load(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, np.ndarray):
            raise DataError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor: not a flat state dict "
                            "(a checkpoint that nests one: use torch_pickle.load and pick it out)")
        out[k] = v
    return out
