"""TOML config files for ``netfloc run``: any flag can be a key (``batch-size`` or ``batch_size``).

Flags given on the command line override the file; the file overrides the built-in defaults. List options
(``model``, ``layers``, ``categories``, ``series``) take a TOML list or a comma-separated string. Relative
``stimuli``, ``out`` and ``steps-from`` paths are relative to the config file's folder, so a study folder can carry
its own config (model and series specs are not rewritten).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from netfloc.errors import NetflocError

RUN_DEFAULTS: dict[str, Any] = {
    "model": [],
    "stimuli": None,
    "out": None,
    "layers": None,
    "categories": None,
    "units": "element",
    "tokens": "all",
    "test": "welch",
    "fdr": "by",
    "alpha": 0.05,
    "rule": "each",
    "top_percent": 1.0,
    "batch_size": 32,
    "device": "auto",
    "allow_tf32": False,
    "memory_format": "auto",
    "memory_budget": None,
    "seed": 0,
    "workers": None,
    "skip_bad": False,
    "consistency": False,
    "cross_validate": 0,
    "null": 0,
    "baseline": None,
    "series": [],
    "steps_from": None,
    "force": False,
    "resume": False,
    "shard_size": 1024,
    "keep_shards": False,
    "executor": "local",
    "address": None,
    "gpus_per_task": 0.0,
    "max_retries": 3,
    "report": True,
    "responses": None,
}
#: The type every key must have in a config file (list keys also take a comma-separated string).
KEY_TYPES: dict[str, type] = {
    "stimuli": str,
    "out": str,
    "units": str,
    "tokens": str,
    "test": str,
    "fdr": str,
    "alpha": float,
    "rule": str,
    "top_percent": float,
    "batch_size": int,
    "device": str,
    "allow_tf32": bool,
    "memory_format": str,
    "memory_budget": float,
    "seed": int,
    "workers": int,
    "skip_bad": bool,
    "consistency": bool,
    "cross_validate": int,
    "null": int,
    "baseline": str,
    "steps_from": str,
    "force": bool,
    "resume": bool,
    "shard_size": int,
    "keep_shards": bool,
    "executor": str,
    "address": str,
    "gpus_per_task": float,
    "max_retries": int,
    "report": bool,
    "responses": str,
}
LIST_KEYS = ("model", "layers", "categories", "series")
#: Paths in a config file are relative to the file's folder.
PATH_KEYS = ("stimuli", "out", "steps_from", "responses")


def split_list(value: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    """``"a,b"`` or ``["a", "b,c"]`` -> ``["a", "b", "c"]``; None stays None."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML config into run options (keys normalised to underscores, unknown keys rejected)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise NetflocError(f"--config {path} is a folder; pass the TOML file itself (e.g. {path / 'netfloc.toml'})")
    if not path.is_file():
        raise NetflocError(f"config file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise NetflocError(f"config file {path} is not valid TOML: {error}") from None
    raw = raw.get("run", raw)
    if not isinstance(raw, dict):
        raise NetflocError(f"config file {path}: [run] must be a table of options, not {raw!r}")
    options = {key.replace("-", "_"): value for key, value in raw.items()}
    unknown = sorted(set(options) - set(RUN_DEFAULTS))
    if unknown:
        raise NetflocError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(RUN_DEFAULTS)}"
        )
    for key, value in options.items():
        options[key] = _checked_list(path, key, value) if key in LIST_KEYS else _checked(path, key, value)
    for key in PATH_KEYS:
        if key in options:
            options[key] = str(path.parent / Path(options[key]).expanduser())
    return options


def _checked_list(path: Path, key: str, value: Any) -> list[str] | None:
    """A list option (a string or a list of strings) split at commas, else a one-line error."""
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        return split_list(value)
    raise NetflocError(
        f'config file {path}: {key} must be a string or a list of strings (e.g. {key} = ["a", "b"]), not {value!r}'
    )


def _checked(path: Path, key: str, value: Any) -> Any:
    """``value`` if it has the key's type (ints are fine where a float is expected), else a one-line error."""
    expected = KEY_TYPES[key]
    fits = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not fits:
        names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
        raise NetflocError(f"config file {path}: {key.replace('_', '-')} must be {names[expected]}, not {value!r}")
    return value


def merge_options(config: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults, overridden by the config file, overridden by flags that were given (not None)."""
    merged = dict(RUN_DEFAULTS)
    merged.update(config)
    merged.update({key: value for key, value in flags.items() if value is not None and value != []})
    return merged
