"""--infer-plant-slowdown: the hf engine is built slowed, the case id is not (so a stored
baseline still matches), and the option refuses to poison a baseline or an A/B run."""

from __future__ import annotations

import pytest

PROBE_FILE = """
def test_engine(infer_case):
    print("ENGINE", infer_case.id, infer_case.engine.spec, infer_case.engine.slowdown)
"""


def _run(pytester, *args):
    pytester.makepyfile(test_probe=PROBE_FILE)
    return pytester.runpytest("-p", "no:cacheprovider", "-s", "--infer-device", "cpu",
                              "--infer-model", "llama-tiny", "--infer-report-dir", "rep", *args)


def test_the_engine_is_slowed_under_an_unchanged_id(pytester):
    planted = _run(pytester, "--infer-plant-slowdown", "0.25")
    planted.assert_outcomes(passed=1)
    planted.stdout.fnmatch_lines(["*ENGINE llama-tiny-float32-cpu-hf hf:slowdown=0.25 0.25"])
    plain = _run(pytester)  # control: without the option the engine runs as it is
    plain.stdout.fnmatch_lines(["*ENGINE llama-tiny-float32-cpu-hf hf 0.0"])


@pytest.mark.parametrize(("args", "message"), [
    (("--infer-plant-slowdown", "3.5"), "*use a fraction up to 3 *"),
    (("--infer-plant-slowdown", "0.1", "--infer-save-baseline", "b.json"),
     "*cannot be saved into a baseline*"),
    (("--infer-plant-slowdown", "0.1", "--infer-ab", "hf"), "*--infer-ab same:slowdown=F*"),
])
def test_misuse_is_a_usage_error(pytester, args, message):
    result = _run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert not (pytester.path / "b.json").exists()
