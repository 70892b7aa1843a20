"""The endpoint modules against a server the user runs (--infer-endpoint) and one the suite
starts from the user's command (--infer-server-cmd): the same checks, the same verdicts."""

from __future__ import annotations

import shlex
import sys

import pytest
import torch

from infersuite.formats.gguf_io import write_gguf
from infersuite.models.loader import load_model
from infersuite.serving.process import ServerProcess, free_port

pytestmark = pytest.mark.endpoint
# Checks llama-cpp-python's server passes (its findings are recorded for the
# llama.cpp-server engine, not for a server reached as "openai").
PASSING = ("test_temperature_zero_repeats or test_seed_reproduces_sampling or "
           "test_prefix_cache_keeps_answers or test_max_tokens_exact or "
           "test_stop_string or test_eos_finishes_with_stop or "
           "test_prompt_tokenization or 1mb-prompt")
MODULES = ("endpoint/test_endpoint_determinism.py", "endpoint/test_endpoint_prefix.py",
           "endpoint/test_endpoint_semantics.py", "endpoint/test_endpoint_reference.py",
           "endpoint/test_endpoint_errors.py")


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory):
    import gguf

    loaded = load_model("llama-tiny", torch.float32, "cpu", False)
    path = tmp_path_factory.mktemp("gguf") / "llama-tiny-F32.gguf"
    write_gguf(loaded.model.state_dict(), loaded.model.config, path,
               gguf.GGMLQuantizationType.F32, tokenizer=loaded.tokenizer)
    return path


def _command(gguf_path, host="{host}", port="{port}"):
    return (f"{shlex.quote(sys.executable)} -m llama_cpp.server --model {gguf_path} "
            f"--host {host} --port {port} --n_ctx 256 --type_k 0 --type_v 0")


def _copy_modules(copy_suite_module):
    for module in MODULES:
        copy_suite_module(module)


def test_running_server_via_infer_endpoint(pytester, copy_suite_module, gguf_path, tmp_path):
    port = free_port()
    server = ServerProcess(shlex.split(_command(gguf_path, "127.0.0.1", str(port))), port,
                           tmp_path / "server.log").start()
    try:
        _copy_modules(copy_suite_module)
        result = pytester.runpytest("-p", "no:cacheprovider", "-k", PASSING,
                                    "--infer-endpoint", server.base_url,
                                    "--infer-engine", "openai:n_ctx=256",
                                    "--infer-model", "llama-tiny")
        outcomes = result.parseoutcomes()
        assert outcomes.get("passed", 0) >= 8, result.stdout.str()
        assert not outcomes.get("failed"), result.stdout.str()
        assert not outcomes.get("errors"), result.stdout.str()
        result.stdout.fnmatch_lines(["*infersuite servers under test*",
                                     f"openai:n_ctx=256: server=openai-compatible, "
                                     f"url={server.base_url}*"])
        assert server.alive(), "the suite must not stop a server it did not start"
    finally:
        server.stop()


def test_without_the_model_reference_checks_skip(pytester, copy_suite_module, gguf_path,
                                                 tmp_path):
    """Which checkpoint a running server serves is the user's to say: without
    --infer-model the reference checks skip with the fix, the others run."""
    port = free_port()
    server = ServerProcess(shlex.split(_command(gguf_path, "127.0.0.1", str(port))), port,
                           tmp_path / "server.log").start()
    try:
        copy_suite_module("endpoint/test_endpoint_prefix.py")
        copy_suite_module("endpoint/test_endpoint_reference.py")
        result = pytester.runpytest("-p", "no:cacheprovider", "-rs",
                                    "--infer-endpoint", server.base_url)
        result.stdout.fnmatch_lines(["*which checkpoint the server serves is not known; pass "
                                     "--infer-model PATH*"])
        outcomes = result.parseoutcomes()
        assert outcomes.get("skipped", 0) >= 3, result.stdout.str()
        assert outcomes.get("passed") == 1, result.stdout.str()
    finally:
        server.stop()


def test_server_started_from_infer_server_cmd(pytester, copy_suite_module, gguf_path):
    _copy_modules(copy_suite_module)
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", PASSING,
                                "--infer-server-cmd", _command(gguf_path),
                                "--infer-engine", "openai:n_ctx=256",
                                "--infer-model", "llama-tiny")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 8, result.stdout.str()
    assert not outcomes.get("failed"), result.stdout.str()
    assert not outcomes.get("errors"), result.stdout.str()
    result.stdout.fnmatch_lines(["*openai:n_ctx=256: server=openai-compatible*command=*"
                                 "llama_cpp.server*"])
