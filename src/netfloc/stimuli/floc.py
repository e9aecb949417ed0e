"""Fetch the fLoc localizer images (Stigliani, Weiner & Grill-Spector 2015) and verify them by SHA-256.

Files come from the public repository VPNL/fLoc, folder ``stimuli/`` at a pinned commit (11 categories ×
144 JPEGs named ``<category>-<k>.jpg``), one raw URL per file. Every file is checked against the SHA-256 sums
shipped in ``netfloc/data/floc_sha256.txt``. A file with no shipped sum is trusted on first use: its sum is
recorded in a lock file (``.netfloc-sha256.lock``) in the destination folder and verified on every later
use, and the fetch says loudly that the first download was not verified. Downloads resume from a ``.part``
file with an HTTP Range request, and a file whose hash is wrong is discarded and fetched again.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import quote
from urllib.request import Request, urlopen

import platformdirs
from rich.console import Console

from netfloc.errors import NetflocError
from netfloc.progress import track
from netfloc.stimuli._common import safe_join, sha256_file

FLOC_REPOSITORY = "VPNL/fLoc"
FLOC_COMMIT = "de6a26cc269a2c7075461a4c839bfd628f225c95"
FLOC_BASE_URL = f"https://raw.githubusercontent.com/{FLOC_REPOSITORY}/{FLOC_COMMIT}/stimuli"
FLOC_CATEGORIES: tuple[str, ...] = (
    "adult",
    "child",
    "body",
    "limb",
    "car",
    "instrument",
    "corridor",
    "house",
    "word",
    "number",
    "scrambled",
)
FLOC_IMAGES_PER_CATEGORY = 144
LOCK_NAME = ".netfloc-sha256.lock"
CACHE_ENV = "NETFLOC_CACHE"
CITATION = (
    "fLoc images: please cite Stigliani A, Weiner KS, Grill-Spector K (2015). Temporal processing capacity "
    "in high-level visual cortex is domain specific. J Neurosci 35(36):12412-12424. "
    "The images carry no licence beyond academic use with this citation; do not redistribute them."
)
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def cache_dir() -> Path:
    """netfloc's cache folder: ``$NETFLOC_CACHE`` if set, else platformdirs ``user_cache_dir('netfloc')``."""
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("netfloc"))


def default_floc_dir() -> Path:
    """Where fLoc is stored by default: ``cache_dir() / 'floc-<commit[:12]>'``."""
    return cache_dir() / f"floc-{FLOC_COMMIT[:12]}"


def floc_file_names() -> list[str]:
    """The 1584 fLoc file names relative to ``stimuli/``: ``<category>/<category>-<k>.jpg``, k = 1…144."""
    return [
        f"{category}/{category}-{k}.jpg" for category in FLOC_CATEGORIES for k in range(1, FLOC_IMAGES_PER_CATEGORY + 1)
    ]


def read_sums(path: Path) -> dict[str, str]:
    """Parse a ``sha256sum``-style file (``<hex>  <relative/path>``; blank and ``#`` lines ignored).

    Paths must stay inside the destination (see ``safe_join``); a bad line raises NetflocError.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise NetflocError(f"cannot read checksum file {path}: {exc}") from exc
    return _parse_sums(lines, str(path))


def _parse_sums(lines: Sequence[str], where: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _SUM_LINE.match(line.rstrip("\r\n"))
        if match is None:
            raise NetflocError(
                f"{where}:{number}: expected '<sha256 hex>  <relative/path>', got {line[:60]!r}; fix the line"
            )
        name = match.group(2)
        safe_join(Path("."), name, f"{where}:{number}")
        sums[name] = match.group(1).lower()
    return sums


def packaged_floc_sums() -> dict[str, str]:
    """The fLoc sums shipped in ``netfloc/data/floc_sha256.txt`` (empty if the file is absent)."""
    resource = resources.files("netfloc").joinpath("data", "floc_sha256.txt")
    if not resource.is_file():
        return {}
    return _parse_sums(resource.read_text(encoding="utf-8").splitlines(), "netfloc/data/floc_sha256.txt")


def _write_sums(path: Path, sums: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items())), encoding="utf-8")
    os.replace(tmp, path)


class _Checker:
    """Expected sums (pinned first, then the trust-on-first-use lock) for one destination folder."""

    def __init__(self, dest: Path, pinned: dict[str, str]) -> None:
        self.lock_path = dest / LOCK_NAME
        self.pinned = pinned
        self.lock = read_sums(self.lock_path) if self.lock_path.is_file() else {}
        self.first_use: list[str] = []

    def expected(self, name: str) -> str | None:
        return self.pinned.get(name) or self.lock.get(name)

    def trust(self, name: str, digest: str) -> None:
        self.lock[name] = digest
        self.first_use.append(name)

    def report(self, console: Console, total: int) -> None:
        verified = total - len(self.first_use)
        console.print(f"fLoc: {verified} of {total} files verified by SHA-256 in {self.lock_path.parent}\n{CITATION}")

    def save(self, console: Console) -> None:
        if self.first_use:
            _write_sums(self.lock_path, self.lock)
            console.print(
                f"[bold red]WARNING:[/] {len(self.first_use)} file(s) (e.g. {self.first_use[0]}) have no "
                "SHA-256 pinned in netfloc, so they were NOT verified; their sums were recorded in "
                f"{self.lock_path} (trust on first use) and are checked on every later use."
            )


def _resolve(
    dest: Path | None, sums_file: Path | None, names: Sequence[str] | None
) -> tuple[Path, dict[str, str], list[str]]:
    dest = Path(dest) if dest is not None else default_floc_dir()
    pinned = read_sums(sums_file) if sums_file is not None else packaged_floc_sums()
    if names is None:
        names = list(pinned) if sums_file is not None else floc_file_names()
    if not names:
        raise NetflocError(f"checksum file {sums_file} lists no files; add '<sha256>  <path>' lines")
    return dest, pinned, list(names)


def _download(url: str, part: Path, timeout: float) -> None:
    """Download ``url`` into ``part``, resuming from its current size with ``Range: bytes=<size>-``."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "netfloc"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        if exc.code == 416:
            part.unlink()
        raise
    with response:
        resumed = offset > 0 and response.status == 206
        if resumed and not (response.headers.get("Content-Range") or "").startswith(f"bytes {offset}-"):
            part.unlink()
            raise OSError(f"server answered range {response.headers.get('Content-Range')!r} for offset {offset}")
        with part.open("ab" if resumed else "wb") as handle:
            shutil.copyfileobj(response, handle, 1 << 16)
        length = response.headers.get("Content-Length")
        expected = (offset if resumed else 0) + int(length) if length and length.isdigit() else None
        if expected is not None and part.stat().st_size < expected:
            raise OSError(f"transfer cut short at {part.stat().st_size} of {expected} bytes")


def _fetch_one(url: str, target: Path, expected: str | None, attempts: int, timeout: float) -> str:
    """Fetch one file into ``target`` (via ``target.part``); return its SHA-256 or raise NetflocError."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    problem = ""
    for _ in range(attempts):
        try:
            _download(url, part, timeout)
        except HTTPError as exc:
            problem = f"HTTP {exc.code} {exc.reason}"
            if 400 <= exc.code < 500 and exc.code not in (408, 416, 429):
                break
            continue
        except (OSError, http.client.HTTPException) as exc:
            problem = f"transfer failed ({exc})"
            continue
        digest = sha256_file(part)
        if expected is None or digest == expected:
            os.replace(part, target)
            return digest
        part.unlink()
        problem = f"SHA-256 {digest[:16]}… instead of the expected {expected[:16]}…"
    raise NetflocError(
        f"could not fetch {target.name} from {url}: {problem} (after up to {attempts} attempts); check the "
        "network or the base URL and run the fetch again (finished files are kept)"
    )


def fetch_floc(
    dest: Path | None = None,
    *,
    base_url: str | None = None,
    sums_file: Path | None = None,
    names: Sequence[str] | None = None,
    retries: int = 2,
    timeout: float = 60.0,
    progress: bool = True,
    console: Console | None = None,
) -> Path:
    """Download fLoc into ``dest`` (default :func:`default_floc_dir`), verify every file, return ``dest``.

    ``base_url`` replaces :data:`FLOC_BASE_URL` (any urllib URL, e.g. a local mirror; files are fetched from
    ``<base_url>/<category>/<file>``). ``sums_file`` replaces the shipped sums, and then also defines the file
    list unless ``names`` is given. Files already present are re-verified, not downloaded again; a wrong one
    is replaced. Each file gets ``1 + retries`` attempts; interrupted transfers resume from ``.part``.
    """
    console = console or Console(stderr=True)
    dest, pinned, names = _resolve(dest, sums_file, names)
    base_url = (base_url or FLOC_BASE_URL).rstrip("/")
    targets = [(name, safe_join(dest, name, str(sums_file or "the fLoc manifest"))) for name in names]
    dest.mkdir(parents=True, exist_ok=True)
    checker = _Checker(dest, pinned)
    try:
        for name, target in track(targets, "fetching fLoc", enabled=progress):
            expected = checker.expected(name)
            if target.is_file():
                digest = sha256_file(target)
                if expected is None:
                    checker.trust(name, digest)
                if expected is None or digest == expected:
                    continue
                console.print(f"{target} does not match its SHA-256; downloading it again")
                target.unlink()
            url = f"{base_url}/{quote(name)}"
            digest = _fetch_one(url, target, expected, 1 + max(retries, 0), timeout)
            if expected is None:
                checker.trust(name, digest)
    finally:
        checker.save(console)
    checker.report(console, len(names))
    return dest


def import_local(
    src_dir: Path,
    dest: Path | None = None,
    *,
    sums_file: Path | None = None,
    names: Sequence[str] | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> Path:
    """Copy an existing local fLoc copy into ``dest`` after verifying it like :func:`fetch_floc`.

    ``src_dir`` is the ``stimuli`` folder (``<category>/<file>.jpg``) or a clone of the repository holding
    it. A file that differs from its pinned sum (e.g. a resized copy) is refused. ``dest`` equal to
    ``src_dir`` verifies in place.
    """
    console = console or Console(stderr=True)
    src_dir = Path(src_dir)
    dest, pinned, names = _resolve(dest, sums_file, names)
    if (src_dir / "stimuli").is_dir() and not (src_dir / names[0]).parent.is_dir():
        src_dir = src_dir / "stimuli"
    pairs = [
        (
            name,
            safe_join(src_dir, name, str(src_dir)),
            safe_join(dest, name, str(sums_file or "the fLoc manifest")),
        )
        for name in names
    ]
    missing = [name for name, source, _ in pairs if not source.is_file()]
    if missing:
        raise NetflocError(
            f"{src_dir} lacks {len(missing)} of {len(names)} fLoc files (first: {missing[0]}); pass the fLoc "
            "'stimuli' folder (one sub-folder per category) or fetch without --from"
        )
    dest.mkdir(parents=True, exist_ok=True)
    checker = _Checker(dest, pinned)
    try:
        for name, source, target in track(pairs, "importing fLoc", enabled=progress):
            copy = target.with_name(target.name + ".part")
            if source.resolve() == target.resolve():
                copy = target
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, copy)
            digest = sha256_file(copy)
            expected = checker.expected(name)
            if expected is not None and digest != expected:
                if copy != target:
                    copy.unlink()
                raise NetflocError(
                    f"{source} has SHA-256 {digest[:16]}…, expected {expected[:16]}… for fLoc {name}; it is "
                    f"not the original file of {FLOC_REPOSITORY}@{FLOC_COMMIT[:12]} (resized or re-encoded?)"
                )
            if expected is None:
                checker.trust(name, digest)
            os.replace(copy, target)
    finally:
        checker.save(console)
    checker.report(console, len(names))
    return dest
