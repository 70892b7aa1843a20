"""Servers under test in a pytest run: the ``infer_endpoint`` fixture and the report.

An endpoint module asks for ``infer_endpoint`` and marks itself
``pytest.mark.infer_cases(serving=True)``: it is then parametrized over the serving engines
(llama.cpp's server by default, started by the suite; see Settings.serving_engines). The
fixture hands it the engine's client, the model's token texts, the shipped prompts, the
reference's greedy answers (cached per run) and the tolerance of the server's precision.

When a test of a server fails, the tail of the server's log is attached to its report;
the server's command, version and start-up time go into the report's properties, the
terminal summary and endpoint.json. Load on a server is ``infersuite.plugin.load``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from infersuite.plugin.cases import InferCase

SERVER_PROPERTY = "infersuite_server"
answers_key = pytest.StashKey[dict[tuple[Any, ...], Any]]()
N_NEW = 12  # tokens per answer in the endpoint checks


@dataclass
class EndpointCase:
    """What an endpoint test gets: the server's engine and how to judge its answers."""

    case: InferCase
    engine: Any  # OpenAIEngine
    config: pytest.Config = field(repr=False)

    @property
    def client(self) -> Any:
        return self.engine.client

    @property
    def context(self) -> dict[str, str]:
        return {"server": self.engine.info.get("server", "?"),
                "version": self.engine.info.get("server_version", "?"),
                "case": self.case.id}

    @property
    def tolerance(self) -> Any:
        from infersuite.conformance.agreement import precision_tolerance

        return precision_tolerance(self.engine.precision, self.case.settings.tolerances)

    @property
    def prompts(self) -> tuple[str, ...]:
        from infersuite.conformance.inputs import load_prompts

        return load_prompts()

    def require_reference(self) -> None:
        """Skip unless the case's model is the checkpoint the server serves."""
        if not self.engine.reference_known:
            pytest.skip(f"{self.case.case.engine}: which checkpoint the server serves is not "
                        "known; pass --infer-model PATH (the served checkpoint) to judge its "
                        "answers against transformers float32")
        if self.engine.tokenizer is None:
            pytest.skip(f"{self.case.id}: the model has no tokenizer, so a server's token "
                        "texts cannot be matched to its ids")

    @property
    def texts(self) -> Any:
        from infersuite.conformance.endpoint import TokenTexts

        self.require_reference()
        key = ("texts", self.case.case.model)
        cache = self.config.stash[answers_key]
        if key not in cache:
            cache[key] = TokenTexts.from_tokenizer(self.engine.tokenizer,
                                                   self.engine.vocab_size)
        return cache[key]

    def prompt_ids(self, prompt: str) -> list[int]:
        """The server's own tokenization where it has a route for it (else the model's
        tokenizer), so the reference sees the ids the server ran."""
        key = ("ids", self.case.id, prompt)
        cache = self.config.stash[answers_key]
        if key not in cache:
            ids = self.client.tokenize(prompt)
            if ids is None:
                self.require_reference()
                ids = self.engine.tokenizer(prompt, add_special_tokens=True)["input_ids"]
            cache[key] = ids
        return list(cache[key])

    def reference_answer(self, prompt: str, n_new: int = N_NEW) -> Any:
        """transformers float32's greedy continuation of `prompt` (cached per run)."""
        from infersuite.conformance.endpoint import reference_continuation

        self.require_reference()
        ids = self.prompt_ids(prompt)  # this server's tokenization: the key, not the text
        key = ("reference", self.case.case.model, tuple(ids), n_new)
        cache = self.config.stash[answers_key]
        if key not in cache:
            cache[key] = reference_continuation(self.case.reference, ids, n_new,
                                                self.engine.eos_ids)
        return cache[key]

    def check_answers_prompt(self, answer: Any, prompt: str, what: str) -> None:
        """The answer belongs to `prompt` (prompt token count; first-step logprob against
        the reference when the served checkpoint is known)."""
        from infersuite.conformance.endpoint import check_answers_prompt

        known = self.engine.reference_known and self.engine.tokenizer is not None
        check_answers_prompt(answer, self.prompt_ids(prompt),
                             self.reference_answer(prompt, 1) if known else None,
                             self.texts if known else None, self.tolerance, what, self.context)

    def body(self, prompt: str, **params: Any) -> dict[str, Any]:
        """A completions request: temperature 0, N_NEW tokens unless `params` say else."""
        return self.client.request_body(prompt, **{"max_tokens": N_NEW, "temperature": 0.0,
                                                   **params})

    def complete(self, prompt: str, **params: Any) -> Any:
        return self.client.create(self.body(prompt, **params))[0]

    def run_concurrently(self, bodies: Sequence[Mapping[str, Any]],
                         max_connections: int = 64, keep_errors: bool = False) -> list[Any]:
        """Send all requests at once (up to `max_connections` in flight); first choices,
        in the order of `bodies`. With `keep_errors`, a request that failed (an HTTP error,
        a broken stream) gives its exception in its place instead of raising."""
        async def run() -> list[Any]:
            async with self.client.async_http(max_connections) as http:
                answers = await asyncio.gather(*(self.client.acreate(http, b) for b in bodies),
                                               return_exceptions=keep_errors)
            return [a if isinstance(a, BaseException) else a[0] for a in answers]

        return asyncio.run(run())


@pytest.fixture
def infer_endpoint(infer_case: InferCase, request: pytest.FixtureRequest) -> EndpointCase:
    """The serving engine of the case, started on first use (once per run)."""
    engine = infer_case.engine
    infer_case.require("endpoint")
    request.node.user_properties.append((SERVER_PROPERTY, engine.describe()))
    return EndpointCase(infer_case, engine, request.config)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[answers_key] = {}
    config.pluginmanager.register(EndpointReport(config), "infersuite-endpoint-report")


class EndpointReport:
    """endpoint.json in the report folder: the servers (command, version, flags, start-up
    time), the host, and each endpoint check's outcome (on the process that reports)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.checks: list[dict[str, Any]] = []
        self.servers: dict[str, dict[str, str]] = {}  # from the reports (xdist workers too)
        self.written: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties: dict[str, Any] = dict(report.user_properties)
        if SERVER_PROPERTY not in properties or not (report.when == "call" or report.failed):
            return
        info = dict(properties[SERVER_PROPERTY])
        self.servers.setdefault(str(info.get("engine")), info)
        self.checks.append({
            "test": report.nodeid,
            "outcome": "xfailed" if hasattr(report, "wasxfail") else report.outcome,
            "server": info.get("engine"),
            "known_finding": properties.get("infersuite_known_finding"),
            "message": (report.longreprtext.strip().splitlines() or [""])[-1][:500]
            if report.failed else None})

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from infersuite.atomic import write_text_atomic
        from infersuite.baseline.fingerprint import compute_fingerprint
        from infersuite.plugin.options import get_settings, is_xdist_worker

        if not self.checks or is_xdist_worker(self.config):
            return
        checks: dict[str, Any] = {
            "schema": "infersuite.endpoint/1",
            "fingerprint": {**compute_fingerprint(None, self.config.rootpath),
                            "servers": self.servers},
            "checks": self.checks}
        report_dir = get_settings(self.config).report_dir
        report_dir.mkdir(parents=True, exist_ok=True)
        path = report_dir / "endpoint.json"
        write_text_atomic(path, json.dumps(checks, indent=2) + "\n")
        self.written = str(path)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.servers:
            return
        terminalreporter.section("infersuite servers under test")
        for spec, info in self.servers.items():
            shown = ", ".join(f"{k}={v}" for k, v in info.items() if k != "engine")
            terminalreporter.write_line(f"{spec}: {shown}")
        if self.written:
            terminalreporter.write_line(f"endpoint report: {self.written}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and "infer_endpoint" in getattr(item, "fixturenames", ()):
        endpoint = getattr(item, "funcargs", {}).get("infer_endpoint")
        tail = endpoint.engine.log_tail() if endpoint is not None else None
        if tail:
            report.sections.append(("server log (last 40 lines)", tail))
    return report
