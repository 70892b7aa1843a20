"""Every engine against the reference: transformers float32 on the CPU, same weights.

Logprobs at every prompt position, and greedy generation, must agree within the rule of
the engine's precision (infersuite.conformance.agreement): full-precision engines within
twice their logits tolerance and identical greedy tokens up to a near-tie; quantized
engines by mean KL and top-1 agreement.
"""

from __future__ import annotations

import pytest

from infersuite.conformance.agreement import (
    QUANTIZED_GATES,
    check_greedy_agreement,
    check_logprob_agreement,
    compute_logprob_agreement,
    precision_tolerance,
)
from infersuite.engines.hf import pad_left

pytestmark = pytest.mark.conformance

N_NEW_TOKENS = 8


def _skip_the_reference_itself(infer_case) -> None:
    if infer_case.case.is_reference:
        pytest.skip("transformers float32 on the CPU is the reference itself")


def _context(infer_case) -> dict[str, str]:
    engine = infer_case.engine
    return {**infer_case.context, "engine": str(engine.spec), "precision": engine.precision}


def test_logprobs_agree_with_reference(infer_case, record_property):
    _skip_the_reference_itself(infer_case)
    infer_case.require("logits")
    engine, reference = infer_case.engine, infer_case.reference
    prompts = infer_case.prompt_ids()
    got = [engine.forward_logits(*pad_left([p], engine.pad_id))[0] for p in prompts]
    want = [reference.forward_logits(*pad_left([p], reference.pad_id))[0] for p in prompts]
    agreement = compute_logprob_agreement(
        got, want, precision_tolerance(engine.precision, infer_case.settings.tolerances))
    record_property("reference_agreement", agreement.describe())
    record_property("max_abs_logprob_diff", agreement.max_abs_diff)
    print(f"[{infer_case.id}] vs reference ({engine.precision}): {agreement.describe()}")
    check_logprob_agreement(agreement, engine.precision, "engine vs reference logprobs",
                            _context(infer_case))


def test_greedy_agrees_with_reference(infer_case, record_property):
    _skip_the_reference_itself(infer_case)
    infer_case.require("greedy")
    engine, reference = infer_case.engine, infer_case.reference
    if engine.precision in QUANTIZED_GATES:
        pytest.skip(f"{engine.precision} weights are judged by KL and top-1 agreement "
                    "(test_logprobs_agree_with_reference), not by identical greedy tokens")
    tolerance = precision_tolerance(engine.precision, infer_case.settings.tolerances)
    divergences = []
    for index, prompt in enumerate(infer_case.prompt_ids()):
        context = {**_context(infer_case), "prompt": index}
        tokens, logits = engine.generate_greedy(*pad_left([prompt], engine.pad_id),
                                                N_NEW_TOKENS)
        want_tokens, want_logits = reference.generate_greedy(
            *pad_left([prompt], reference.pad_id), N_NEW_TOKENS)
        step = check_greedy_agreement(tokens[0], want_tokens[0], want_logits[0], tolerance,
                                      "engine vs reference greedy", context)
        last = N_NEW_TOKENS if step is None else step + 1
        agreement = compute_logprob_agreement([logits[0, :last]], [want_logits[0, :last]],
                                              tolerance)
        check_logprob_agreement(agreement, engine.precision,
                                "engine vs reference step logprobs", context)
        if step is not None:
            divergences.append(f"prompt {index} at step {step} (near-tie)")
    record_property("greedy_divergences", divergences)
    print(f"[{infer_case.id}] greedy vs reference: "
          f"{'identical' if not divergences else '; '.join(divergences)}")
