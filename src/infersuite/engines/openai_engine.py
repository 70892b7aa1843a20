"""Engines behind the OpenAI-compatible HTTP API: a server, judged by its answers.

- ``llama.cpp-server``: the case's model written to GGUF and served by llama-cpp-python's
  server (``python -m llama_cpp.server``), started by the suite. Arguments ``quant=F32|F16|
  Q8_0|Q4_0`` (default F32), ``kv=f32|f16`` (the KV cache type, default f32 as for the
  in-process llama.cpp engine; llama.cpp's own default is f16), ``n_ctx=N`` (default the
  model's context, at most 512), ``threads=N`` (default 2), ``interrupt=on|off`` (the
  server's ``interrupt_requests``: on, its default, ends a running stream when another
  request arrives; see the known findings).
- ``vllm``: the case's model saved as a Hugging Face directory and served by vLLM's
  OpenAI server, started by the suite from another Python environment (vLLM pins its own
  torch): ``python=PATH`` (default ``$INFERSUITE_VLLM_PYTHON``, else ``.venv-vllm/bin/python``
  as ``make test-vllm`` builds it), ``dtype=float32|bfloat16`` (default float32),
  ``max_model_len=N`` (default the model's context, at most 512), ``threads_bind=CORES``
  (its OpenMP threads' cores, default all: ``0-N``).
- ``openai``: a server the user runs (``--infer-endpoint URL``) or has the suite start
  (``--infer-server-cmd``); ``precision=float32|float16|bfloat16|F16|Q8_0|Q4_0`` says what
  the server computes in, for the agreement bound (default float32).

Every server started here listens on 127.0.0.1 on a free port, logs to the case's work
directory, and is stopped at the end of the run (see ``infersuite.serving.process``). The
engine's ``client`` sends the requests; it has no token-level calls (``forward_logits`` and
the rest raise), so the in-process modules do not run it and the endpoint modules do.
Each of them also takes ``slowdown=F``: the same engine without it (the same server
process), behind a second client whose load runs read each streamed request's times
stretched by 1 + F, to prove an A/B gate on a server (plugin/engines.py builds it).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infersuite.engines.base import (
    Engine,
    EngineContext,
    EngineError,
    EngineSpec,
    EngineUnsupported,
    parse_slowdown,
    require_installed,
)

if TYPE_CHECKING:
    import torch

    from infersuite.serving.client import OpenAIClient
    from infersuite.serving.process import ServerProcess

PRECISIONS = ("float32", "float16", "bfloat16", "F16", "Q8_0", "Q4_0")
MAX_DEFAULT_CTX = 512
VLLM_PYTHON_ENV = "INFERSUITE_VLLM_PYTHON"
VLLM_DEFAULT_PYTHON = Path(".venv-vllm/bin/python")
# vLLM's CPU backend: a 1 GiB KV cache (without it, vLLM refuses to start unless 92% of
# the host's memory is free), OpenMP threads bound to every core (its default reserves one).
VLLM_CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1",
                "VLLM_CPU_OMP_THREADS_BIND": f"0-{max((os.cpu_count() or 1) - 1, 0)}"}
# vLLM's CPU worker spins its OpenMP threads: on a small host they can starve the load
# client. threads_bind= picks its cores (VLLM_CPU_OMP_THREADS_BIND, e.g. "1").
# A plain chat template for tokenizers without one (vLLM refuses chat requests then).
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant: {% endif %}")


class OpenAIEngine(Engine):
    """A server under test. ``client`` talks to it; ``server`` is the process the suite
    started (None for a server the user runs); ``info`` goes into the report."""

    name = "openai"
    capabilities = frozenset({"endpoint"})

    def __init__(self, spec: EngineSpec, client: OpenAIClient, server: ServerProcess | None,
                 info: dict[str, str], *, vocab_size: int, pad_id: int, eos_ids: list[int],
                 tokenizer: Any | None, precision: str, reference_known: bool,
                 n_ctx: int | None) -> None:
        super().__init__(spec, vocab_size, pad_id, eos_ids, tokenizer, precision=precision)
        self.client = client
        self.server = server
        self.info = info
        # Whether the case's model is the served checkpoint (so transformers float32 on
        # it can judge the answers): always for servers the suite starts from the case.
        self.reference_known = reference_known
        self.n_ctx = n_ctx  # the server's context length, where known
        for capability in ("logits", "greedy", "cache", "sampling", "stream"):
            self.limitations[capability] = ("a server is tested through its HTTP API "
                                            "(the endpoint modules), not token by token")

    def describe(self) -> dict[str, str]:
        return {"engine": str(self.spec), **self.info}

    def log_tail(self, lines: int = 40) -> str | None:
        return self.server.log_tail(lines) if self.server is not None else None

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()

    def with_planted_slowdown(self, spec: EngineSpec, slowdown: float) -> OpenAIEngine:
        """This same server behind a second client whose load runs read their times F
        slower (``spec`` = this engine's with ``slowdown=F``): the plant is then the only
        difference from this engine. Closing it closes its client, not the server."""
        import copy

        from infersuite.serving.client import OpenAIClient

        client = OpenAIClient(self.client.base_url, model=self.client.model,
                              api_key_env=self.client.api_key_env,
                              timeout_s=float(self.client.timeout.read or 60.0))
        client.slowdown = slowdown
        twin = copy.copy(self)
        twin.spec, twin.client, twin.server = spec, client, None
        twin.info = {**self.info, "planted_slowdown": f"{slowdown:g}"}
        return twin

    def forward_logits(self, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor) -> torch.Tensor:
        raise self._missing("logits")


def _arguments(spec: EngineSpec, defaults: dict[str, str]) -> dict[str, str]:
    """The engine's arguments over its defaults; every server engine also takes
    ``slowdown=F``, a slowdown planted in its client's load runs (serving/load.py)."""
    defaults = {**defaults, "slowdown": "0"}
    unknown = sorted(set(spec.kwargs) - set(defaults))
    if unknown:
        raise EngineError(f"engine {spec}: unknown argument(s) {unknown}; it takes "
                          + ", ".join(f"{k}=" for k in defaults))
    parse_slowdown(spec)  # before any server starts
    return {**defaults, **spec.kwargs}


def _positive(spec: EngineSpec, key: str, value: str) -> int:
    if not (value.isdigit() and int(value) > 0):
        raise EngineError(f"engine {spec}: {key}={value!r} (expected a positive integer)")
    return int(value)


def _model_facts(model: Any) -> dict[str, Any]:
    from infersuite.engines import hf

    return {"vocab_size": int(model.config.vocab_size), "pad_id": hf.pad_id_of(model),
            "eos_ids": hf.eos_ids(model)}


def _start(context: EngineContext, command: list[str], port: int, *,
           env: dict[str, str] | None = None, timeout_s: float = 180.0) -> ServerProcess:
    from infersuite.serving.process import ServerError, ServerProcess

    server = ServerProcess(command, port, context.workdir / "server.log", env=env,
                           startup_timeout_s=timeout_s)
    try:
        return server.start()
    except ServerError as exc:
        raise EngineError(f"engine {context.spec}: {exc}") from exc


def _client(context: EngineContext, base_url: str, server: ServerProcess | None) -> OpenAIClient:
    from infersuite.serving.client import EndpointError, OpenAIClient

    options = context.options.get("endpoint")
    try:
        client = OpenAIClient(base_url, model=getattr(options, "served_model", None),
                              api_key_env=getattr(options, "api_key_env", "OPENAI_API_KEY"),
                              timeout_s=getattr(options, "timeout_s", 60.0))
    except Exception as exc:
        log = ""
        if server is not None:
            server.stop()
            log = f"; last lines of the server's log:\n{server.log_tail()}"
        if isinstance(exc, EndpointError):
            raise EngineError(f"engine {context.spec}: {exc}{log}") from exc
        raise EngineError(f"engine {context.spec}: cannot reach {base_url}: "
                          f"{type(exc).__name__}: {exc}{log}") from exc
    return client


def _check_cpu_case(context: EngineContext) -> None:
    if context.device != "cpu" or context.dtype != "float32":
        raise EngineUnsupported(f"engine {context.spec}: the server's precision is its own "
                                "argument; cases are float32 on the CPU (the reference's)")


def create_llamacpp_server(context: EngineContext) -> Engine:
    from infersuite.engines.llamacpp_engine import KV_TYPES, QUANTS, write_model
    from infersuite.serving.process import LOOPBACK, free_port

    args = _arguments(context.spec, {"quant": "F32", "kv": "f32", "n_ctx": "", "threads": "2",
                                     "interrupt": "on"})
    for key, allowed in (("quant", QUANTS), ("kv", tuple(KV_TYPES)),
                         ("interrupt", ("on", "off"))):
        if args[key] not in allowed:
            raise EngineError(f"engine {context.spec}: {key}={args[key]!r} (expected one of "
                              f"{', '.join(allowed)})")
    threads = _positive(context.spec, "threads", args["threads"])
    _check_cpu_case(context)
    if context.tokenizer is None:
        raise EngineUnsupported(f"engine {context.spec}: {context.model_name} has no "
                                "tokenizer, and llama.cpp loads no GGUF without a vocabulary")
    require_installed(context.spec)
    path, model = write_model(context, args["quant"])
    n_ctx = (_positive(context.spec, "n_ctx", args["n_ctx"]) if args["n_ctx"]
             else min(int(model.config.max_position_embeddings), MAX_DEFAULT_CTX))
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(path),
               "--model_alias", context.model_name, "--host", LOOPBACK, "--port", str(port),
               "--n_ctx", str(n_ctx), "--n_threads", str(threads),
               "--n_threads_batch", str(threads),
               "--type_k", str(KV_TYPES[args["kv"]]), "--type_v", str(KV_TYPES[args["kv"]]),
               "--interrupt_requests", str(args["interrupt"] == "on")]
    server = _start(context, command, port)
    version = metadata.version("llama-cpp-python")
    info = {"server": "llama-cpp-python", "server_version": version,
            "command": shlex.join(command), "url": server.base_url,
            "startup_s": f"{server.startup_s:.2f}"}
    return OpenAIEngine(context.spec, _client(context, server.base_url, server), server, info,
                        **_model_facts(model), tokenizer=context.tokenizer,
                        precision=(args["quant"] if args["quant"] != "F32" else
                                   "float16" if args["kv"] == "f16" else "float32"),
                        reference_known=True, n_ctx=n_ctx)


def vllm_python(spec: EngineSpec) -> Path:
    """The Python of the vLLM environment: python=, $INFERSUITE_VLLM_PYTHON, .venv-vllm."""
    given = spec.kwargs.get("python") or os.environ.get(VLLM_PYTHON_ENV)
    path = Path(given) if given else VLLM_DEFAULT_PYTHON
    if not path.exists():
        raise EngineError(f"engine {spec}: no vLLM Python at {path}; `make test-vllm` builds "
                          f".venv-vllm, or pass python=PATH (or set {VLLM_PYTHON_ENV}) to a "
                          "Python that has vLLM installed")
    return path


def package_version(python: Path, package: str) -> str | None:
    """A package's version in another Python environment (None when absent)."""
    code = ("import importlib.metadata as m, sys\n"
            "try: print(m.version(sys.argv[1]))\n"
            "except m.PackageNotFoundError: pass")
    done = subprocess.run([str(python), "-c", code, package], capture_output=True, text=True,
                          timeout=60, check=False)
    return done.stdout.strip() or None


def create_vllm(context: EngineContext) -> Engine:
    from infersuite.serving.process import LOOPBACK, free_port

    args = _arguments(context.spec, {"python": "", "dtype": "float32", "max_model_len": "",
                                     "threads_bind": VLLM_CPU_ENV["VLLM_CPU_OMP_THREADS_BIND"]})
    if args["dtype"] not in ("float32", "bfloat16"):
        raise EngineError(f"engine {context.spec}: dtype={args['dtype']!r} (expected float32 "
                          "or bfloat16, the dtypes of vLLM's CPU backend)")
    _check_cpu_case(context)
    python = vllm_python(context.spec)
    model = context.reference_fp32()
    head_dim = getattr(model.config, "head_dim", None) or (
        model.config.hidden_size // model.config.num_attention_heads)
    if head_dim < 32:
        raise EngineUnsupported(f"engine {context.spec}: {context.model_name} has head size "
                                f"{head_dim}; vLLM's CPU attention needs 32 or more (the zoo's "
                                "llama-serve has 32)")
    checkpoint = context.workdir / "checkpoint"
    model.save_pretrained(checkpoint)
    if context.tokenizer is not None:
        context.tokenizer.save_pretrained(checkpoint)
    max_len = (_positive(context.spec, "max_model_len", args["max_model_len"])
               if args["max_model_len"]
               else min(int(model.config.max_position_embeddings), MAX_DEFAULT_CTX))
    port = free_port()
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server",
               "--model", str(checkpoint), "--served-model-name", context.model_name,
               "--host", LOOPBACK, "--port", str(port), "--dtype", args["dtype"],
               "--max-model-len", str(max_len), "--enforce-eager", "--seed", "0"]
    if context.tokenizer is not None and not getattr(context.tokenizer, "chat_template", None):
        template = context.workdir / "chat-template.jinja"
        template.write_text(CHAT_TEMPLATE)
        command += ["--chat-template", str(template)]
    env = {**VLLM_CPU_ENV, "VLLM_CPU_OMP_THREADS_BIND": args["threads_bind"]}
    server = _start(context, command, port, env=env, timeout_s=300.0)
    version = package_version(python, "vllm-cpu") or package_version(python, "vllm") or "?"
    info = {"server": "vllm", "server_version": version,
            "command": shlex.join(command),
            "env": " ".join(f"{k}={v}" for k, v in env.items()),
            "url": server.base_url, "startup_s": f"{server.startup_s:.2f}"}
    return OpenAIEngine(context.spec, _client(context, server.base_url, server), server, info,
                        **_model_facts(model), tokenizer=context.tokenizer,
                        precision=args["dtype"], reference_known=True, n_ctx=max_len)


def create(context: EngineContext) -> Engine:
    """The user's server: --infer-endpoint URL, or --infer-server-cmd started here."""
    from infersuite.serving.process import free_port, render_command

    args = _arguments(context.spec, {"precision": "float32", "n_ctx": ""})
    if args["precision"] not in PRECISIONS:
        raise EngineError(f"engine {context.spec}: precision={args['precision']!r} (expected "
                          f"one of {', '.join(PRECISIONS)})")
    _check_cpu_case(context)
    options = context.options.get("endpoint")
    url = getattr(options, "url", None)
    command_text = getattr(options, "server_cmd", None)
    server = None
    info: dict[str, str] = {}
    if command_text:
        port = free_port()
        command = render_command(command_text, port)
        server = _start(context, command, port, timeout_s=300.0)
        url = server.base_url
        info = {"command": shlex.join(command), "startup_s": f"{server.startup_s:.2f}"}
    if not url:
        raise EngineError(f"engine {context.spec}: no server; pass --infer-endpoint URL (a "
                          "running server) or --infer-server-cmd COMMAND (the suite starts it)")
    client = _client(context, url, server)
    info = {"server": "openai-compatible", "url": url, **info,
            "served_model": client.model, **server_version(client)}
    model = context.model
    return OpenAIEngine(context.spec, client, server, info, **_model_facts(model),
                        tokenizer=context.tokenizer, precision=args["precision"],
                        reference_known=bool(context.options.get("models_named")),
                        n_ctx=int(args["n_ctx"]) if args["n_ctx"].isdigit() else None)


def server_version(client: OpenAIClient) -> dict[str, str]:
    """What the server says about itself: vLLM's /version, the HTTP Server header."""
    found: dict[str, str] = {}
    try:
        response = client.get("/version")
        if response.status_code == 200 and "version" in response.text:
            found["server_version"] = str(response.json().get("version"))
        header = response.headers.get("server")
        if header:
            found["http_server"] = header
    except Exception:  # a server without the route: nothing to add
        pass
    return found
