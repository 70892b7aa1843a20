"""The real suite modules over ``--infer-engine hf --infer-engine onnxruntime``: every case
passes on the real stack, and faults planted in the onnxruntime adapter (a pytester
conftest patches the ORT helpers it calls, reverted at unconfigure) fail onnxruntime's
cases only, with a message that measures the fault."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
pytest.importorskip("onnx", reason="onnx is not installed")

# Import what the runs use in this process first: in-process pytester runs restore
# sys.modules afterwards, and extension modules and torch registrations do not
# survive being imported twice (tests/conftest.py).
import onnxruntime  # noqa: F401
import torch.onnx  # noqa: F401

import infersuite.engines.onnx
import infersuite.engines.ort_engine
import infersuite.formats.onnx_export

MODULES = ("conformance/test_padding.py", "conformance/test_cache.py",
           "conformance/test_determinism.py")
ARGS = ("--infer-model", "llama-tiny", "--infer-device", "cpu", "--infer-engine", "hf",
        "--infer-engine", "onnxruntime", "-p", "no:cacheprovider", "-rfs")

PATCHES = {
    # Decode steps feed a mask one longer than past + new (off-by-one mask bookkeeping):
    # the graph derives positions from the mask, so every decode position is one too far.
    "shifted_position": """
        orig = OrtDecoder.step
        def patched(self, input_ids, attention_mask, past):
            if past[0].shape[2]:
                attention_mask = np.concatenate(
                    [np.ones_like(attention_mask[:, :1]), attention_mask], axis=1)
            return orig(self, input_ids, attention_mask, past)
        patch(OrtDecoder, "step", patched)
    """,
    # The attention mask dropped (all ones) on the way into both graphs.
    "dropped_mask": """
        orig_prefill, orig_step = helpers.run_prefill, OrtDecoder.step
        patch(helpers, "run_prefill", lambda session, ids, mask:
              orig_prefill(session, ids, torch.ones_like(mask)))
        patch(OrtDecoder, "step", lambda self, ids, mask, past:
              orig_step(self, ids, np.ones_like(mask), past))
    """,
    # One stale (zeroed) key entry in the returned cache once it grows past 8 tokens.
    "stale_cache": """
        orig = OrtDecoder.step
        def patched(self, input_ids, attention_mask, past):
            logits, present = orig(self, input_ids, attention_mask, past)
            if present[0].shape[2] > 8:
                present[0] = present[0].copy()
                present[0][:, :, 2, :] = 0
            return logits, present
        patch(OrtDecoder, "step", patched)
    """,
}

CONFTEST_IMPORTS = """
import numpy as np
import torch
from infersuite.engines import onnx as helpers
from infersuite.engines.onnx import OrtDecoder
"""

# fault -> (modules to run, the tests that must fail)
EXPECTED = {
    "shifted_position": (("conformance/test_cache.py",),
                         {"test_cache_equivalence", "test_cache_continuation"}),
    "dropped_mask": (("conformance/test_padding.py",),
                     {"test_batched_rows_match_solo",
                      "test_left_padded_last_token_matches_unpadded",
                      "test_padding_token_ids_do_not_leak", "test_batched_greedy_matches_solo"}),
    "stale_cache": (("conformance/test_cache.py",), {"test_cache_equivalence"}),
}


@pytest.fixture(scope="module", autouse=True)
def _warm_export(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Export and run both graphs once out here: the exporter imports much of torch.onnx
    lazily, which each in-process run would otherwise import anew (and slowly)."""
    import torch

    from infersuite.engines.base import EngineContext, parse_engine_spec
    from infersuite.engines.hf import pad_left
    from infersuite.models import load_model

    model = load_model("llama-tiny", torch.float32, "cpu", False).model
    engine = infersuite.engines.ort_engine.create(EngineContext(
        parse_engine_spec("onnxruntime"), model, None, "llama-tiny", "float32", "cpu",
        tmp_path_factory.mktemp("warm"), reference_fp32=lambda: model))
    engine.generate_greedy(*pad_left([[5, 6], [7]], 0), 2)
    engine.close()


def test_hf_and_onnxruntime_pass_the_suite(pytester, copy_suite_module, run_outcomes):
    for module in MODULES:
        copy_suite_module(module)
    result = pytester.runpytest(*ARGS)
    outcomes = run_outcomes(result)
    for engine in ("hf", "onnxruntime"):
        assert any(k.endswith(f"-{engine}]") for k in outcomes), sorted(outcomes)
    bad = sorted(k for k, v in outcomes.items() if set(v) - {"passed", "skipped"})
    assert not bad, result.stdout.str()
    # Skipped: only what onnxruntime lacks by design, the transformers model itself.
    skipped = [r for r in result.reprec.getreports("pytest_runtest_logreport") if r.skipped]
    assert all(r.nodeid.endswith("-onnxruntime]") for r in skipped), [r.nodeid for r in skipped]
    assert all("engine onnxruntime lacks transformers" in str(r.longrepr) for r in skipped)
    assert len(skipped) < len(outcomes) // 2


@pytest.mark.parametrize("fault", sorted(PATCHES))
def test_adapter_fault_fails_onnxruntime_only(fault, pytester, copy_suite_module,
                                              patching_conftest, run_outcomes):
    pytester.makeconftest(patching_conftest(CONFTEST_IMPORTS, PATCHES[fault]))
    modules, must_fail = EXPECTED[fault]
    for module in modules:
        copy_suite_module(module)
    result = pytester.runpytest(*ARGS)
    outcomes = run_outcomes(result)
    failed = {k for k, v in outcomes.items() if "failed" in v}
    assert failed, f"fault {fault!r} went unnoticed:\n{result.stdout.str()}"
    assert all(k.endswith("-onnxruntime]") for k in failed), sorted(failed)
    hf_cases = {k: v for k, v in outcomes.items() if k.endswith("-hf]")}
    assert hf_cases, sorted(outcomes)
    assert all(v == ["passed"] for v in hf_cases.values()), hf_cases
    failed_names = {k.split("::")[1].split("[")[0] for k in failed}
    assert must_fail <= failed_names, (
        f"fault {fault!r} went unnoticed by {sorted(must_fail - failed_names)}")
    assert "max abs diff" in result.stdout.str()
