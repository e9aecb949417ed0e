"""Read the weights out of a TorchScript archive (e.g. OpenAI's ``RN50.pt``) without running its code.

A TorchScript archive is a zip holding ``<name>/data.pkl`` (the module tree, pickled), ``<name>/data/<key>``
(raw tensor bytes) and ``<name>/code/`` (TorchScript source). ``torch.jit.load`` compiles and runs that
code, and ``torch.load(weights_only=True)`` refuses such archives, so netfloc unpickles ``data.pkl`` itself
with a restricted unpickler (the "restricting globals" recipe of the Python ``pickle`` documentation):
module objects (``__torch__.*`` classes) become inert attribute holders, tensors are rebuilt from their raw
bytes, and any other global is refused. The code folder is never read.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from netfloc.errors import NetflocError, first_line

_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch.jit._pickle", "build_intlist"): list,
    ("torch.jit._pickle", "build_doublelist"): list,
    ("torch.jit._pickle", "build_boollist"): list,
    ("torch.jit._pickle", "build_tensorlist"): list,
    ("torch.jit._pickle", "restore_type_tag"): lambda value, _type_name: value,
}
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class ScriptObject:
    """Stand-in for a pickled TorchScript module: keeps its attributes, runs nothing."""

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}


class _StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, prefix: str, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.prefix = prefix
        self.storages: dict[str, torch.UntypedStorage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__"):
            return ScriptObject
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, _numel = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("storage without a known tensor type")
        if key not in self.storages:
            raw = bytearray(self.archive.read(f"{self.prefix}data/{key}"))
            bytes_ = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            self.storages[key] = bytes_.untyped_storage()
        return torch.storage.TypedStorage(wrap_storage=self.storages[key], dtype=storage_type.dtype, _internal=True)


def is_torchscript_archive(path: Path) -> bool:
    """Whether ``path`` is a zip with the layout of a TorchScript archive (``constants.pkl`` + ``code/``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(name.endswith("/constants.pkl") for name in names) and any("/code/" in name for name in names)


def read_torchscript_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Parameters and buffers of the TorchScript module in ``path``, by dotted name, as a state_dict."""
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise NetflocError(f"{path} is not a TorchScript archive with one data.pkl; give a plain state_dict")
        prefix = pickles[0].removesuffix("data.pkl")
        try:
            root = _RestrictedUnpickler(archive, prefix, archive.read(pickles[0])).load()
        except (
            pickle.UnpicklingError,
            zipfile.BadZipFile,
            AttributeError,
            IndexError,
            KeyError,
            ValueError,
            TypeError,
            RuntimeError,
            EOFError,
        ) as error:
            reason = first_line(error)
            raise NetflocError(
                f"refusing to read TorchScript archive {path}: its data.pkl holds something other than "
                f"modules and tensors ({reason}); re-save the weights with torch.save(model.state_dict())"
            ) from None
    if not isinstance(root, ScriptObject):
        raise NetflocError(f"TorchScript archive {path} does not hold a module; give a plain state_dict")
    state: dict[str, torch.Tensor] = {}
    _collect(root, "", state, set())
    return state


def _collect(node: ScriptObject, prefix: str, state: dict[str, torch.Tensor], seen: set[int]) -> None:
    if id(node) in seen:
        return
    seen.add(id(node))
    for key, value in getattr(node, "state", {}).items():
        if isinstance(value, torch.Tensor):
            state[prefix + key] = value
        elif isinstance(value, ScriptObject):
            _collect(value, f"{prefix}{key}.", state, seen)
