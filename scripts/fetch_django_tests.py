#!/usr/bin/env python3
"""Fetch Django's own cache tests (``tests/cache/`` of its sdist) for the installed Django.

Django's wheel ships no tests; its sdist does. This script asks pip for the sdist of exactly the
installed Django version, and extracts ``tests/cache/`` from it to::

    .django-tests/<version>/cache/

so that ``.django-tests/<version>`` can go on ``sys.path`` and the suite be imported as the
package ``cache`` (the name Django's own test runner gives it: its tests refer to
``cache.tests.custom_key_func``, ``cache.liberal_backend`` ...). Any other package of Django's
``tests/`` tree that the extracted files import is extracted next to it.

Idempotent: when ``.django-tests/<version>/.complete`` exists, nothing is downloaded. The sdist
is kept in ``.django-tests/sdist/`` and reused. Extraction goes to a temporary directory that is
renamed into place at the end, so an interrupted run leaves nothing half-done behind.

Used by ``scripts/test.sh`` before pytest, and by ``tests/test_django_cache_suite.py``.
"""

from __future__ import annotations

import ast
import copy
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import django

REPO = Path(__file__).resolve().parent.parent
ROOT = REPO / ".django-tests"
SDIST_DIR = ROOT / "sdist"
PACKAGE = "cache"
"""The package of Django's test tree this project runs."""
MARKER = ".complete"


def suite_dir(version: str | None = None) -> Path:
    """The directory put on ``sys.path``: it holds the package ``cache``."""
    return ROOT / (version or django.get_version())


def is_present(version: str | None = None) -> bool:
    base = suite_dir(version)
    return (base / MARKER).is_file() and (base / PACKAGE / "tests.py").is_file()


def find_sdist(version: str) -> Path | None:
    """The sdist of ``version`` already downloaded, if any (file names vary in case)."""
    if not SDIST_DIR.is_dir():
        return None
    wanted = f"django-{version}.tar.gz"
    for path in SDIST_DIR.iterdir():
        if path.name.lower() == wanted:
            return path
    return None


def download_sdist(version: str) -> Path:
    """``pip download`` the sdist of ``version`` into ``SDIST_DIR``; return its path."""
    found = find_sdist(version)
    if found is not None:
        return found
    SDIST_DIR.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download",
        "--disable-pip-version-check",
        "--no-binary", ":all:",
        "--no-deps",
        "--dest", str(SDIST_DIR),
        f"django=={version}",
    ]  # fmt: skip
    print(f"fetch_django_tests: {' '.join(command[1:])}", flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(
            f"fetch_django_tests: pip could not download the sdist of Django {version} "
            f"(exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    found = find_sdist(version)
    if found is None:
        sys.exit(f"fetch_django_tests: pip ran, but no django-{version}.tar.gz is in {SDIST_DIR}")
    return found


def _tests_root(archive: tarfile.TarFile) -> PurePosixPath:
    """``django-<version>/tests`` (the top directory's name is taken from the archive)."""
    for name in archive.getnames():
        parts = PurePosixPath(name).parts
        if len(parts) >= 3 and parts[1] == "tests" and parts[2] == PACKAGE:
            return PurePosixPath(parts[0], "tests")
    sys.exit(f"fetch_django_tests: the sdist has no tests/{PACKAGE}/ directory")


def _packages_in(archive: tarfile.TarFile, tests_root: PurePosixPath) -> set[str]:
    """Top-level names of Django's test tree (``tests/<name>/`` or ``tests/<name>.py``)."""
    names: set[str] = set()
    for member in archive.getnames():
        path = PurePosixPath(member)
        if path.parent == tests_root and path.name:
            names.add(path.name.removesuffix(".py"))
        elif len(path.parts) > len(tests_root.parts) and path.parts[: len(tests_root.parts)] == (
            tests_root.parts
        ):
            names.add(path.parts[len(tests_root.parts)])
    return names


def _imported_top_names(directory: Path) -> set[str]:
    """Top-level modules imported (absolutely) by the Python files under ``directory``."""
    names: set[str] = set()
    for source in directory.rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _extract(archive: tarfile.TarFile, tests_root: PurePosixPath, name: str, dest: Path) -> None:
    """Extract ``tests/<name>`` (a package or a module) into ``dest/<name>``."""
    prefix = tests_root / name
    members = []
    for member in archive.getmembers():
        path = PurePosixPath(member.name)
        if path == prefix.with_suffix(".py") or (path != prefix and prefix in path.parents):
            if not (member.isfile() or member.isdir()) or ".." in path.parts:
                continue  # no links, devices or paths out of the archive's tree
            member = copy.copy(member)
            member.name = str(path.relative_to(tests_root))
            members.append(member)
    if not members:
        sys.exit(f"fetch_django_tests: tests/{name} is missing from the sdist")
    if hasattr(tarfile, "data_filter"):
        archive.extractall(dest, members=members, filter="data")
    else:  # Python < 3.11.4: members are already limited to regular files and directories.
        archive.extractall(dest, members=members)


def extract(sdist: Path, version: str) -> Path:
    """Extract ``tests/cache`` (and the test packages it imports) to ``suite_dir(version)``."""
    target = suite_dir(version)
    ROOT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=ROOT))
    try:
        with tarfile.open(sdist) as archive:
            tests_root = _tests_root(archive)
            available = _packages_in(archive, tests_root)
            done: set[str] = set()
            pending = {PACKAGE}
            while pending:
                name = pending.pop()
                _extract(archive, tests_root, name, work)
                done.add(name)
                pending |= (_imported_top_names(work) & available) - done
        (work / MARKER).write_text(f"{sdist.name}\n{', '.join(sorted(done))}\n")
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def main() -> int:
    version = django.get_version()
    target = suite_dir(version)
    if is_present(version):
        print(f"fetch_django_tests: Django {version} cache tests already in {target / PACKAGE}")
        return 0
    sdist = download_sdist(version)
    extract(sdist, version)
    extracted = (target / MARKER).read_text().splitlines()[1]
    print(
        f"fetch_django_tests: Django {version} tests ({extracted}) extracted from {sdist.name} "
        f"to {target}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
