"""The minimal adapter in docs/engines.md, registered through the `infersuite.engines`
entry-point group, runs the engine-generic modules and skips the rest by capability."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "engines.md"


def _adapter_from_docs() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return next(b for b in blocks if "class MyEngine(Engine)" in b)


def test_documented_adapter_plugs_in_through_an_entry_point(pytester, copy_suite_module):
    package = pytester.mkpydir("my_runtime")
    (package / "engine.py").write_text(_adapter_from_docs())
    dist = pytester.mkdir("my_runtime-0.1.dist-info")
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-runtime\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[infersuite.engines]\nmy-runtime = my_runtime.engine:create\n")
    pytester.syspathinsert()
    copy_suite_module("conformance/test_determinism.py")
    copy_suite_module("conformance/test_reference.py")
    copy_suite_module("conformance/test_cache.py")
    result = pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                                "--infer-engine", "my-runtime", "-p", "no:cacheprovider",
                                "-rs", "-v")
    result.assert_outcomes(passed=2, skipped=5)
    result.stdout.fnmatch_lines([
        "*test_forward_is_deterministic[[]llama-tiny-float32-cpu-my-runtime[]] PASSED*",
        "*test_logprobs_agree_with_reference[[]llama-tiny-float32-cpu-my-runtime[]] PASSED*",
        "*engine my-runtime lacks greedy*",
        "*engine my-runtime lacks cache*",
        "*engine my-runtime lacks kv_layout*",
    ])
