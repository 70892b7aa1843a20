"""The GGUF module with the model's weights off the CPU (as on a GPU host): every tensor
that reaches numpy must be moved to the host first. The weights here are CPU tensors that
refuse ``.numpy()`` the way CUDA tensors do (tests/offcpu.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("gguf")

OFF_CPU_IMPORTS = """
import sys
sys.path.insert(0, {repo!r})
import torch.nn
from tests.offcpu import off_cpu
"""
OFF_CPU_BODY = """
orig = torch.nn.Module.state_dict
def state_dict(self, *args, **kwargs):
    return {name: off_cpu(t) for name, t in orig(self, *args, **kwargs).items()}
patch(torch.nn.Module, "state_dict", state_dict)
"""


def test_gguf_checks_move_weights_to_the_host(pytester, copy_suite_module,
                                              patching_conftest):
    from tests.conftest import REPO

    pytester.makeconftest(patching_conftest(OFF_CPU_IMPORTS.format(repo=str(REPO)),
                                            OFF_CPU_BODY))
    copy_suite_module("conformance/test_format_gguf.py")
    result = pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                                "-p", "no:cacheprovider", "-k", "f32_bit_exact or half_exact",
                                "--infer-report-dir", "rep")
    result.assert_outcomes(passed=3)


def test_the_off_cpu_weights_do_refuse_numpy():
    """Control: the planted tensors fail where a CUDA tensor would."""
    import torch
    from tests.offcpu import off_cpu

    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
        off_cpu(torch.ones(2)).float().numpy()
    assert off_cpu(torch.ones(2)).detach().float().cpu().numpy().tolist() == [1.0, 1.0]
