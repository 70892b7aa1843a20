"""A pytest run without an inference case, `pytest --help` and `infersuite --help` import
no torch: the plugin loads heavy modules only when a case needs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "onnxruntime", "matplotlib")


def _top_level_imports(args: list[str], cwd: Path) -> set[str]:
    """Modules imported by `python -X importtime ARGS`, run in `cwd`."""
    done = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 5), done.stdout + done.stderr
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("args", [
    ["-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"],
    ["-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"],  # -s: show imports in tests
    ["-m", "pytest", "--help"],
    ["-m", "infersuite.cli", "--help"],
], ids=["collect", "run", "pytest-help", "infersuite-help"])
def test_no_heavy_import_without_an_inference_case(tmp_path, args):
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
    imported = _top_level_imports(args, tmp_path)
    assert "infersuite" in imported, "the plugin did not load"
    assert not imported & set(HEAVY), f"imported {sorted(imported & set(HEAVY))}"


def test_an_inference_case_does_import_torch(tmp_path):
    """The control: the same probe sees torch once a case runs."""
    (tmp_path / "test_case.py").write_text(
        "def test_case(infer_case):\n    pass\n")
    imported = _top_level_imports(
        ["-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--infer-device", "cpu",
         "--infer-model", "llama-tiny"], tmp_path)
    assert "torch" in imported
