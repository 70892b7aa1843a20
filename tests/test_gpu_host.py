"""`make gpu` as a GPU host runs it: an image's own python that already holds torch and
pytest, no package index. Here that python is a bare venv that sees this environment's
packages through a .pth file, and the index is unreachable (--no-index); the host has no
GPU, so the run must end in the plugin's clear usage error, after an offline install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def image_python(tmp_path) -> Path:
    venv = tmp_path / "image"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path("
         "'purelib'))"], check=True, capture_output=True, text=True).stdout.strip())
    (site / "image.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin" / "python"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_gpu_installs_offline_and_needs_a_gpu(image_python, tmp_path):
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run = subprocess.run(["make", "-C", str(REPO), "gpu", f"GPU_PYTHON={image_python}",
                          f"GPU_REPORT={tmp_path / 'reports'}"],
                         env=env, capture_output=True, text=True, timeout=600, check=False)
    out = run.stdout + run.stderr
    assert "-m pytest suite -m gpu" in out, out  # the install step passed
    assert "--infer-device cuda: no CUDA device is visible" in out, out
    assert run.returncode != 0
    installed = subprocess.run([str(image_python), "-c", "import infersuite.plugin, sys; "
                                "print(infersuite.plugin.__file__)"],
                               capture_output=True, text=True, check=True).stdout
    assert installed.startswith(str(REPO / "src")), installed
