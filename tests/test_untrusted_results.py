"""A results folder is untrusted input: crafted folders give one-line errors, never run code, never write
outside their folder, and a killed run's staging folder is never taken for a result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from netfloc import localize
from netfloc.cli import app
from netfloc.files import STAGING_MARK

from .planted_model import CATEGORIES, write_planted_stimuli

SPEC = f"{Path(__file__).with_name('planted_model.py')}:build"
MODEL = "planted_model-build"


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    stimuli = write_planted_stimuli(root / "stimuli", per_category=6)
    localize(
        SPEC, stimuli, layers=["patches", "units"], categories=CATEGORIES, null=2, out=root / "run", progress=False
    )
    return root / "run"


@pytest.fixture
def workspace(tmp_path, clean_run) -> Path:
    """A folder holding a copy of the clean run (``run``) and a bystander file of the user's."""
    shutil.copytree(clean_run, tmp_path / "run")
    (tmp_path / "notes.txt").write_text("the user's own file\n")
    return tmp_path


def snapshot(folder: Path, skip: Path | None = None) -> dict[str, bytes]:
    """Every file under ``folder`` (except under ``skip``) with its bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and (skip is None or not path.is_relative_to(skip))
    }


def refused(*args: object) -> str:
    """Invoke the CLI; assert a non-zero exit with one line of error and no traceback; return the line."""
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


def edit_run_json(run: Path, change) -> None:
    info = json.loads((run / "run.json").read_text())
    info = change(info)
    (run / "run.json").write_text(json.dumps(info) if not isinstance(info, str) else info)


def test_lesion_never_imports_a_python_file_named_by_run_json(workspace):
    marker = workspace / "pwned"
    payload = workspace / "payload.py"
    payload.write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\ndef build():\n    raise SystemExit\n")

    def point_at_payload(info):
        info["models"][0]["spec"] = f"{MODEL}={payload}:build"
        info["models"][0]["weights"].update({"source": "file", "path": str(payload), "function": "build"})
        return info

    edit_run_json(workspace / "run", point_at_payload)
    before = snapshot(workspace, skip=workspace / "run")
    line = refused("lesion", workspace / "run", "--layer", "patches", "--category", "faces", "--embedding", "units")
    assert "never runs code named by a results folder" in line
    assert not marker.exists() and snapshot(workspace, skip=workspace / "run") == before


@pytest.mark.parametrize("name", ["../pwned", "/tmp/pwned-absolute", "a\\b", "", ".."])
def test_table_names_that_are_not_one_path_component_are_refused(workspace, name):
    edit_run_json(workspace / "run", lambda info: {**info, "tables": [*info["tables"], name]})
    shutil.copytree(workspace / "run", workspace / "other")
    edit_run_json(workspace / "other", lambda info: {**info, "models": [{**info["models"][0], "name": "other"}]})
    before = snapshot(workspace)
    refused("compare", workspace / "run", workspace / "other", "--out", workspace / "merged")
    assert snapshot(workspace) == before and not (workspace / "merged").exists()
    assert not Path("/tmp/pwned-absolute.csv").exists()


@pytest.mark.parametrize("command", ["report", "lesion", "compare"])
def test_model_names_that_leave_the_folder_are_refused(workspace, command):
    elsewhere = workspace / "elsewhere" / "x"
    elsewhere.mkdir(parents=True)
    shutil.copy(workspace / "run" / "units" / MODEL / "units.npz", elsewhere / "units.npz")
    edit_run_json(workspace / "run", lambda info: {**info, "models": [{**info["models"][0], "name": str(elsewhere)}]})
    before = snapshot(workspace, skip=workspace / "run")
    args = {
        "report": ["report", workspace / "run"],
        "lesion": ["lesion", workspace / "run", "--layer", "units", "--category", "faces"],
        "compare": ["compare", workspace / "run", workspace / "run", "--out", workspace / "merged"],
    }[command]
    line = refused(*args)
    assert "not a single file name" in line or "run.json" in line
    assert snapshot(workspace, skip=workspace / "run") == before


def test_force_never_deletes_a_folder_that_is_not_netflocs(workspace):
    user = workspace / "mine"
    user.mkdir()
    (user / "run.json").write_text("{}")
    (user / "thesis.tex").write_text("years of work")
    stimuli = write_planted_stimuli(workspace / "stimuli", per_category=3)
    line = refused("run", "--model", SPEC, "--stimuli", stimuli, "--out", user, "--layers", "units", "--force")
    assert "not one" in line and (user / "thesis.tex").read_text() == "years of work"
    (workspace / "run" / "thesis.tex").write_text("years of work")
    line = refused("run", "--model", SPEC, "--stimuli", stimuli, "--out", workspace / "run", "--force")
    assert "thesis.tex" in line and (workspace / "run" / "thesis.tex").is_file()


def npz_with(path: Path, **changes) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = dict(data)
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)


NPZ = Path("units") / MODEL / "units.npz"
CRAFTED = {
    "run.json not JSON": lambda run: (run / "run.json").write_text("{not json"),
    "run.json a list": lambda run: (run / "run.json").write_text("[1, 2]"),
    "run.json not UTF-8": lambda run: (run / "run.json").write_bytes(b"\xff\xfe\x00"),
    "run.json empty": lambda run: (run / "run.json").write_text(""),
    "no models key": lambda run: edit_run_json(run, lambda i: {k: v for k, v in i.items() if k != "models"}),
    "no categories key": lambda run: edit_run_json(run, lambda i: {k: v for k, v in i.items() if k != "categories"}),
    "models not a list": lambda run: edit_run_json(run, lambda i: {**i, "models": "x"}),
    "layers a list": lambda run: edit_run_json(run, lambda i: {**i, "models": [{**i["models"][0], "layers": ["u"]}]}),
    "model without name": lambda run: edit_run_json(
        run, lambda i: {**i, "models": [{k: v for k, v in i["models"][0].items() if k != "name"}]}
    ),
    "categories of strings": lambda run: edit_run_json(run, lambda i: {**i, "categories": ["a", "b"]}),
    "one category": lambda run: edit_run_json(run, lambda i: {**i, "categories": i["categories"][:1]}),
    "schema version 1": lambda run: edit_run_json(run, lambda i: {**i, "schema_version": 1}),
    "tables not a list": lambda run: edit_run_json(run, lambda i: {**i, "tables": 5}),
    "seed a string": lambda run: edit_run_json(run, lambda i: {**i, "seed": "zero"}),
    "categories disagree": lambda run: edit_run_json(
        run, lambda i: {**i, "categories": [{**c, "name": c["name"] + "x"} for c in i["categories"]]}
    ),
    "layer file missing": lambda run: (run / NPZ).unlink(),
    "npz not a zip": lambda run: (run / NPZ).write_bytes(b"not a zip at all"),
    "npz truncated": lambda run: (run / NPZ).write_bytes((run / NPZ).read_bytes()[:200]),
    "npz object array": lambda run: npz_with(run / NPZ, mean=np.array([{"a": 1}], dtype=object)),
    "npz missing key": lambda run: npz_with(run / NPZ, selective=None),
    "npz wrong shape": lambda run: npz_with(run / NPZ, mean=np.zeros((4, 3), np.float32)),
    "npz wrong dtype": lambda run: npz_with(run / NPZ, selective=np.zeros((4, 516), np.float32)),
    "npz categories disagree": lambda run: npz_with(run / NPZ, categories=np.array(list("abcd"))),
    "npz count wrong": lambda run: npz_with(run / NPZ, count=np.array([1, 2])),
    "npz shape negative": lambda run: npz_with(run / NPZ, shape=np.array([-516])),
    "npz units unknown": lambda run: npz_with(run / NPZ, units=np.array("pixels")),
    "null table corrupt": lambda run: (run / "null.csv").write_bytes(b"\xff\xfe\x00\x00garbage"),
    "layer file is a folder": lambda run: ((run / NPZ).unlink(), (run / NPZ).mkdir()),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_report_on_a_crafted_folder_is_a_one_line_error(workspace, case):
    CRAFTED[case](workspace / "run")
    before = snapshot(workspace, skip=workspace / "run")
    refused("report", workspace / "run")
    assert snapshot(workspace, skip=workspace / "run") == before


def test_a_corrupt_selectivity_csv_is_refused_by_compare(workspace):
    shutil.copytree(workspace / "run", workspace / "other")
    edit_run_json(workspace / "other", lambda info: {**info, "models": [{**info["models"][0], "name": "other"}]})
    (workspace / "other" / "units" / MODEL).rename(workspace / "other" / "units" / "other")
    (workspace / "other" / "selectivity.csv").write_bytes(b"\xff\xfe\x00garbage")
    line = refused("compare", workspace / "run", workspace / "other", "--out", workspace / "merged")
    assert "selectivity.csv" in line and not (workspace / "merged").exists()


def decompression_bomb(path: Path, side: int = 30_000) -> None:
    """A valid PNG header declaring side × side pixels (PIL refuses it on open, before decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


SKIP = ("--skip-bad", "--no-report")


def test_a_decompression_bomb_is_a_bad_stimulus_file(tmp_path):
    stimuli = write_planted_stimuli(tmp_path / "stimuli", per_category=4)
    decompression_bomb(stimuli / "faces" / "bomb.png")
    line = refused("run", "--model", SPEC, "--stimuli", stimuli, "--out", tmp_path / "out", "--layers", "units")
    assert "bomb.png" in line
    for args in (["stimuli", "stats", stimuli], ["stimuli", "scramble", stimuli / "faces", tmp_path / "scrambled"]):
        assert "bomb.png" in refused(*args)
    result = CliRunner().invoke(
        app,
        ["run", "--model", SPEC, "--stimuli", str(stimuli), "--out", str(tmp_path / "out"), "--layers", "units", *SKIP],
    )
    assert result.exit_code == 0, result.output
    skipped = json.loads((tmp_path / "out" / "run.json").read_text())["stimuli"]["skipped"]
    assert [Path(entry["file"]).name for entry in skipped] == ["bomb.png"]


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_staging_folders_of_killed_runs_are_removed_and_never_read_as_results(tmp_path, clean_run):
    import socket

    out = tmp_path / "out"
    stale, live = tmp_path / ".out.tmp-dead0001", tmp_path / ".out.tmp-live0001"
    for folder, pid in ((stale, dead_pid()), (live, os.getpid())):
        shutil.copytree(clean_run, folder)
        (folder / STAGING_MARK).write_text(json.dumps({"host": socket.gethostname(), "pid": pid}))
    assert "unfinished staging folder" in refused("report", stale)
    stimuli = write_planted_stimuli(tmp_path / "stimuli", per_category=3)
    result = CliRunner().invoke(
        app, ["run", "--model", SPEC, "--stimuli", str(stimuli), "--out", str(out), "--layers", "units", "--no-report"]
    )
    assert result.exit_code == 0, result.output
    assert not stale.exists() and live.exists(), "a live (concurrent) run's staging folder is left alone"


def test_out_dot_writes_into_the_current_directory_without_replacing_it(tmp_path, monkeypatch):
    stimuli = write_planted_stimuli(tmp_path / "stimuli", per_category=3)
    empty = tmp_path / "empty"
    empty.mkdir()
    inode = empty.stat().st_ino
    monkeypatch.chdir(empty)
    args = ["run", "--model", SPEC, "--stimuli", str(stimuli), "--layers", "units", "--no-report", "--out", "."]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert Path.cwd().stat().st_ino == inode and (empty / "run.json").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty", "stimuli"]
    assert "already exists" in refused(*args)
    assert CliRunner().invoke(app, [*args, "--force"]).exit_code == 0 and Path.cwd().stat().st_ino == inode
    monkeypatch.chdir(empty / "units")
    assert "contains the current directory" in refused(*args[:-1], empty, "--force")


@pytest.mark.parametrize(
    ("text", "message"),
    [("layers = 1\n", "layers must be a string or a list"), ("run = 5\n", "[run] must be a table")],
)
def test_config_values_of_the_wrong_kind(tmp_path, text, message):
    config = tmp_path / "netfloc.toml"
    config.write_text(text)
    assert message in refused("run", "--config", config)
    assert "is a folder" in refused("run", "--config", tmp_path)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


def json_paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from json_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from json_paths(child, (*prefix, index))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_results_folders_never_crash_report(tmp_path_factory, clean_run, data):
    workspace = tmp_path_factory.mktemp("fuzz")
    run = workspace / "run"
    shutil.copytree(clean_run, run)
    info = json.loads((run / "run.json").read_text())
    paths = list(json_paths(info))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths[1:]))
        target = info
        for key in path[:-1]:
            target = target[key] if isinstance(target, (dict, list)) and _has(target, key) else None
        if isinstance(target, (dict, list)) and _has(target, path[-1]):
            target[path[-1]] = data.draw(JSON)
    (run / "run.json").write_text(json.dumps(info))
    npz = run / NPZ
    raw = bytearray(npz.read_bytes())
    for _ in range(data.draw(st.integers(0, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    npz.write_bytes(bytes(raw[: data.draw(st.integers(1, len(raw)))]))
    before = snapshot(workspace, skip=run)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code in (0, 2), (result.output, result.exception)
    if result.exit_code == 2:
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert snapshot(workspace, skip=run) == before


def _has(container, key) -> bool:
    return key in container if isinstance(container, dict) else isinstance(key, int) and key < len(container)
