"""The supported versions matrix: Python 3.11-3.13 with Django 5.2 LTS, 6.0 and 6.1.

    nox -l                      # every session
    nox -s "tests(3.13, django 6.1)"   # one pair, the whole suite
    nox -t ci                   # CI's second step: newest pair in full, the others fast
    nox -t fast                 # every pair on the fast subset
    nox -s lint                 # ruff check, ruff format --check, mypy --strict

Django 6.x needs Python 3.12 or newer, so Python 3.11 pairs with Django 5.2 only.
Interpreters are looked up, never downloaded: ``pythonX.Y`` on the ``PATH`` or pyenv's
``$PYENV_ROOT/versions/X.Y.*``. Extra arguments after ``--`` go to pytest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.download_python = "never"
nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests"]

PAIRS = [
    ("3.11", "5.2"),
    ("3.12", "5.2"),
    ("3.12", "6.0"),
    ("3.12", "6.1"),
    ("3.13", "5.2"),
    ("3.13", "6.0"),
    ("3.13", "6.1"),
]
OLDEST, NEWEST = PAIRS[0], PAIRS[-1]


def interpreter(version: str) -> str:
    """``pythonX.Y`` that runs, else pyenv's newest X.Y build (never a download)."""
    found = shutil.which(f"python{version}")
    if found:
        probe = subprocess.run([found, "-c", "pass"], capture_output=True)
        if probe.returncode == 0:  # a pyenv shim of a version not selected fails here
            return found
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    builds = sorted(
        root.glob(f"{version}.*/bin/python{version}"),
        key=lambda p: [int(n) for n in p.parent.parent.name.split(".") if n.isdigit()],
    )
    return str(builds[-1]) if builds else version  # nox then says it is not found


def install(session: nox.Session, django: str) -> None:
    session.install("-e", ".[test]", f"Django~={django}.0")
    session.run("python", "scripts/fetch_django_tests.py")
    session.run(
        "python",
        "-c",
        "import sys, django; print('Python', sys.version.split()[0], "
        "'Django', django.get_version())",
    )


def _params(full: bool) -> list[object]:
    """Every pair; tagged ``ci`` where CI runs it this way. The oldest pair runs in full in
    CI's first step (``bash scripts/test.sh`` on Python 3.11), so ``-t ci`` leaves it out."""
    params = []
    for python, django in PAIRS:
        pair = (python, django)
        ci = pair == NEWEST if full else pair not in (OLDEST, NEWEST)
        params.append(
            nox.param(
                interpreter(python),
                django,
                id=f"{python}, django {django}",
                tags=["ci"] if ci else [],
            )
        )
    return params


@nox.session
@nox.parametrize(["python", "django"], _params(full=True))
def tests(session: nox.Session, django: str) -> None:
    """The whole suite on one (Python, Django) pair."""
    install(session, django)
    session.run("python", "-m", "pytest", *(session.posargs or ["-q"]))


@nox.session(tags=["fast"])
@nox.parametrize(["python", "django"], _params(full=False))
def fast(session: nox.Session, django: str) -> None:
    """The fast subset on one (Python, Django) pair (``tests/selection.py``).

    Every test that needs no Redis, and the conformance suites (ours and Django's own) on a
    single server."""
    install(session, django)
    fast_subset = session.run("python", "-m", "tests.selection", silent=True)
    if not isinstance(fast_subset, str):
        return  # --install-only
    session.run("python", "-m", "pytest", "-m", fast_subset.strip(), *(session.posargs or ["-q"]))


@nox.session(python=interpreter(NEWEST[0]))
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict on the package, as ``scripts/test.sh`` runs them."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "django_creator_cache")
