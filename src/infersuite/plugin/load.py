"""Load on a server in a pytest run: the ``infer_load`` fixture, the end-of-run table,
load.json, the knee plots over concurrency and the rate plots.

Load modules (suite/perf/test_endpoint_load.py, test_endpoint_rate_sweep.py) run their
levels with infersuite.serving.load and hand each to ``infer_load.add``. ``--infer-slo``
sets the per-request targets of goodput and of the rate sweep's verdict, ``--infer-arrivals``
the arrival process, and ``--infer-allow-remote-load`` lets load reach another machine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

# Per-request targets for goodput (--infer-slo): in the spirit of MLPerf's interactive
# scenario (TTFT and TPOT targets at p99), scaled to a tiny model on a CPU.
DEFAULT_SLO = {"ttft_s": 0.2, "tpot_s": 0.05}
SLO_NAMES = {"ttft_p99": "ttft_s", "tpot_p99": "tpot_s", "e2e_p99": "e2e_s"}


def parse_slo(value: str) -> dict[str, float]:
    """``ttft_p99=0.2,tpot_p99=0.05`` (seconds) -> {"ttft_s": 0.2, "tpot_s": 0.05}."""
    import argparse

    found = {}
    for part in filter(None, value.split(",")):
        key, sep, number = part.partition("=")
        try:
            seconds = float(number)
        except ValueError:
            seconds = -1.0
        if not sep or key.strip() not in SLO_NAMES or not seconds > 0:
            raise argparse.ArgumentTypeError(
                f"{value!r}: expected NAME=SECONDS[,...] with NAME one of "
                f"{', '.join(SLO_NAMES)}, e.g. ttft_p99=0.2,tpot_p99=0.05")
        found[SLO_NAMES[key.strip()]] = seconds
    return found


def parse_arrivals(value: str) -> tuple[str, float]:
    """``poisson``, ``constant`` or ``gamma:B`` (B the burstiness) -> (pattern, burstiness)."""
    import argparse

    pattern, _, burst = value.partition(":")
    try:
        burstiness = float(burst) if burst else 1.0
    except ValueError:
        burstiness = -1.0
    if pattern not in ("poisson", "constant", "gamma") or not burstiness > 0 \
            or (burst and pattern != "gamma"):
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected poisson, constant or gamma:BURSTINESS (> 0; 1 is Poisson, "
            "above 1 burstier), e.g. gamma:4")
    return pattern, burstiness


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infersuite")
    group.addoption(
        "--infer-slo", type=parse_slo, default=None, metavar="NAME=S,...",
        help="per-request latency targets for goodput in load runs (seconds): ttft_p99, "
             "tpot_p99, e2e_p99 (default ttft_p99=0.2,tpot_p99=0.05)")
    group.addoption(
        "--infer-allow-remote-load", action="store_true", default=False,
        help="let load runs send traffic to a server that is not on this machine (by "
             "default load goes to loopback addresses only)")
    group.addoption(
        "--infer-arrivals", type=parse_arrivals, default=("poisson", 1.0),
        metavar="poisson|constant|gamma:B",
        help="arrival process of the rate sweep (default poisson; gamma:B with burstiness "
             "B, 1 = Poisson)")


class LoadTable:
    """The ``infer_load`` fixture: one row per load level, printed at the end and written
    to load.json (percentiles with intervals, goodput, the client's own numbers), with
    the knee over concurrency."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.rows: list[dict[str, Any]] = []
        self.slo: dict[str, float] = config.getoption("infer_slo") or dict(DEFAULT_SLO)
        self.arrivals: tuple[str, float] = config.getoption("infer_arrivals")
        self.rate_sweeps: dict[str, dict[str, Any]] = {}
        self.servers: dict[str, dict[str, str]] = {}

    def check_target(self, ep: Any) -> None:
        """Load goes to loopback addresses only, unless --infer-allow-remote-load."""
        from infersuite.serving.load import is_loopback_url

        url = ep.client.base_url
        if not is_loopback_url(url) and not self.config.getoption("infer_allow_remote_load"):
            pytest.fail(f"{url} is not a loopback address: load runs send traffic only to "
                        "this machine unless you pass --infer-allow-remote-load (make sure "
                        "you may load that server)", pytrace=False)

    def solo_answers(self, ep: Any, max_tokens: int) -> tuple[dict[str, str], dict[str, Any],
                                                              bool]:
        """Each shipped prompt answered alone at temperature 0 (what answers under load must
        equal), the extra request parameters for a fixed length (``ignore_eos`` where the
        server takes it), and whether it does."""
        from infersuite.serving.load import accepts_ignore_eos

        fixed = accepts_ignore_eos(ep.client, ep.prompts[0])
        extra = {"ignore_eos": True} if fixed else {}
        solo = {p: ep.complete(p, max_tokens=max_tokens, **extra).text for p in ep.prompts}
        return solo, extra, fixed

    def check_answers(self, ep: Any, run: Any, solo: Mapping[str, str], every: int,
                      where: str) -> None:
        """Every `every`-th measured request must have come back whole and equal to its
        prompt's solo answer: a failed or cut-short request is a wrong answer too, so a
        load report never shows speed for wrong output."""
        from infersuite.conformance.compare import ConformanceError, render_context

        prompts = ep.prompts
        wrong = [t for t in run.measured[::every] if t.status != "not-sent" and (
            t.status != "ok" or t.text != solo[prompts[t.index % len(prompts)]])]
        if wrong:
            first = wrong[0]
            prompt = prompts[first.index % len(prompts)]
            got = first.text if first.status == "ok" else \
                f"{first.status}: {first.error} (text {first.text!r})"
            raise ConformanceError(
                f"{where}: {len(wrong)} sampled answers differ from the solo ones; request "
                f"{first.index} ({prompt!r}): {got!r} vs alone {solo[prompt]!r} "
                f"[{render_context(ep.context)}]")

    def progress(self, text: str) -> None:
        """A progress line on the terminal while a sweep runs (output capture or not)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        if capture is None:
            reporter.write_line(f"infersuite load: {text}")
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"infersuite load: {text}")

    def add_rate_sweep(self, case: str, rows: list[dict[str, Any]], best: float | None,
                       trail: list[tuple[float, bool]], note: str) -> None:
        self.rate_sweeps[case] = {"levels": rows, "max_rate_meeting_slo": best,
                                  "bisection": [{"rate_per_s": r, "meets_slo": ok}
                                                for r, ok in trail], "note": note}

    def add(self, ep: Any, label: str, concurrency: int | None, run: Any,
            phases: Mapping[str, float] | None = None, fixed_length: bool = False
            ) -> dict[str, Any]:
        """One load level; `phases`: the server's own mean queue/prefill/decode seconds
        (from /metrics), `fixed_length`: whether requests asked for ignore_eos (the
        server took the parameter; the lengths received are reported either way)."""
        from infersuite.stats.percentiles import compute_summary

        metrics = run.metrics()
        self.servers.setdefault(str(ep.case.case.engine), ep.engine.describe())
        tokens = sum(t.n_tokens for t in run.measured if t.status == "ok")
        row = {"case": ep.case.id, "server": ep.engine.info.get("server"), "level": label,
               "concurrency": concurrency,
               "requested_rate_per_s": run.requested_rate_per_s,
               "achieved_rate_per_s": run.achieved_rate_per_s,
               "counts": run.counts(), "wall_s": run.wall_s,
               "measured_wall_s": run.measured_wall_s,
               "throughput_tok_s": (tokens / run.measured_wall_s if run.measured_wall_s > 0
                                    else None),
               "output_tokens": sorted(t.n_tokens for t in run.measured if t.status == "ok"),
               "fixed_length": fixed_length, "server_phases_s": dict(phases or {}),
               "goodput_req_s": run.goodput(self.slo), "slo": self.slo,
               "client_cpu_share": run.client_cpu_share, "saturation": run.saturation(),
               "metrics": {k: compute_summary(v, (50.0, 90.0, 99.0)).to_dict()
                           for k, v in metrics.items()}}
        self.rows.append(row)
        return row

    def knee(self, case: str) -> Any:
        from infersuite.stats.knee import analyze_sweep
        from infersuite.stats.sweep import SweepPoint

        points = []
        for row in self.rows:
            if row["case"] != case or row["concurrency"] is None:
                continue
            e2e = row["metrics"]["e2e_s"]["percentiles"]
            status = "ok" if not row["saturation"] and row["counts"].get("ok") else "error"
            points.append(SweepPoint(row["concurrency"], row["throughput_tok_s"],
                                     e2e["p50"]["value"], e2e["p99"]["value"],
                                     e2e["p99"]["upper"], status))
        return analyze_sweep(points, slo=self.slo.get("e2e_s")) if len(points) >= 2 else None

    def knee_document(self, knees: Mapping[str, Any]) -> dict[str, Any]:
        """The concurrency levels in the shape the knee plots read (one sweep per case)."""
        sweeps = []
        for case, knee in knees.items():
            points = [{"batch_size": row["concurrency"], "tokens_per_s": row["throughput_tok_s"],
                       "latency_s": row["metrics"].get("e2e_s"),
                       "status": "ok" if not row["saturation"] and row["counts"].get("ok")
                       else "client saturated"}
                      for row in self.rows if row["case"] == case and row["concurrency"]]
            sweeps.append({"id": case, "points": points, "knee": knee})
        return {"sweeps": sweeps}

    def render(self) -> str:
        from tabulate import tabulate

        from infersuite.report.terminal import format_estimate

        def cell(row: dict[str, Any], metric: str, p: str) -> str:
            summary = row["metrics"].get(metric)
            return format_estimate(summary["percentiles"][p]) if summary else "–"

        def lengths(row: dict[str, Any]) -> str:
            got = row["output_tokens"]
            if not got:
                return "–"
            # what came back, whatever was asked: a server may accept ignore_eos and not
            # honour it, or send more tokens than max_tokens
            return f"{got[0]}" if got[0] == got[-1] else \
                f"{got[0]}–{got[-1]} (median {got[len(got) // 2]})"

        def phases(row: dict[str, Any]) -> str:
            found = row["server_phases_s"]
            return " ".join(f"{k[:-2]} {v * 1e3:.1f}" for k, v in found.items()) or "–"

        table = [[row["case"], row["level"],
                  *(cell(row, m, p) for m in ("ttft_s", "itl_s", "tpot_s", "e2e_s")
                    for p in ("p50", "p90", "p99")),
                  f"{row['throughput_tok_s']:.0f}", f"{row['goodput_req_s']:.1f}",
                  lengths(row), phases(row),
                  " ".join(f"{k}={v}" for k, v in row["counts"].items() if v),
                  "; ".join(row["saturation"]) or "no"] for row in self.rows]
        headers = ["case", "load", *(f"{m} {p}" for m in ("TTFT", "ITL", "TPOT", "E2E")
                                     for p in ("p50", "p90", "p99")),
                   "tok/s", "goodput req/s", "output tokens", "server ms/request",
                   "requests", "client saturated"]
        return tabulate(table, headers)


load_key = pytest.StashKey[LoadTable]()


@pytest.fixture
def infer_load(request: pytest.FixtureRequest) -> LoadTable:
    """Collects load levels for the end-of-run table and load.json."""
    return request.config.stash[load_key]


class LoadReport:
    """Writes load.json and the plots at the end of the run, and prints the table (on the
    process that reports)."""

    def __init__(self, table: LoadTable) -> None:
        self.table = table
        self.knees: dict[str, Any] = {}
        self.written: str | None = None
        self.plots: list[str] = []

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from infersuite.atomic import write_text_atomic
        from infersuite.baseline.fingerprint import compute_fingerprint
        from infersuite.plugin.options import get_settings, is_xdist_worker

        load, config = self.table, self.table.config
        if not load.rows or is_xdist_worker(config):
            return
        report_dir = get_settings(config).report_dir
        report_dir.mkdir(parents=True, exist_ok=True)
        cases = dict.fromkeys(row["case"] for row in load.rows)
        knees = {case: (k.to_dict() if (k := load.knee(case)) else None) for case in cases}
        self.knees = {c: k for c, k in knees.items() if k}
        document: dict[str, Any] = {
            "schema": "infersuite.load/1",
            "fingerprint": {**compute_fingerprint(None, config.rootpath),
                            "servers": load.servers},
            "slo": load.slo, "levels": load.rows, "knee_over_concurrency": knees,
            "rate_sweeps": load.rate_sweeps}
        path = report_dir / "load.json"
        write_text_atomic(path, json.dumps(document, indent=2) + "\n")
        self.written = str(path)
        if load.rate_sweeps:
            from infersuite.report.load_plots import render_load_plots

            plots, note = render_load_plots(document, report_dir)
            self.plots += [str(p) for p in plots] or [note]
        if self.knees:
            from infersuite.report.knee_plots import render_knee_plots

            plots, note = render_knee_plots(load.knee_document(self.knees),
                                            report_dir / "load_knee", level="concurrency")
            self.plots += [str(p) for p in plots] or [note]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        load = self.table
        if not load.rows:
            return
        slo = ", ".join(f"{k} <= {v * 1e3:g} ms" for k, v in load.slo.items())
        terminalreporter.section("infersuite endpoint load")
        terminalreporter.write_line(f"(ms; [95% order-statistic interval]; ? = bound needs "
                                    f"more samples; * = too few samples; goodput: "
                                    f"requests/s meeting {slo})")
        terminalreporter.write_line(load.render())
        for case, knee in self.knees.items():
            slo_knee = knee["slo_knee"]["batch_size"]
            power = knee["power_knee"]["batch_size"]
            terminalreporter.write_line(f"{case}: knee over concurrency: power knee "
                                        f"{power}, SLO knee {slo_knee}")
        for case, sweep in load.rate_sweeps.items():
            best = sweep["max_rate_meeting_slo"]
            terminalreporter.write_line(
                f"{case}: highest request rate meeting the SLO at p99 (95% upper bounds): "
                + (f"{best:.2f}/s" if best is not None else "none") + f" ({sweep['note']})")
        if self.written:
            terminalreporter.write_line(f"load report: {self.written}")
        for path in self.plots:
            terminalreporter.write_line(f"load plot: {path}")


def pytest_configure(config: pytest.Config) -> None:
    if config.option.help or config.option.markers:
        return
    table = LoadTable(config)
    config.stash[load_key] = table
    config.pluginmanager.register(LoadReport(table), "infersuite-load-report")
