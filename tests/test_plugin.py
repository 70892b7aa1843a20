"""The plugin's surface: options, markers, ids, skips, usage errors, loading errors."""

from __future__ import annotations

import pickle

import pytest
import torch

CASE_TEST = """
import pytest

pytestmark = pytest.mark.conformance

def test_case(infer_case):
    assert infer_case.model is not None
"""

CUDA = torch.cuda.is_available()
no_cuda_only = pytest.mark.skipif(CUDA, reason="checks the no-CUDA paths")


def test_help_lists_options(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*infersuite*", "*--infer-model=NAME_OR_PATH*",
                                 "*--infer-device=auto|cpu|cuda|cuda:N*", "*--infer-dtype=DTYPE*",
                                 "*--infer-report-dir=DIR*"])


def test_markers_are_registered(pytester):
    result = pytester.runpytest("--markers")
    for marker in ("conformance", "perf", "gpu", "slow"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{marker}:*"])


def test_ids_read_well(pytester):
    pytester.makepyfile(test_ids=CASE_TEST)
    result = pytester.runpytest("--collect-only", "-q", "--infer-model", "llama-tiny",
                                "--infer-model", "gpt2-tiny", "--infer-device", "cpu",
                                "--infer-dtype", "float32", "--infer-dtype", "bfloat16")
    result.stdout.fnmatch_lines([
        "test_ids.py::test_case[[]llama-tiny-float32-cpu-hf[]]",
        "test_ids.py::test_case[[]llama-tiny-bfloat16-cpu-hf[]]",
        "test_ids.py::test_case[[]gpt2-tiny-float32-cpu-hf[]]",
        "test_ids.py::test_case[[]gpt2-tiny-bfloat16-cpu-hf[]]",
    ])


def test_engines_parametrize_every_case(pytester):
    pytester.makepyfile(test_ids=CASE_TEST)
    result = pytester.runpytest("--collect-only", "-q", "--infer-model", "llama-tiny",
                                "--infer-device", "cpu", "--infer-engine", "hf",
                                "--infer-engine", "hf:attention=eager")
    result.stdout.fnmatch_lines(["test_ids.py::test_case[[]llama-tiny-float32-cpu-hf[]]",
                                 "test_ids.py::test_case[[]llama-tiny-float32-cpu-hf-attention"
                                 "=eager[]]"])


def test_a_missing_capability_skips_naming_engine_and_capability(pytester):
    pytester.makepyfile(test_cap="""
        def test_needs_servers(infer_case):
            infer_case.require("greedy", "streaming-to-mars")
    """)
    result = pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*engine hf lacks streaming-to-mars*"])


def test_a_bad_engine_argument_fails_its_cases(pytester):
    pytester.makepyfile(test_ids=CASE_TEST.replace("infer_case.model", "infer_case.engine"))
    result = pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                                "--infer-engine", "hf:attention=flash")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*EngineError: engine hf:attention=flash: attention='flash'; "
                                 "expected one of eager, sdpa*"])


def test_default_models_are_the_tiny_zoo(pytester):
    pytester.makepyfile(test_ids=CASE_TEST)
    result = pytester.runpytest("--collect-only", "-q", "-m", "not gpu")
    for name in ("llama-tiny", "gemma3-tiny", "qwen2-tiny", "gpt2-tiny"):
        result.stdout.fnmatch_lines([f"*test_case[[]{name}-float32-cpu-hf[]]"])
    assert "shape" not in result.stdout.str()


@no_cuda_only
def test_gpu_marker_skips_with_reason_without_cuda(pytester):
    pytester.makepyfile(test_ids=CASE_TEST)
    result = pytester.runpytest("-m", "gpu", "--infer-model", "llama-tiny", "-rs")
    result.assert_outcomes(skipped=3)  # float32, bfloat16, float16 on cuda
    result.stdout.fnmatch_lines(["*no CUDA device is visible*run on a GPU host*"])


@no_cuda_only
def test_cuda_device_without_cuda_is_a_usage_error(pytester):
    pytester.makepyfile(test_ids=CASE_TEST)
    result = pytester.runpytest("--infer-device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--infer-device cuda: no CUDA device is visible*"
                                 "use --infer-device cpu or run on a GPU host*"])


@pytest.mark.parametrize(("args", "message"), [
    (["--infer-device", "tpu"], "*--infer-device*'tpu': expected auto, cpu, cuda or cuda:N*"),
    (["--infer-dtype", "int4"],
     "*--infer-dtype*'int4': expected one of float32, float16, bfloat16*"),
    (["--infer-tolerance", "float32"], "*--infer-tolerance*'float32': expected DTYPE=ATOL*"),
    (["--infer-tolerance", "float32=abc"], "*'abc' is not a number*"),
    (["--infer-engine", "tgi"], "*--infer-engine tgi: unknown engine 'tgi'; known engines: "
                                "env, hf, hf-compiled, llama.cpp, llama.cpp-server, onnxruntime, "
                                "openai, openvino, vllm*"),
    (["--infer-endpoint", "localhost:8000"], "*--infer-endpoint*expected the server's base "
                                             "URL, e.g. http://127.0.0.1:8000*"),
    (["--infer-server-cmd", "python -m server"], "*--infer-server-cmd*must contain {port}*"),
    (["--infer-slo", "ttft=1"], "*--infer-slo*expected NAME=SECONDS*ttft_p99, tpot_p99, "
                                "e2e_p99*"),
    (["--infer-arrivals", "gamma:0"], "*--infer-arrivals*expected poisson, constant or "
                                      "gamma:BURSTINESS*"),
    (["--infer-engine", "hf:attention"], "*--infer-engine*engine argument 'attention' is not "
                                         "key=value*"),
    (["--infer-rounds", "0"], "*--infer-rounds: '0': need at least 1*"),
    (["--infer-sweep-max-batch", "many"], "*--infer-sweep-max-batch: 'many' is not an integer*"),
    (["--infer-slo-ms", "-5"], "*--infer-slo-ms: '-5': must be > 0*"),
    (["--infer-regression-threshold", "abc"],
     "*--infer-regression-threshold: a relative change, e.g. 0.05 = 5%: 'abc' is not a number*"),
    (["--infer-model", "llama-huge"],
     "*--infer-model llama-huge: not a zoo model*Zoo models: llama-tiny (Llama, tiny)*"),
])
def test_bad_option_values_are_usage_errors(pytester, args, message):
    pytester.makepyfile(test_ids=CASE_TEST)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_missing_checkpoint_dir_is_a_usage_error(pytester):
    pytester.makepyfile(test_ids=CASE_TEST)
    missing = pytester.path / "nowhere"
    result = pytester.runpytest("--infer-model", str(missing))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--infer-model {missing}: no such directory*"])


def test_checkpoint_without_config_is_a_usage_error(pytester):
    pytester.makepyfile(test_ids=CASE_TEST)
    folder = pytester.mkdir("ckpt")
    result = pytester.runpytest("--infer-model", str(folder))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--infer-model {folder}: no config.json in the directory*"])


class _Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_checkpoint_is_refused_and_never_executed(pytester):
    pytester.makepyfile(test_ids=CASE_TEST)
    folder = pytester.mkdir("evil")
    (folder / "config.json").write_text('{"model_type": "llama"}')
    marker = pytester.path / "pwned"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(str(marker))))
    result = pytester.runpytest("--infer-model", str(folder))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*only pickle weights (pytorch_model.bin)*refused*"
                                 "--infer-allow-pickle*"])
    assert not marker.exists(), "the pickle payload ran"


def test_local_checkpoint_runs_the_suite(pytester, copy_suite_module):
    from infersuite.models import load_model

    loaded = load_model("qwen2-tiny", torch.float32, "cpu")
    folder = pytester.path / "my-qwen"
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    copy_suite_module("conformance/test_cache.py")
    copy_suite_module("conformance/test_tokenization.py")
    result = pytester.runpytest("--infer-model", str(folder), "--infer-device", "cpu", "-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*test_cache_equivalence[[]my-qwen-float32-cpu-hf[]] PASSED*",
                                 "*test_encode_decode_round_trip[[]my-qwen[]] PASSED*"])


def test_corrupt_safetensors_gives_a_clear_failure(pytester):
    from infersuite.models import load_model

    loaded = load_model("llama-tiny", torch.float32, "cpu")
    folder = pytester.path / "broken"
    loaded.model.save_pretrained(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    pytester.makepyfile(test_ids=CASE_TEST)
    result = pytester.runpytest("--infer-model", str(folder), "--infer-device", "cpu")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ModelLoadError: --infer-model *broken: loading failed*"])


def test_failure_message_says_where_and_how_much(pytester):
    pytester.makepyfile(test_msg="""
        import torch
        from infersuite.conformance.compare import check_close
        from infersuite.conformance.tolerances import resolve_tolerance

        def test_drift():
            expected = torch.zeros(2, 5, 8)
            actual = expected.clone()
            actual[1, 3, 6] = 2e-3
            check_close(actual, expected, resolve_tolerance("float32"), "step logits",
                        {"model": "llama-tiny", "dtype": "float32", "step": 3},
                        axes=("row", "position", "vocab"))
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*step logits: max abs diff 2.000e-03 exceeds tolerance (atol=1e-05, rtol=1e-05*"
        "at row=1, position=3, vocab=6*model=llama-tiny, dtype=float32, step=3*"])


def test_entry_point_loads_in_a_subprocess(pytester):
    pytester.makepyfile(test_ids=CASE_TEST)
    result = pytester.runpytest_subprocess("--collect-only", "-q", "--infer-model",
                                           "llama-tiny", "--infer-device", "cpu")
    result.stdout.fnmatch_lines(["test_ids.py::test_case[[]llama-tiny-float32-cpu-hf[]]"])
