"""A run's results folder: the :class:`LocalizerResult` it holds, ``run.json`` and the file names of the contract.

``OUT/selectivity.csv``
    one row per (model, layer, category): model, layer, category, n_units, n_selective, proportion,
    mean_csi, median_csi, mean_dprime (the last three over the category's selective units; empty if none).
``OUT/units/<model>/<layer>.npz``
    per-unit arrays (:mod:`netfloc.results.layer`).
``OUT/run.json``
    ``schema_version``, versions, models with weight identities and layers (module, shape, units, layout),
    categories and image counts, stimulus digest, statistics settings, seed, device, timings; validated against
    ``netfloc/data/run.schema.json`` whenever it is read.
``OUT/<table>.csv``
    the run-level tables listed in run.json's ``tables`` (``crossval``, ``null``, ``null_summary``,
    ``consistency``, ...).

Names from a results folder become paths (``units/<model>/<layer>.npz``, ``<table>.csv``): each must be a single
path component, so no folder can make netfloc read or write outside it. A results folder is written next to
its destination under a temporary name and renamed into place when complete
(:func:`netfloc.files.atomic_directory`), so a failed run never leaves a half-written folder behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netfloc.errors import NetflocError, first_line
from netfloc.files import atomic_directory, is_staging
from netfloc.parallel import parallel_map
from netfloc.results.layer import LayerResult

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 2
SUMMARY_COLUMNS = [
    "model",
    "layer",
    "category",
    "n_units",
    "n_selective",
    "proportion",
    "mean_csi",
    "median_csi",
    "mean_dprime",
]
SUMMARY_FILE = "selectivity.csv"
RUN_FILE = "run.json"
UNITS_DIR = "units"
LESION_DIR = "lesions"
SHARDS_DIR = "shards"
#: ``netfloc brain``'s default output folder inside a run (tables, brain.json and figures/), read by the report.
BRAIN_DIR = "brain"
REPORT_STAGING_PREFIX = ".report-tmp-"


def path_component(name: str, what: str, source: Path | str) -> str:
    """``name`` when it is one path component (no ``/``, ``\\``, ``..``, ``.``, empty or absolute name); else a
    one-line error naming the ``what`` and the file it came from."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise NetflocError(
            f"{source}: {what} name {name!r} is not a single file name (no '/', '\\', '..' or empty names); "
            "the results folder was edited or is not netfloc's"
        )
    return name


def layer_file(out: Path, model: str, layer: str, source: Path | str = RUN_FILE) -> Path:
    """``OUT/units/<model>/<layer>.npz``, with both names checked by :func:`path_component`."""
    return out / UNITS_DIR / path_component(model, "model", source) / f"{path_component(layer, 'layer', source)}.npz"


def table_file(out: Path, name: str, source: Path | str = RUN_FILE) -> Path:
    """``OUT/<name>.csv``, with the name checked by :func:`path_component`."""
    return out / f"{path_component(name, 'table', source)}.csv"


def summary_frame(layers: list[LayerResult]) -> pd.DataFrame:
    """The ``selectivity.csv`` table of these layers."""
    import pandas as pd

    rows = [row for layer in layers for row in layer.summary_rows()]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def read_table(path: Path, **options: Any) -> pd.DataFrame:
    """``pandas.read_csv(path, **options)``; a file that is not a readable CSV is a one-line error naming it."""
    import pandas as pd

    try:
        return pd.read_csv(path, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as error:
        raise NetflocError(
            f"{path} is not a readable CSV table ({first_line(error)}); rerun the step that wrote it"
        ) from None


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


@cache
def run_schema() -> dict[str, Any]:
    """The JSON Schema of ``run.json`` shipped with the package."""
    return json.loads(resources.files("netfloc").joinpath("data/run.schema.json").read_text())


def validate_run_info(info: Any, source: Path | str) -> dict[str, Any]:
    """``info`` when it is valid against :func:`run_schema`; else a one-line error naming the first problem."""
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(run_schema()).iter_errors(info), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(part) for part in errors[0].absolute_path) or "the top level"
        message = errors[0].message if len(errors[0].message) < 200 else errors[0].message[:200] + "…"
        raise NetflocError(f"{source} is not a valid netfloc run.json (at {where}: {message}); rerun `netfloc run`")
    return info


def read_run_info(out: Path, *, staging: bool = False) -> dict[str, Any]:
    """``run.json`` of a results folder, read and validated against the shipped schema; the staging folder of
    an unfinished run is refused unless ``staging`` (netfloc itself finishing that folder)."""
    path = Path(out) / RUN_FILE
    if is_staging(out) and not staging:
        raise NetflocError(f"{out} is the unfinished staging folder of a netfloc run that did not complete; rerun it")
    if not path.is_file():
        raise NetflocError(f"{out} is not a netfloc results folder (no {RUN_FILE}); pass the --out of a run")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NetflocError(f"{path} is not valid JSON ({error}); the results folder is damaged") from None
    return validate_run_info(info, path)


#: Where netfloc writes inside a results folder: top-level files, and files one level down in these folders.
TOP_LEVEL_FILES = (RUN_FILE, SUMMARY_FILE, "report.html")
SUBFOLDER_SUFFIXES = {"figures": (".png", ".svg"), LESION_DIR: (".csv",)}
#: Folders with one sub-folder per model: the layer files, and the shards kept with ``--keep-shards``.
MODEL_FOLDER_SUFFIXES = {UNITS_DIR: (".npz",), SHARDS_DIR: (".npz", ".json")}


def results_folder_problem(out: Path) -> str | None:
    """Why ``out`` is not a results folder that netfloc wrote (so ``--force`` may not replace it), or None:
    its run.json must be valid against the schema, and it may hold nothing netfloc does not write."""
    try:
        read_run_info(out)
    except NetflocError as error:
        return f"no valid netfloc run.json: {error}"
    for path in sorted(Path(out).rglob("*")):
        relative = path.relative_to(out)
        if not _written_by_netfloc(relative, path):
            return f"it holds {relative}, which netfloc does not write"
    return None


def _written_by_netfloc(relative: Path, path: Path) -> bool:
    parts = relative.parts
    if path.is_symlink():
        return False
    if parts[0].startswith(REPORT_STAGING_PREFIX):  # a report that was interrupted while being written
        return True
    if len(parts) == 1:
        if path.is_dir():
            return parts[0] in SUBFOLDER_SUFFIXES or parts[0] in MODEL_FOLDER_SUFFIXES or parts[0] == BRAIN_DIR
        return parts[0] in TOP_LEVEL_FILES or relative.suffix == ".csv"
    if parts[0] == BRAIN_DIR:
        return _written_by_brain(parts[1:], path)
    if parts[0] in MODEL_FOLDER_SUFFIXES:
        suffixes = MODEL_FOLDER_SUFFIXES[parts[0]]
        return (len(parts) == 2 and path.is_dir()) or (len(parts) == 3 and path.is_file() and path.suffix in suffixes)
    suffixes = SUBFOLDER_SUFFIXES.get(parts[0], ())
    return len(parts) == 2 and path.is_file() and path.suffix in suffixes


def _written_by_brain(parts: tuple[str, ...], path: Path) -> bool:
    """What ``netfloc brain`` writes in ``RUN_DIR/brain``: tables, brain.json, figures/ with PNG and SVG files."""
    if len(parts) == 1:
        return path.is_dir() if parts[0] == "figures" else path.is_file() and path.suffix in (".csv", ".json")
    return len(parts) == 2 and parts[0] == "figures" and path.is_file() and path.suffix in (".png", ".svg")


@dataclass
class LocalizerResult:
    """Everything one run found: per-layer unit arrays, the summary table and the run manifest."""

    layers: list[LayerResult]
    run_info: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Further analysis tables by name (``consistency``, ``crossval``, ``null``, ...), saved as ``<name>.csv``."""

    @property
    def summary(self) -> pd.DataFrame:
        """The ``selectivity.csv`` table: one row per (model, layer, category)."""
        return summary_frame(self.layers)

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(layer.model for layer in self.layers))

    def model_layers(self, model: str) -> list[LayerResult]:
        """The layers of one model, in depth order."""
        return [layer for layer in self.layers if layer.model == model]

    def layer(self, model: str, layer: str) -> LayerResult:
        """The per-unit arrays of one layer of one model."""
        for result in self.layers:
            if (result.model, result.layer) == (model, layer):
                return result
        raise KeyError(f"no layer {layer!r} of model {model!r} in this result")

    def write(self, folder: Path) -> None:
        """Write ``selectivity.csv``, ``units/``, the further tables and ``run.json`` into an existing folder (the
        layer files on every core: their checksums and writes release the GIL)."""
        parallel_map(lambda result: result.save(layer_file(folder, result.model, result.layer)), self.layers)
        self.summary.to_csv(folder / SUMMARY_FILE, index=False)
        for name, table in self.tables.items():
            table.to_csv(table_file(folder, name), index=False)
        write_json(folder / RUN_FILE, self.run_info)

    def save(self, out: str | Path, force: bool = False) -> Path:
        """Write the results folder atomically (see :meth:`write`); ``force`` replaces a folder netfloc wrote.
        The report is written by :func:`netfloc.pipeline.save_run` or ``netfloc report``."""
        out = Path(out)
        with atomic_directory(out, force, results_folder_problem) as staging:
            self.write(staging)
        return out

    @classmethod
    def load(cls, out: str | Path, *, staging: bool = False) -> LocalizerResult:
        """Read a results folder written by :meth:`save` (no model is loaded); every file is checked
        (``staging``: see :func:`read_run_info`)."""
        out = Path(out)
        info = read_run_info(out, staging=staging)
        source = out / RUN_FILE
        layers = [
            LayerResult.load(layer_file(out, model["name"], layer, source))
            for model in info["models"]
            for layer in model["layers"]
        ]
        _check_consistent(layers, info, source)
        tables = {
            name: read_table(table_file(out, name, source))
            for name in info.get("tables", [])
            if table_file(out, name, source).is_file()
        }
        return cls(layers, info, tables)


def _check_consistent(layers: list[LayerResult], info: dict[str, Any], source: Path) -> None:
    """Every layer file belongs to the model and layer run.json names, with run.json's categories."""
    categories = [category["name"] for category in info["categories"]]
    expected = [(model["name"], layer) for model in info["models"] for layer in model["layers"]]
    for layer, (model_name, layer_name) in zip(layers, expected, strict=True):
        if (layer.model, layer.layer) != (model_name, layer_name):
            raise NetflocError(
                f"{source} lists layer {layer_name!r} of {model_name!r}, but its file holds {layer.layer!r} of "
                f"{layer.model!r}; the results folder was edited"
            )
        if layer.categories != categories:
            raise NetflocError(
                f"layer {layer.layer!r} of {layer.model!r} has categories {layer.categories}, but {source} lists "
                f"{categories}; the results folder was edited"
            )
