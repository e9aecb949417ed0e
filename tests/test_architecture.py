"""The house rules: stages import one way, no cycles (imports inside functions included), small modules, and
light entry points (``import netfloc.statistics`` and ``import netfloc.cli`` never load torch)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "netfloc"
MAX_LINES = 400


def module_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan 1972)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycle_counting_imports_inside_functions():
    graph = grimp.build_graph("netfloc", include_external_packages=False)
    assert "netfloc.pipeline.runner" in graph.modules
    assert module_cycles(graph) == []


def test_cycle_finder_sees_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("a", "b", "c"):
        graph.add_module(module)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="c")
    graph.add_import(importer="c", imported="a")
    assert module_cycles(graph) == [["a", "b", "c"]]


def test_import_linter_layers_contract_is_kept():
    linter = shutil.which("lint-imports")
    if linter is None:
        pytest.skip("import-linter is not installed")
    done = subprocess.run([linter], cwd=SRC.parents[1], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_no_module_over_400_lines():
    long = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


@pytest.mark.parametrize("module", ["netfloc.statistics", "netfloc.cli", "netfloc"])
def test_light_modules_do_not_import_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'torchvision', 'matplotlib') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_run_path_does_not_import_scipy_stats():
    """scipy.stats costs ≈ 1 s and 50 MB at import; a plain run needs only scipy.special."""
    code = "import sys, netfloc.cli, netfloc.pipeline; print('scipy.stats' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


RECORDING_IMPORTS = """
import json
import shutil
import sys
from pathlib import Path

from netfloc import localize
from netfloc.pipeline import runner
from netfloc.recording.hooks import LayerRecorder

sys.path.insert(0, {tests!r})
from planted_model import CATEGORIES, write_planted_stimuli

loaded, finished = [], []
record, finish_model = LayerRecorder.record, runner.finish_model


def watched(self, batch):
    loaded.append('pandas' in sys.modules)
    return record(self, batch)


def watched_finish(*args):
    found = finish_model(*args)
    finished.append('pandas' in sys.modules)
    return found


LayerRecorder.record, runner.finish_model = watched, watched_finish
stimuli = write_planted_stimuli(Path({tmp!r}) / "stimuli", per_category=4)
copy = shutil.copy({tests!r} + "/planted_model.py", Path({tmp!r}) / "planted_copy.py")  # a second model
models = [{tests!r} + "/planted_model.py:build", f"{{copy}}:build"]
localize(models, stimuli, layers=["units"], categories=CATEGORIES, out=Path({tmp!r}) / "run", progress=False)
print(json.dumps({{'recording': loaded, 'finished': finished, 'end': 'pandas' in sys.modules}}))
"""


def test_a_run_records_without_pandas_imported(tmp_path):
    """pandas (29 MiB) is imported after the recordings, which set a run's peak memory: not while any model
    records, nor when a model is finished (while the next one records; here two models); the run still writes
    its tables with it (the last value)."""
    tests = Path(__file__).parent
    code = RECORDING_IMPORTS.format(tests=str(tests), tmp=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = json.loads(done.stdout.splitlines()[-1])
    assert imported["recording"] and not any(imported["recording"])  # per batch, the probes' included
    assert imported["finished"] == [False, False]
    assert imported["end"] and (tmp_path / "run" / "selectivity.csv").exists()


def test_help_is_instant_and_lists_every_command():
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from netfloc.cli import main; sys.argv = ['netfloc', '--help']; main()"],
        capture_output=True,
        text=True,
    )
    for command in ("run", "report", "compare", "study", "lesion", "layers", "models", "stimuli", "brain"):
        assert command in done.stdout
