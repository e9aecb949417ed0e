"""fLoc download and import against a local HTTP server on 127.0.0.1 serving a small fake fLoc tree."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from logging.handlers import BufferingHandler
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pooch
import pytest
from PIL import Image
from typer.testing import CliRunner

from netfloc.cli.stimuli import app
from netfloc.errors import NetflocError
from netfloc.stimuli import floc
from netfloc.stimuli.floc import (
    CACHE_ENV,
    FLOC_COMMIT,
    cache_dir,
    default_floc_dir,
    fetch_floc,
    floc_file_names,
    import_local,
    packaged_floc_sums,
    read_sums,
)

SHARED_FLOC = Path(__file__).resolve().parents[2] / "shared" / "stimuli" / "floc"
NAMES = ["adult/adult-1.jpg", "adult/adult-2.jpg", "body/body-1.jpg", "body/body-2.jpg", "word/word-1.jpg"]


@dataclass
class ServerState:
    root: Path
    corrupt: set[str] = field(default_factory=set)
    cut: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)


def make_handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """Serves ``state.root``, with wrong bytes for ``corrupt`` files and a cut-short response for ``cut``
        files (full Content-Length, half the body, connection closed); records every requested path."""

        def do_GET(self) -> None:
            rel = unquote(urlsplit(self.path).path).lstrip("/")
            state.requests.append(rel)
            path = state.root / rel
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            if any(rel.endswith(name) for name in state.corrupt):
                data = bytes(255 - b for b in data)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if any(rel.endswith(name) for name in state.cut):
                data = data[: len(data) // 2]
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def write_fake_floc(root: Path) -> Path:
    """``root/stimuli/<category>/<file>.jpg`` tiny JPEGs and ``root/sums.txt`` with their SHA-256."""
    lines = []
    for k, name in enumerate(NAMES):
        path = root / "stimuli" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(k).integers(0, 256, (24, 24), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=90)
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n")
    (root / "sums.txt").write_text("# fake fLoc\n" + "".join(lines))
    return root


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, ServerState]]:
    state = ServerState(write_fake_floc(tmp_path / "served"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/stimuli", state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def fetch(url: str, state: ServerState, dest: Path, **kwargs) -> Path:
    return fetch_floc(dest, base_url=url, sums_file=state.root / "sums.txt", progress=False, timeout=5.0, **kwargs)


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_fetch_downloads_verifies_and_reuses(server, tmp_path, capsys):
    url, state = server
    level, logged = pooch.get_logger().level, BufferingHandler(1000)  # pooch logs each download unless silenced
    pooch.get_logger().addHandler(logged)
    try:
        dest = fetch(url, state, tmp_path / "floc")
    finally:
        pooch.get_logger().removeHandler(logged)
    assert logged.buffer == [] and pooch.get_logger().level == level
    expected = read_sums(state.root / "sums.txt")
    assert files_in(dest) == sorted(NAMES)
    assert {name: hashlib.sha256((dest / name).read_bytes()).hexdigest() for name in NAMES} == expected
    assert state.requests == [f"stimuli/{name}" for name in NAMES]
    err = capsys.readouterr().err
    assert "Stigliani" in err and "academic use" in err and "5 files verified" in err
    state.requests.clear()
    fetch(url, state, dest)
    assert state.requests == []
    (dest / "adult/adult-2.jpg").write_bytes(b"tampered")
    fetch(url, state, dest)
    assert state.requests == ["stimuli/adult/adult-2.jpg"]
    assert hashlib.sha256((dest / "adult/adult-2.jpg").read_bytes()).hexdigest() == expected["adult/adult-2.jpg"]


@pytest.mark.parametrize("retries", [0, 1])
def test_wrong_hash_is_a_one_line_error_after_the_retries(server, tmp_path, retries):
    url, state = server
    state.corrupt.add("body/body-1.jpg")
    served = (state.root / "stimuli/body/body-1.jpg").read_bytes()
    actual = hashlib.sha256(bytes(255 - b for b in served)).hexdigest()
    with pytest.raises(NetflocError) as error:
        fetch(url, state, tmp_path / "floc", retries=retries)
    message = str(error.value)
    assert "\n" not in message and f"body/body-1.jpg from {url}/body/body-1.jpg after {retries + 1} attempt" in message
    assert read_sums(state.root / "sums.txt")["body/body-1.jpg"] in message and actual in message
    assert "run the fetch again" in message and "--from DIR" in message
    assert state.requests.count("stimuli/body/body-1.jpg") == retries + 1
    assert files_in(tmp_path / "floc") == ["adult/adult-1.jpg", "adult/adult-2.jpg"]


def test_interrupted_fetch_completes_on_rerun_fetching_only_missing_files(server, tmp_path):
    url, state = server
    state.cut.add("body/body-1.jpg")
    with pytest.raises(NetflocError, match=r"could not fetch fLoc body/body-1\.jpg .* after 1 attempt"):
        fetch(url, state, tmp_path / "floc", retries=0)
    assert state.requests == [f"stimuli/{name}" for name in NAMES[:3]]
    assert files_in(tmp_path / "floc") == NAMES[:2]  # no partial file under any name
    state.cut.clear()
    state.requests.clear()
    dest = fetch(url, state, tmp_path / "floc", retries=0)
    assert state.requests == [f"stimuli/{name}" for name in NAMES[2:]]
    assert files_in(dest) == sorted(NAMES)
    assert (dest / "body/body-1.jpg").read_bytes() == (state.root / "stimuli/body/body-1.jpg").read_bytes()


@pytest.mark.parametrize("bad", ["../x.jpg", "adult/../../x.jpg", "/tmp/x.jpg", "adult\\..\\x.jpg"])
def test_paths_escaping_the_destination_are_refused(server, tmp_path, bad):
    url, state = server
    (state.root / "sums.txt").write_text(f"{'0' * 64}  {bad}\n")
    with pytest.raises(NetflocError, match="escape"):
        fetch(url, state, tmp_path / "dest" / "floc")
    with pytest.raises(NetflocError, match="escape"):
        fetch_floc(tmp_path / "dest2", base_url=url, names=[bad], progress=False)
    assert state.requests == [] and not (tmp_path / "x.jpg").exists()


def test_files_without_a_shipped_sum_are_refused(server, tmp_path):
    url, state = server
    partial = tmp_path / "partial-sums.txt"
    partial.write_text("".join(line for line in (state.root / "sums.txt").open() if "word-1" not in line))
    with pytest.raises(NetflocError, match=r"no SHA-256 for 1 of 5 requested files \(first: word/word-1\.jpg\)"):
        fetch_floc(tmp_path / "floc", base_url=url, sums_file=partial, names=NAMES, progress=False)
    with pytest.raises(NetflocError, match="no SHA-256 for 1 of 5"):
        import_local(state.root, tmp_path / "copy", sums_file=partial, names=NAMES, progress=False)
    assert state.requests == [] and not (tmp_path / "floc").exists() and not (tmp_path / "copy").exists()


def test_bad_sums_file_and_unreachable_server(tmp_path):
    sums = tmp_path / "sums.txt"
    sums.write_text("not-a-hash  adult/adult-1.jpg\n")
    with pytest.raises(NetflocError, match=r"sums\.txt:1"):
        read_sums(sums)
    sums.write_text("# nothing\n")
    with pytest.raises(NetflocError, match="lists no files"):
        fetch_floc(tmp_path / "floc", sums_file=sums, progress=False)
    sums.write_text(f"{'a' * 64}  adult/adult-1.jpg\n")
    with pytest.raises(
        NetflocError, match=r"could not fetch fLoc adult/adult-1\.jpg from http://127\.0\.0\.1:9/"
    ) as error:
        fetch_floc(tmp_path / "floc", base_url="http://127.0.0.1:9/none", sums_file=sums, progress=False, retries=0)
    assert "\n" not in str(error.value)


def test_import_local_verifies_and_copies(server, tmp_path):
    _, state = server
    sums = state.root / "sums.txt"
    dest = import_local(state.root, tmp_path / "copy", sums_file=sums, progress=False)
    assert (dest / "word/word-1.jpg").read_bytes() == (state.root / "stimuli/word/word-1.jpg").read_bytes()
    (state.root / "stimuli/body/body-2.jpg").write_bytes(b"resized")
    with pytest.raises(NetflocError, match="not the original"):
        import_local(state.root / "stimuli", tmp_path / "copy2", sums_file=sums, progress=False)
    assert not list((tmp_path / "copy2").rglob("*.part"))
    (state.root / "stimuli/body/body-2.jpg").unlink()
    with pytest.raises(NetflocError, match="lacks 1 of 5"):
        import_local(state.root, tmp_path / "copy3", sums_file=sums, progress=False)


def test_packaged_sums_cover_the_official_manifest():
    names = floc_file_names()
    assert len(names) == 11 * 144 and names[0] == "adult/adult-1.jpg" and names[-1] == "scrambled/scrambled-144.jpg"
    sums = packaged_floc_sums()
    assert set(sums) == set(names)
    assert len(set(sums.values())) == len(names)


@pytest.mark.skipif(not SHARED_FLOC.is_dir(), reason=f"fLoc images not found at {SHARED_FLOC}")
def test_downsampled_copy_is_not_accepted_as_the_original(tmp_path):
    with pytest.raises(NetflocError, match="not the original"):
        import_local(SHARED_FLOC, tmp_path / "floc", names=["adult/adult-1.jpg"], progress=False)


def test_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    assert default_floc_dir() == tmp_path / "cache" / f"floc-{FLOC_COMMIT[:12]}"


def test_cli_fetch_into_the_cache_and_one_line_errors(server, monkeypatch, tmp_path):
    url, state = server
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(floc, "packaged_floc_sums", lambda: read_sums(state.root / "sums.txt"))
    monkeypatch.setattr(floc, "floc_file_names", lambda: NAMES)
    result = CliRunner().invoke(app, ["fetch", "floc", "--base-url", url])
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "cache" / f"floc-{FLOC_COMMIT[:12]}") == sorted(NAMES)
    (tmp_path / "cache" / f"floc-{FLOC_COMMIT[:12]}" / "word/word-1.jpg").unlink()
    state.corrupt.add("word/word-1.jpg")
    state.requests.clear()
    result = CliRunner().invoke(app, ["fetch", "floc", "--base-url", url])
    assert result.exit_code == 2 and state.requests == ["stimuli/word/word-1.jpg"] * 3
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("error: could not fetch fLoc word/word-1.jpg")
        and "Traceback" not in result.output
    )


def test_cli_fetch_reports_errors(tmp_path):
    result = CliRunner().invoke(
        app, ["fetch", "floc", "--from", str(tmp_path / "missing"), "--dest", str(tmp_path / "d")]
    )
    assert result.exit_code == 2 and result.stderr.strip().startswith("error: ") and "lacks 1584" in result.stderr
