"""Settings and option validation: defaults per device, case ids, parse-time errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from infersuite.plugin.cases import CaseSelection, select_cases
from infersuite.plugin.options import (
    build_settings,
    check_device_available,
    parse_device,
    parse_dtype,
    parse_fraction,
    parse_positive_int,
    parse_tolerance,
)


def _build(**overrides):
    values = dict(models=None, device="auto", dtypes=None, report_dir=None, tolerances=None,
                  allow_pickle=False, root=Path("/repo"))
    values.update(overrides)
    return build_settings(**values)


def test_auto_device_adds_cuda_cases_with_gpu_defaults():
    settings = _build()
    ids = [case.id for case in select_cases(settings, CaseSelection())]
    assert "llama-tiny-float32-cpu-hf" in ids
    assert "llama-tiny-bfloat16-cpu-hf" not in ids
    assert {"llama-tiny-bfloat16-cuda-hf", "gemma3-270m-shape-bfloat16-cuda-hf"} <= set(ids)


def test_explicit_models_and_dtypes_apply_everywhere():
    settings = _build(models=["gpt2-tiny", "gpt2-tiny"], device="cpu",
                      dtypes=["bfloat16", "float32"])
    assert [c.id for c in select_cases(settings, CaseSelection())] == ["gpt2-tiny-bfloat16-cpu-hf",
                                                "gpt2-tiny-float32-cpu-hf"]


def test_checkpoint_path_id_is_the_directory_name():
    settings = _build(models=["/data/ckpt/my-model"], device="cpu")
    assert select_cases(settings, CaseSelection())[0].id == "my-model-float32-cpu-hf"


def test_cuda_index_out_of_range():
    with pytest.raises(pytest.UsageError, match=r"cuda:3: only 1 CUDA device\(s\) visible"):
        check_device_available("cuda:3", True, 1)


def test_report_dir_defaults_to_timestamped_folder():
    settings = _build()
    assert settings.report_dir.parent == Path("/repo/reports")
    assert settings.report_dir.name.endswith("Z")


@pytest.mark.parametrize(("parse", "value", "message"), [
    (parse_tolerance, "float16=0", "must be > 0"),
    (parse_tolerance, "float16", "expected DTYPE=ATOL"),
    (parse_device, "tpu", "expected auto, cpu, cuda or cuda:N"),
    (parse_dtype, "int4", "expected one of float32, float16, bfloat16"),
    (parse_positive_int, "0", "need at least 1"),
    (parse_fraction, "x", "is not a number"),
])
def test_bad_values_are_rejected_at_parse_time(parse, value, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse(value)


def test_module_selection_narrows_the_cases():
    settings = _build(models=["gpt2-tiny", "llama-tiny"], device="cpu")
    first = select_cases(settings, CaseSelection(first_per_device=True))
    assert [c.id for c in first] == ["gpt2-tiny-float32-cpu-hf"]
    adder = select_cases(_build(device="cpu"), CaseSelection(
        models=("adder",), dtypes={"cpu": ("bfloat16", "float16")}))
    assert [c.id for c in adder] == ["adder-bfloat16-cpu-hf", "adder-float16-cpu-hf"]


def test_user_dtypes_override_a_module_default():
    """--infer-dtype wins over a module's own dtype set (the accuracy module included)."""
    settings = _build(device="cpu", dtypes=["float32"])
    cases = select_cases(settings, CaseSelection(models=("adder",),
                                                 dtypes={"cpu": ("bfloat16",)}))
    assert [c.id for c in cases] == ["adder-float32-cpu-hf"]


def test_gpu_default_applies_only_when_the_user_named_nothing():
    selection = CaseSelection(first_per_device=True, gpu_default=("gemma3-270m-shape", "bfloat16"))
    assert [c.id for c in select_cases(_build(), selection)] == [
        "llama-tiny-float32-cpu-hf", "gemma3-270m-shape-bfloat16-cuda-hf"]
    named = select_cases(_build(models=["gpt2-tiny"]), selection)
    assert [c.id for c in named] == ["gpt2-tiny-float32-cpu-hf", "gpt2-tiny-float32-cuda-hf"]
