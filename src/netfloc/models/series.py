"""Checkpoint series: ``LABEL=SPEC`` whose checkpoint part is a glob, one model per matching file.

``--series toy=model.py:build@ckpts/step_*.pt`` or ``--series rn50=resnet50:ckpts/epoch_*.pth``: the weights part
of SPEC (after ``@`` for a file model, after ``NAME:`` or ``PREFIX:NAME:`` otherwise; see
:func:`netfloc.models.registry.split_weights`) is a glob (Python's :mod:`glob`, ``**`` recursive, ``~`` expanded).

The step of a checkpoint is the last integer in its file name without the extension (``epoch_12.pth`` -> 12,
``step-000300.pt`` -> 300, ``v2_step40.pt`` -> 40). ``--steps-from FILE.csv`` (columns ``checkpoint, step``)
gives the steps instead: a ``checkpoint`` cell that is a bare file name matches that name, a path matches that
file (relative paths are relative to the CSV's folder). Checkpoints are taken in step order (numerical: step 2
before step 10, whatever order the file system lists them in); two files with the same step are an error.

Each checkpoint becomes one model of the run, labelled ``LABEL@STEP``, with the spec of SPEC in which the glob is
replaced by the file's path. :func:`check_checkpoints` loads every one of them before any image is read, so a
checkpoint that does not fit the architecture stops the run before it starts.
"""

from __future__ import annotations

import csv
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netfloc.errors import NetflocError, first_line
from netfloc.models.registry import load_model, random_spec, split_label, split_weights
from netfloc.progress import track

EXAMPLE = "--series rn50=resnet50:ckpts/epoch_*.pth or --series toy=model.py:build@ckpts/step_*.pt"
STEPS_COLUMNS = ("checkpoint", "step")
_INTEGER = re.compile(r"\d+")


@dataclass(frozen=True)
class SeriesMember:
    """One checkpoint of a series: the series name, its step, the file (as the glob matched it) and the spec
    that loads it, labelled ``series@step``."""

    series: str
    step: int
    checkpoint: str
    spec: str

    @property
    def label(self) -> str:
        return f"{self.series}@{self.step}"

    def info(self) -> dict[str, Any]:
        """The ``series`` entry of this model in ``run.json``."""
        return {"name": self.series, "step": self.step, "checkpoint": self.checkpoint}


def parse_series(text: str) -> tuple[str, str, str]:
    """``"toy=m.py:build@ck/s_*.pt"`` -> ``("toy", "m.py:build@", "ck/s_*.pt")``: name, spec head, glob."""
    label, body = split_label(text.strip())
    if label is None:
        raise NetflocError(f"--series {text!r} has no name; write LABEL=SPEC, e.g. {EXAMPLE}")
    if "@" in label:
        raise NetflocError(f"series name {label!r} must not contain '@' (its checkpoints are labelled {label}@STEP)")
    split = split_weights(body)
    if split is None:
        raise NetflocError(f"--series {text!r} names no checkpoint files; put a glob where the weights go: {EXAMPLE}")
    return label, *split


def step_of(path: Path, series: str) -> int:
    """The last integer in the file name without its extension (module docstring)."""
    numbers = _INTEGER.findall(path.stem)
    if not numbers:
        raise NetflocError(
            f"--series {series}: the file name {path.name} holds no integer to use as its step; narrow the glob to "
            "numbered files (e.g. epoch_[0-9]*.pt) or give the steps with --steps-from FILE.csv (checkpoint, step)"
        )
    return int(numbers[-1])


def read_steps(path: str | Path) -> dict[str, int]:
    """The ``--steps-from`` table: ``checkpoint -> step``, keys being bare file names or resolved paths."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise NetflocError(f"--steps-from {path} does not exist; give a CSV file with columns checkpoint, step")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error, OSError) as error:
        raise NetflocError(f"--steps-from {path} is not a readable CSV file ({first_line(error)})") from None
    if not rows or any(column not in rows[0] for column in STEPS_COLUMNS):
        raise NetflocError(f"--steps-from {path} needs a header with the columns checkpoint, step and one row per file")
    steps: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        name, step = ((row[column] or "").strip() for column in STEPS_COLUMNS)
        if not name or not step.isdigit():
            raise NetflocError(
                f"--steps-from {path}, line {line}: need a checkpoint and a step that is an integer >= 0, "
                f"not {row['checkpoint']!r}, {row['step']!r}"
            )
        key = name if "/" not in name and "\\" not in name else str((path.parent / Path(name).expanduser()).resolve())
        if key in steps:
            raise NetflocError(f"--steps-from {path}, line {line}: {name} is listed twice")
        steps[key] = int(step)
    return steps


def _step_from_table(path: Path, steps: dict[str, int], source: str | Path, series: str) -> int:
    for key in (str(path.resolve()), path.name):
        if key in steps:
            return steps[key]
    raise NetflocError(f"--series {series}: --steps-from {source} has no row for {path}; add one (checkpoint, step)")


def expand_series(series: list[str], steps_from: str | Path | None = None) -> list[SeriesMember]:
    """Every checkpoint of every ``--series LABEL=SPEC``, series by series in step order (module docstring)."""
    if steps_from is not None and not series:
        raise NetflocError(f"--steps-from {steps_from} gives the steps of a --series, but no --series was given")
    steps = read_steps(steps_from) if steps_from is not None else None
    members: list[SeriesMember] = []
    names: set[str] = set()
    for text in series:
        name, head, pattern = parse_series(text)
        if name in names:
            raise NetflocError(f"two --series are named {name!r}; give each its own LABEL")
        names.add(name)
        files = sorted(Path(match) for match in glob.glob(os.path.expanduser(pattern), recursive=True))
        files = [path for path in files if path.is_file()]
        if not files:
            raise NetflocError(
                f"--series {name}: no file matches {pattern!r} (relative paths start at {Path.cwd()}); check the glob"
            )
        by_step: dict[int, Path] = {}
        for path in files:
            step = _step_from_table(path, steps, steps_from, name) if steps is not None else step_of(path, name)
            if step in by_step:
                raise NetflocError(
                    f"--series {name}: {by_step[step]} and {path} both have step {step}; narrow the glob or give the "
                    "steps with --steps-from FILE.csv (checkpoint, step)"
                )
            by_step[step] = path
        members += [
            SeriesMember(name, step, str(by_step[step]), f"{name}@{step}={head}{by_step[step]}")
            for step in sorted(by_step)
        ]
    return members


def series_baselines(series: list[str]) -> list[str]:
    """The random-weight baseline of each series (``--baseline random``), labelled ``LABEL-random``: the
    architecture with seeded random weights (a file model: the module its function returns, without a checkpoint)."""
    specs = []
    for text in series:
        name, head, pattern = parse_series(text)
        specs.append(random_spec(f"{name}={head}{pattern}"))
    return specs


def check_checkpoints(members: list[SeriesMember], seed: int, progress: bool = True) -> None:
    """Load every checkpoint once, so that a file that is not a checkpoint or whose keys or shapes do not fit the
    architecture is a one-line error before any image is read (each file is read again when its model runs)."""
    for member in track(members, "checking checkpoints", enabled=progress):
        load_model(member.spec, seed=seed)
