"""The static checks the code is held to: mypy (the type hints are checked, with the
configuration in pyproject.toml) and ruff (the lint rules there). `make install` installs
both with the test extras."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (make install installs it)")


def test_mypy_finds_no_type_error(tmp_path):
    _tool("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def test_mypy_sees_a_records_field_mistake(tmp_path):
    """The check is live: a wrong field for a sangja.records dataclass is an error (the
    records module hides `typing` from the run time, not from mypy)."""
    _tool("mypy")
    bad = tmp_path / "bad.py"
    bad.write_text("from sangja.image.reference import Reference\n"
                   "Reference(domain='d', path='p', nosuch=1)\n")
    r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "c"),
                        "--config-file", str(ROOT / "pyproject.toml"), str(bad)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and 'Unexpected keyword argument "nosuch"' in r.stdout, r.stdout


def test_ruff_finds_nothing():
    _tool("ruff")
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
