"""Settings parsing: defaults per device, case ids, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from infersuite.options import OptionError, parse_settings


def _parse(**overrides):
    values = dict(models=None, device="auto", dtypes=None, report_dir=None, tolerances=None,
                  allow_pickle=False, root=Path("/repo"), cuda_available=False, cuda_count=0)
    values.update(overrides)
    return parse_settings(**values)


def test_auto_device_adds_cuda_cases_with_gpu_defaults():
    settings = _parse()
    ids = [case.id for case in settings.cases()]
    assert "llama-tiny-float32-cpu" in ids
    assert "llama-tiny-bfloat16-cpu" not in ids
    assert {"llama-tiny-bfloat16-cuda", "gemma3-270m-shape-bfloat16-cuda"} <= set(ids)


def test_explicit_models_and_dtypes_apply_everywhere():
    settings = _parse(models=["gpt2-tiny", "gpt2-tiny"], device="cpu",
                      dtypes=["bfloat16", "float32"])
    assert [c.id for c in settings.cases()] == ["gpt2-tiny-bfloat16-cpu", "gpt2-tiny-float32-cpu"]


def test_checkpoint_path_id_is_the_directory_name():
    settings = _parse(models=["/data/ckpt/my-model"], device="cpu")
    assert settings.cases()[0].id == "my-model-float32-cpu"


def test_cuda_index_out_of_range():
    with pytest.raises(OptionError, match=r"cuda:3: only 1 CUDA device\(s\) visible"):
        _parse(device="cuda:3", cuda_available=True, cuda_count=1)


def test_report_dir_defaults_to_timestamped_folder():
    settings = _parse()
    assert settings.report_dir.parent == Path("/repo/reports")
    assert settings.report_dir.name.endswith("Z")


def test_tolerance_must_be_positive():
    with pytest.raises(OptionError, match="must be > 0"):
        _parse(tolerances=["float16=0"])
