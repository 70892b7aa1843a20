"""The conformance suite must catch realistic bugs in the stack, not only crashes.

Each case patches transformers (in a pytester conftest, reverted at unconfigure)
the way a buggy runtime would behave and runs the real suite modules against
llama-tiny: the named tests must fail with a message that locates the fault.
"""

from __future__ import annotations

import pytest

# Import what the conftests patch in this process first: in-process pytester runs
# restore sys.modules afterwards, which would half-unload transformers' lazy modules.
import transformers.cache_utils
import transformers.models.llama.modeling_llama  # noqa: F401

PATCHES = {
    # Attention that ignores the padding mask.
    "ignore_mask": """
        orig = ml.LlamaModel.forward
        def patched(self, input_ids=None, attention_mask=None, **kw):
            if attention_mask is not None:
                attention_mask = torch.ones_like(attention_mask)
            return orig(self, input_ids=input_ids, attention_mask=attention_mask, **kw)
        patch(ml.LlamaModel, "forward", patched)
    """,
    # A KV cache silently stored in bf16.
    "bf16_cache": """
        orig = DynamicLayer.update
        def patched(self, k, v, *a, **kw):
            return orig(self, k.to(torch.bfloat16).to(k.dtype),
                        v.to(torch.bfloat16).to(v.dtype), *a, **kw)
        patch(DynamicLayer, "update", patched)
    """,
    # A corrupted (stale) cache entry once the cache grows.
    "stale_cache": """
        orig = DynamicLayer.update
        def patched(self, k, v, *a, **kw):
            keys, values = orig(self, k, v, *a, **kw)
            if keys.shape[-2] > 8:
                keys = keys.clone()
                keys[..., 2, :] = 0
            return keys, values
        patch(DynamicLayer, "update", patched)
    """,
    # Decode steps rotated at the wrong positions. Planted where positions become
    # rotations (the rotary embedding), so it reaches every caller: generate, the
    # suite's own prefill/decode and whatever keyword carries the cache.
    "decode_positions": """
        orig = ml.LlamaRotaryEmbedding.forward
        def patched(self, x, position_ids):
            if position_ids.shape[-1] == 1:
                position_ids = position_ids + 1
            return orig(self, x, position_ids)
        patch(ml.LlamaRotaryEmbedding, "forward", patched)
    """,
    # Batched rows differ from single runs by 1e-4: logits change, greedy tokens don't.
    "batch_noise": """
        orig = ml.LlamaForCausalLM.forward
        def patched(self, *args, **kw):
            out = orig(self, *args, **kw)
            if out.logits.shape[0] > 1:
                rows = torch.arange(out.logits.shape[0]).view(-1, 1, 1)
                out.logits = out.logits + 1e-4 * rows
            return out
        patch(ml.LlamaForCausalLM, "forward", patched)
    """,
}

CONFTEST_IMPORTS = """
import torch
from transformers.cache_utils import DynamicLayer
from transformers.models.llama import modeling_llama as ml
"""

# fault -> the tests that must fail, and words their message must contain
EXPECTED = {
    "ignore_mask": (["test_batched_rows_match_solo", "test_padding_token_ids_do_not_leak"],
                    "padded batch row"),
    "bf16_cache": (["test_cache_equivalence", "test_cache_continuation"],
                   "KV-cached generate vs naive full recompute: step logits"),
    "stale_cache": (["test_cache_equivalence"], "KV-cached generate vs naive full recompute"),
    "decode_positions": (["test_cache_equivalence", "test_cache_continuation"],
                         "KV-cached generate vs naive full recompute"),
    "batch_noise": (["test_batched_rows_match_solo", "test_batched_greedy_matches_solo"],
                    "padded batch row"),
}


@pytest.mark.parametrize("fault", sorted(PATCHES))
def test_suite_catches_fault(fault, pytester, copy_suite_module, patching_conftest):
    pytester.makeconftest(patching_conftest(CONFTEST_IMPORTS, PATCHES[fault]))
    copy_suite_module("conformance/test_padding.py")
    copy_suite_module("conformance/test_cache.py")
    result = pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                                "-p", "no:cacheprovider", "-rf")
    must_fail, phrase = EXPECTED[fault]
    failed = {line.split("::")[1].split("[")[0]
              for line in result.outlines if line.startswith("FAILED ")}
    missing = [name for name in must_fail if name not in failed]
    assert not missing, f"fault {fault!r} went unnoticed by {missing}; failed: {sorted(failed)}"
    output = result.stdout.str()
    assert phrase in output
    assert "max abs diff" in output
    assert "model=llama-tiny" in output
    assert "dtype=float32" in output


def test_unpatched_stack_passes(pytester, copy_suite_module):
    """The control: the same modules pass on the real stack."""
    copy_suite_module("conformance/test_padding.py")
    copy_suite_module("conformance/test_cache.py")
    result = pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)
