"""The wheel ships the fixtures: installed in a fresh venv, the suite runs outside the checkout.

The wheel is built from a clean copy of the checkout's sources (so a stale build/ or
*.egg-info folder in the checkout cannot smuggle files into it), installed with --no-deps into
a new venv, and the dependencies already installed for this interpreter are made visible
through a plain-path .pth line. A plain path line does not process the .pth files inside that
folder, so the checkout's editable install stays invisible and the wheel's copy is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITE_MODULE = REPO / "suite" / "conformance" / "test_cache.py"
TOP_LEVEL_BUILD_FILES = ("pyproject.toml", "README.md", "setup.py", "setup.cfg", "MANIFEST.in")
SHIPPED_DATA = (
    "py.typed",
    "data/prompts.json",
    "data/sentences.json",
    "data/zoo/index.json",
    "data/zoo/llama-tiny/config.json",
    "data/tokenizer/tokenizer.json",
    "data/tokenizer/tokenizer_config.json",
    "data/adder/README.md",
    "data/adder/config.json",
    "data/adder/golden.json",
    "data/adder/model.safetensors",
    "data/adder/tokenizer.json",
)
N_CHECKED_ANSWERS = 20
N_CACHE_TESTS = 3  # test_cache.py on one model, device and dtype

# Run by the new venv's python from tmp_path: where infersuite and its fixtures come from,
# and the shipped adder loads and still gives its golden answers.
CHECK_INSTALLED = f"""
import json
import infersuite
from infersuite.fixtures_path import fixtures_dir
from infersuite.models.adder import (
    default_adder_dir, format_prompt, generate_answers, heldout_problems, load_adder, load_golden,
)
model, tokenizer = load_adder(device="cpu")
prompts = [format_prompt(a, b) for a, b in heldout_problems()[:{N_CHECKED_ANSWERS}]]
answers = generate_answers(model, tokenizer, prompts)
golden = load_golden()["answers"]
print(json.dumps({{
    "infersuite": infersuite.__file__,
    "fixtures_dir": str(fixtures_dir()),
    "adder_dir": str(default_adder_dir()),
    "answers_match_golden": answers == [golden[prompt] for prompt in prompts],
}}))
"""


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert result.returncode == 0, (
        f"{command} exited {result.returncode}\n--- stdout\n{result.stdout}\n"
        f"--- stderr\n{result.stderr}")
    return result


def _copy_sources(target: Path) -> Path:
    """What a build of the checkout reads: pyproject.toml, README, licenses and src/."""
    target.mkdir()
    for name in TOP_LEVEL_BUILD_FILES:
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, target / name)
    for license_file in REPO.glob("LICEN[CS]E*"):
        shutil.copy2(license_file, target / license_file.name)
    shutil.copytree(REPO / "src", target / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return target


def _clean_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in {"INFERSUITE_FIXTURES", "PYTHONPATH", "PYTHONHOME", "PYTEST_ADDOPTS",
                          "PYTEST_PLUGINS", "PYTEST_CURRENT_TEST", "VIRTUAL_ENV"}}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _outer_site_dirs() -> list[str]:
    """This interpreter's site-packages folders (computed now, never hard-coded)."""
    paths = sysconfig.get_paths()
    dirs: list[str] = []
    for key in ("purelib", "platlib"):
        if paths[key] not in dirs and Path(paths[key]).is_dir():
            dirs.append(paths[key])
    return dirs


def test_wheel_ships_fixtures_and_runs_the_suite_outside_the_checkout(tmp_path: Path) -> None:
    env = _clean_env()

    # 1. Build the wheel and check it carries the data.
    wheelhouse = tmp_path / "wheelhouse"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(wheelhouse), str(_copy_sources(tmp_path / "source"))], tmp_path, env)
    (wheel,) = wheelhouse.glob("infersuite-*.whl")
    listing = _run([sys.executable, "-m", "zipfile", "-l", str(wheel)], tmp_path, env).stdout
    names = {line.split()[0] for line in listing.splitlines()[1:] if line.strip()}
    missing = [item for item in SHIPPED_DATA if f"infersuite/{item}" not in names]
    assert not missing, f"{wheel.name} lacks {missing}"
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]

    # 2. A fresh venv with only the wheel installed in it.
    venv_dir = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv_dir)], tmp_path, env)
    venv_python = venv_dir / "bin" / "python"
    # Installed before the .pth exists, so pip does not see the checkout's editable install.
    _run([sys.executable, "-m", "pip", "--python", str(venv_python), "install", "--no-deps",
          "--no-compile", "-q", str(wheel)], tmp_path, env)
    venv_site = _run([str(venv_python), "-c",
                      "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path, env).stdout.strip()
    (Path(venv_site) / "_infersuite_test_deps.pth").write_text(
        "".join(f"{path}\n" for path in _outer_site_dirs()))

    # 3. The installed package, its fixtures and the shipped adder, from outside the checkout.
    report = json.loads(_run([str(venv_python), "-c", CHECK_INSTALLED], tmp_path, env)
                        .stdout.strip().splitlines()[-1])
    venv_root = venv_dir.resolve()
    for key in ("infersuite", "fixtures_dir", "adder_dir"):
        location = Path(report[key]).resolve()
        assert venv_root in location.parents, f"{key} = {location}, not under {venv_root}"
        assert REPO not in location.parents, f"{key} = {location} comes from the checkout"
    assert report["answers_match_golden"]

    # 4. A suite module that needs the zoo, the tokenizer and the prompts.
    shutil.copy2(SUITE_MODULE, tmp_path / SUITE_MODULE.name)
    result = _run([str(venv_python), "-m", "pytest", SUITE_MODULE.name, "--infer-model",
                   "llama-tiny", "--infer-device", "cpu", "-p", "no:cacheprovider", "-q"],
                  tmp_path, env)
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"{N_CACHE_TESTS} passed"), result.stdout
    assert not any(word in summary for word in ("failed", "error", "skipped")), result.stdout

