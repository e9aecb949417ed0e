"""fLoc download and import against a local HTTP server on 127.0.0.1 serving a small fake fLoc tree."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from netfloc.cli.stimuli import app
from netfloc.errors import NetflocError
from netfloc.stimuli.floc import (
    CACHE_ENV,
    FLOC_COMMIT,
    LOCK_NAME,
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
    truncate_once: set[str] = field(default_factory=set)
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def make_handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """Serves ``state.root`` with Range support, wrong bytes for ``corrupt`` files, and a cut-short first
        response for ``truncate_once`` files (full Content-Length, half the body, connection closed)."""

        def do_GET(self) -> None:
            rel = unquote(urlsplit(self.path).path).lstrip("/")
            state.requests.append((rel, self.headers.get("Range")))
            path = state.root / rel
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            if any(rel.endswith(name) for name in state.corrupt):
                data = bytes(255 - b for b in data)
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-")) if "Range" in self.headers else 0
            body = data[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = next((name for name in state.truncate_once if rel.endswith(name)), None)
            if cut is not None:
                state.truncate_once.discard(cut)
                body = body[: len(body) // 2]
            self.wfile.write(body)

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


def test_fetch_downloads_verifies_and_reuses(server, tmp_path, capsys):
    url, state = server
    dest = fetch(url, state, tmp_path / "floc")
    expected = read_sums(state.root / "sums.txt")
    assert {
        p.relative_to(dest).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in dest.rglob("*.jpg")
    } == expected
    assert not list(dest.rglob("*.part")) and not (dest / LOCK_NAME).exists()
    err = capsys.readouterr().err
    assert "Stigliani" in err and "academic use" in err and "NOT verified" not in err
    state.requests.clear()
    fetch(url, state, dest)
    assert state.requests == []


def test_fetch_refuses_wrong_content_after_retries(server, tmp_path):
    url, state = server
    state.corrupt.add("body/body-1.jpg")
    with pytest.raises(NetflocError, match=r"body-1\.jpg .*SHA-256.*after up to 3 attempts"):
        fetch(url, state, tmp_path / "floc", retries=2)
    assert [rel for rel, _ in state.requests].count("stimuli/body/body-1.jpg") == 3
    assert not (tmp_path / "floc/body/body-1.jpg").exists()
    assert not (tmp_path / "floc/body/body-1.jpg.part").exists()


def test_fetch_resumes_an_interrupted_transfer(server, tmp_path):
    url, state = server
    state.truncate_once.add("adult/adult-2.jpg")
    dest = fetch(url, state, tmp_path / "floc")
    size = (state.root / "stimuli/adult/adult-2.jpg").stat().st_size
    tries = [rng for rel, rng in state.requests if rel == "stimuli/adult/adult-2.jpg"]
    assert tries == [None, f"bytes={size // 2}-"]
    assert (dest / "adult/adult-2.jpg").read_bytes() == (state.root / "stimuli/adult/adult-2.jpg").read_bytes()


def test_fetch_resumes_a_part_file_left_by_an_earlier_run(server, tmp_path):
    url, state = server
    original = (state.root / "stimuli/word/word-1.jpg").read_bytes()
    part = tmp_path / "floc/word/word-1.jpg.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(original[:100])
    fetch(url, state, tmp_path / "floc")
    assert ("stimuli/word/word-1.jpg", "bytes=100-") in state.requests
    assert (tmp_path / "floc/word/word-1.jpg").read_bytes() == original


@pytest.mark.parametrize("bad", ["../x.jpg", "adult/../../x.jpg", "/tmp/x.jpg", "adult\\..\\x.jpg"])
def test_paths_escaping_the_destination_are_refused(server, tmp_path, bad):
    url, state = server
    (state.root / "sums.txt").write_text(f"{'0' * 64}  {bad}\n")
    with pytest.raises(NetflocError, match="escape"):
        fetch(url, state, tmp_path / "dest" / "floc")
    with pytest.raises(NetflocError, match="escape"):
        fetch_floc(tmp_path / "dest2", base_url=url, names=[bad], progress=False)
    assert state.requests == [] and not (tmp_path / "x.jpg").exists()


def test_unpinned_files_are_trusted_on_first_use_then_verified(server, tmp_path, capsys):
    url, state = server
    empty = tmp_path / "empty-sums.txt"
    empty.write_text("")
    dest = fetch_floc(tmp_path / "floc", base_url=url, sums_file=empty, names=NAMES, progress=False)
    assert "NOT verified" in capsys.readouterr().err
    assert read_sums(dest / LOCK_NAME) == read_sums(state.root / "sums.txt")
    (dest / "adult/adult-1.jpg").write_bytes(b"tampered")
    fetch_floc(dest, base_url=url, sums_file=empty, names=NAMES, progress=False)
    assert "does not match" in capsys.readouterr().err
    assert (
        read_sums(dest / LOCK_NAME)["adult/adult-1.jpg"]
        == hashlib.sha256((dest / "adult/adult-1.jpg").read_bytes()).hexdigest()
    )
    (dest / "body/body-2.jpg").unlink()
    state.corrupt.add("body/body-2.jpg")
    with pytest.raises(NetflocError, match="body-2"):
        fetch_floc(dest, base_url=url, sums_file=empty, names=NAMES, progress=False, retries=0)


def test_bad_sums_file_and_unreachable_server(tmp_path):
    sums = tmp_path / "sums.txt"
    sums.write_text("not-a-hash  adult/adult-1.jpg\n")
    with pytest.raises(NetflocError, match=r"sums\.txt:1"):
        read_sums(sums)
    sums.write_text(f"{'a' * 64}  adult/adult-1.jpg\n")
    with pytest.raises(NetflocError, match=r"could not fetch .*(HTTP|transfer failed)"):
        fetch_floc(tmp_path / "floc", base_url="http://127.0.0.1:9/none", sums_file=sums, progress=False, timeout=2)


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


def test_cli_fetch_reports_errors(tmp_path):
    result = CliRunner().invoke(
        app, ["fetch", "floc", "--from", str(tmp_path / "missing"), "--dest", str(tmp_path / "d")]
    )
    assert result.exit_code == 2 and result.stderr.strip().startswith("error: ") and "lacks 1584" in result.stderr
