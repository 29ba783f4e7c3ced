"""Luigi's own target contract against the lake's target, for a local root and a bucket root.

The suite is ``FileSystemTargetTestMixin`` in ``test/target_test.py`` of the luigi sdist on
PyPI: fetched at test time for the installed luigi version (``pip download``) into
pytest's cache directory and imported from there, never copied into this project. Without
PyPI (and no cached copy) the tests are skipped, saying why.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tarfile
import unittest
import unittest.mock
import uuid
from pathlib import Path
from types import ModuleType

import luigi.format
import pytest

from pipeline.lake.root import Lake
from pipeline.lake.targets import LakeTarget

PROJECT = Path(__file__).resolve().parents[2]
VERSION = importlib.metadata.version("luigi")
# Where pytest keeps directories of its cache (what ``config.cache.mkdir`` gives).
CACHE = PROJECT / ".pytest_cache" / "d" / f"luigi-sdist-{VERSION}"
SUITE_FILES = ("test/target_test.py", "test/helpers.py")


def fetch_suite() -> Path | str:
    """The directory holding luigi's ``target_test.py`` (and the ``helpers.py`` it imports),
    or why it could not be had."""
    test_dir = CACHE / "test"
    if all((CACHE / name).is_file() for name in SUITE_FILES):
        return test_dir
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        fetched = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", f"luigi=={VERSION}", "--dest", str(CACHE)],
            capture_output=True, text=True, timeout=180, check=False)
    except subprocess.TimeoutExpired:
        return f"PyPI did not answer within 180 s for the luigi {VERSION} sdist"
    archives = sorted(CACHE.glob(f"luigi-{VERSION}.tar.gz"))
    if fetched.returncode or not archives:
        last = (fetched.stderr.strip().splitlines() or ["no output"])[-1]
        return f"cannot download the luigi {VERSION} sdist from PyPI: {last}"
    with tarfile.open(archives[0]) as sdist:
        for name in SUITE_FILES:
            member = sdist.getmember(f"luigi-{VERSION}/{name}")
            data = sdist.extractfile(member)
            assert data is not None
            (CACHE / name).parent.mkdir(parents=True, exist_ok=True)
            (CACHE / name).write_bytes(data.read())
    return test_dir


def load_mixin() -> type | str:
    found = fetch_suite()
    if isinstance(found, str):
        return found

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, found / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    # target_test.py imports the `mock` backport by name; the standard library's is the same.
    sys.modules.setdefault("mock", unittest.mock)
    load("helpers")
    return load("target_test").FileSystemTargetTestMixin


MIXIN = load_mixin()
if isinstance(MIXIN, str):
    pytestmark = pytest.mark.skip(reason=MIXIN)
    MIXIN = object


class LakeSuite(MIXIN):  # type: ignore[valid-type, misc]
    """Luigi's cases, plus: what a write staged (a temporary beside the file, or a file in
    scratch) is gone afterwards, and ``exists`` is tested as the mixin asks."""

    lake: Lake

    def create_target(self, format: luigi.format.Format | None = None) -> LakeTarget:
        return self.lake.target(f"suite/{uuid.uuid4().hex}.txt", format)

    def assertCleanUp(self, tmp_path: str = "") -> None:
        assert not tmp_path or not os.path.exists(tmp_path), f"{tmp_path} left behind"
        assert self.lake.scratch.staged() == []
        assert [k for k in self.lake.keys("") if "tmp" in k] == []

    def test_exists(self) -> None:
        target = self.create_target()
        assert not target.exists()
        with target.open("w") as f:
            f.write("x")
        assert target.exists()
        target.remove()
        assert not target.exists()


class TestLocalRoot(LakeSuite, unittest.TestCase):
    @pytest.fixture(autouse=True)
    def _lake(self, tmp_path: Path) -> None:
        self.lake = Lake(str(tmp_path / "lake"), scratch=tmp_path / "scratch")


class TestBucketRoot(LakeSuite, unittest.TestCase):
    @pytest.fixture(autouse=True)
    def _lake(self, tmp_path: Path, gcs_bucket: str) -> None:
        self.lake = Lake(f"gs://{gcs_bucket}/suite-root", scratch=tmp_path / "scratch")


def test_the_suite_is_luigis_whole_mixin() -> None:
    cases = [name for name in dir(MIXIN) if name.startswith("test_")]
    assert len(cases) >= 17, cases  # luigi 3.8 has 17; none may be lost on the way here
