"""The installed package: one top-level package `cutover`, with tui, checks and features inside.

Builds the real wheel (and a wheel from the real sdist) without network, installs it with
`--no-deps` into a virtual environment that sees this interpreter's packages (so the
dependencies need not be downloaded again), and uses it from a folder that is not the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _build_wheel(source: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("cutover-*.whl")
    return wheel


def _top_level(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return {name.split("/")[0] for name in z.namelist()}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return _build_wheel(ROOT, tmp_path_factory.mktemp("wheel"))


def test_the_wheel_installs_nothing_top_level_but_cutover(wheel):
    assert _top_level(wheel) == {"cutover", "cutover-0.1.0.dist-info"}
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert {"cutover/tui/__init__.py", "cutover/checks/__init__.py", "cutover/features/__init__.py"} <= names
    assert not any(n.startswith(("tui/", "checks/", "features/", "tests/")) for n in names)


def test_a_wheel_built_from_the_sdist_has_the_same_files(wheel, tmp_path):
    from hatchling.builders.sdist import SdistBuilder

    (sdist,) = [Path(p) for p in SdistBuilder(str(ROOT)).build(directory=str(tmp_path / "sdist"))]
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    again = _build_wheel(unpacked, tmp_path / "again")
    with zipfile.ZipFile(wheel) as a, zipfile.ZipFile(again) as b:
        ours = {n for n in a.namelist() if not n.endswith("RECORD")}
        theirs = {n for n in b.namelist() if not n.endswith("RECORD")}
    assert theirs == ours


def test_the_installed_wheel_runs_and_finds_its_features(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    probe = (
        "import importlib.util, cutover, cutover.tui, cutover.checks\n"
        "from cutover.checks import feature_root\n"
        "with feature_root() as p: print(p, (p / '__init__.py').is_file())\n"
        "print(cutover.__file__)\n"
        "print(importlib.util.find_spec('tui'), importlib.util.find_spec('checks'))\n"
    )
    out = subprocess.run(
        [str(python), "-c", probe], cwd=outside, env=env, capture_output=True, text=True, check=True
    ).stdout
    features_line, package_line, top_level_line = out.splitlines()
    assert str(env_dir) in package_line, "the wheel's copy is imported, not the checkout"
    assert features_line.endswith("True") and str(env_dir) in features_line
    assert top_level_line == "None None", "no top-level tui or checks package is importable"
    help_text = subprocess.run(
        [str(env_dir / "bin" / "cutover"), "--help"], cwd=outside, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "Usage: cutover" in help_text


def test_a_checkout_reaches_tui_checks_and_features_without_reinstalling():
    probe = "import cutover.tui, cutover.checks, cutover.features; print(cutover.tui.__file__); print(cutover.features.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd="/", capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [str(ROOT / "tui" / "__init__.py"), str(ROOT / "features" / "__init__.py")]
