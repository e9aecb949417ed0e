"""Fetch the fLoc localizer images (Stigliani, Weiner & Grill-Spector 2015) and verify them by SHA-256.

Files come from the public repository VPNL/fLoc, folder ``stimuli/`` at a pinned commit (11 categories ×
144 JPEGs named ``<category>-<k>.jpg``), one raw URL per file, downloaded with pooch. Every file must have a
SHA-256 in the shipped ``netfloc/data/floc_sha256.txt`` (or a given sums file) and is checked against it.
pooch writes each download to a temporary file and moves it into place only when its hash matches, and skips
files already present with the right hash, so an interrupted fetch resumes file by file when run again.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import platformdirs
import pooch
from rich.console import Console

from netfloc.errors import NetflocError, first_line
from netfloc.files import sha256_file
from netfloc.progress import track
from netfloc.stimuli._common import safe_join

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
CACHE_ENV = "NETFLOC_CACHE"
CITATION = (
    "fLoc images: please cite Stigliani A, Weiner KS, Grill-Spector K (2015). Temporal processing capacity "
    "in high-level visual cortex is domain specific. J Neurosci 35(36):12412-12424. "
    "The images carry no licence beyond academic use with this citation; do not redistribute them."
)
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
_PACKAGED_SUMS = "netfloc/data/floc_sha256.txt"


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
    """The fLoc sums shipped in ``netfloc/data/floc_sha256.txt``."""
    text = resources.files("netfloc").joinpath("data", "floc_sha256.txt").read_text(encoding="utf-8")
    return _parse_sums(text.splitlines(), _PACKAGED_SUMS)


def _resolve(dest: Path | None, sums_file: Path | None, names: Sequence[str] | None) -> tuple[Path, dict[str, str]]:
    """The destination folder and the registry ``{name: sha256}`` of the requested files.

    Every name must stay inside the destination and have a sum; netfloc never keeps an unverified file.
    """
    dest = Path(dest) if dest is not None else default_floc_dir()
    where = str(sums_file) if sums_file is not None else _PACKAGED_SUMS
    sums = read_sums(sums_file) if sums_file is not None else packaged_floc_sums()
    if names is None:
        names = list(sums) if sums_file is not None else floc_file_names()
    if not names:
        raise NetflocError(f"checksum file {where} lists no files; add '<sha256>  <path>' lines")
    for name in names:
        safe_join(dest, name, where)
    unpinned = [name for name in names if name not in sums]
    if unpinned:
        raise NetflocError(
            f"{where} has no SHA-256 for {len(unpinned)} of {len(names)} requested files (first: {unpinned[0]}); "
            "add a '<sha256>  <path>' line for each (netfloc does not keep unverified files)"
        )
    return dest, {name: sums[name] for name in names}


@contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Hide pooch's INFO log lines (one per file downloaded or retried) for the duration of a fetch."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


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
    """Download fLoc into ``dest`` (default :func:`default_floc_dir`) with pooch, verify every file, return ``dest``.

    ``base_url`` replaces :data:`FLOC_BASE_URL` (an HTTP(S) mirror; files are fetched from
    ``<base_url>/<category>/<file>``). ``sums_file`` replaces the shipped sums, and then also defines the file
    list unless ``names`` is given. Files already present with the right SHA-256 are not downloaded again; a
    wrong one is replaced. Each file gets ``1 + retries`` attempts (a network error or a wrong SHA-256).
    """
    console = console or Console(stderr=True)
    dest, registry = _resolve(dest, sums_file, names)
    attempts = 1 + max(retries, 0)
    fetcher = pooch.create(
        path=dest, base_url=base_url or FLOC_BASE_URL, registry=registry, retry_if_failed=attempts - 1
    )
    downloader = pooch.HTTPDownloader(timeout=timeout)
    with _quiet_pooch():
        for name in track(registry, "fetching fLoc", enabled=progress):
            try:
                fetcher.fetch(name, downloader=downloader)
            except (ValueError, OSError) as exc:  # pooch: wrong SHA-256; requests' errors are OSErrors
                problem = first_line(exc).split(". ")[0]  # pooch's first sentence names both hashes
                raise NetflocError(
                    f"could not fetch fLoc {name} from {fetcher.get_url(name)} after {attempts} attempt(s): "
                    f"{problem}; check the network or --base-url and run the fetch again (verified files are "
                    "kept), or import a local copy with --from DIR"
                ) from exc
    console.print(f"fLoc: {len(registry)} files verified by SHA-256 in {dest}\n{CITATION}")
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
    """Copy an existing local fLoc copy into ``dest`` after verifying it against the same sums as :func:`fetch_floc`.

    ``src_dir`` is the ``stimuli`` folder (``<category>/<file>.jpg``) or a clone of the repository holding
    it. A file that differs from its pinned sum (e.g. a resized copy) is refused. ``dest`` equal to
    ``src_dir`` verifies in place.
    """
    console = console or Console(stderr=True)
    src_dir = Path(src_dir)
    dest, registry = _resolve(dest, sums_file, names)
    if (src_dir / "stimuli").is_dir() and not (src_dir / next(iter(registry))).parent.is_dir():
        src_dir = src_dir / "stimuli"
    sources = {name: safe_join(src_dir, name, str(src_dir)) for name in registry}
    missing = [name for name, source in sources.items() if not source.is_file()]
    if missing:
        raise NetflocError(
            f"{src_dir} lacks {len(missing)} of {len(registry)} fLoc files (first: {missing[0]}); pass the fLoc "
            "'stimuli' folder (one sub-folder per category) or fetch without --from"
        )
    for name, source in track(sources.items(), "importing fLoc", enabled=progress):
        target = dest / name
        copy = target
        if source.resolve() != target.resolve():
            copy = target.with_name(target.name + ".part")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
        digest = sha256_file(copy)
        if digest != registry[name]:
            if copy != target:
                copy.unlink()
            raise NetflocError(
                f"{source} has SHA-256 {digest}, expected {registry[name]} for fLoc {name}; it is not the "
                f"original file of {FLOC_REPOSITORY}@{FLOC_COMMIT[:12]} (resized or re-encoded?)"
            )
        os.replace(copy, target)
    console.print(f"fLoc: {len(registry)} files verified by SHA-256 in {dest}\n{CITATION}")
    return dest
