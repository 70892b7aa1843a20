"""Re-measure the benchmarks the cross-run gate flags, in the same job, before they fail it.

The rule is baseline/rerun.py's. Here is the mechanics: the run that gated (the parent)
starts `python -m pytest` again with its own arguments plus ``--infer-rerun-of DIR``; that
child keeps only the node ids in DIR/ids.json, gates nothing, saves no baseline, writes
its report into DIR and its records into DIR/records.json, which the parent judges against
the same baseline. Its log stays in DIR/pytest.log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from infersuite.measure.records import PerfRecord
from infersuite.plugin.options import get_settings

# What the child must not inherit: options that write the parent's files (the child's
# report folder is its own) or choose tests by the last run's outcome (the child keeps
# exactly the flagged ids). Each with a value, as a flag, or with an optional value (only
# its --opt=value form takes one).
WITH_VALUE = ("--infer-save-baseline", "--infer-report-dir", "--infer-rerun-of",
              "--benchmark-json", "--benchmark-save", "--junitxml", "--junit-xml",
              "--resultlog", "--report-log", "--html")
FLAGS = ("--benchmark-autosave", "--lf", "--last-failed", "--ff", "--failed-first", "--sw",
         "--stepwise", "--nf", "--new-first")
OPTIONAL_VALUE = ("--benchmark-histogram", "--benchmark-cprofile-dump")
RERUN_TIMEOUT_S = 3600.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infersuite")
    group.addoption("--infer-no-rerun", action="store_true", default=False,
                    help="let a cross-run regression stand on one measurement (default: the "
                         "flagged benchmarks are measured again in the same job and a "
                         "regression must repeat, else it is inconclusive)")
    group.addoption("--infer-rerun-of", metavar="DIR",
                    help="internal: this run re-measures the node ids in DIR/ids.json for "
                         "the run that gated")


def rerun_dir(config: pytest.Config) -> Path | None:
    value = config.getoption("infer_rerun_of", None)
    return Path(value) if value else None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """In the child: nothing is gated or saved, and the report goes to DIR."""
    folder = rerun_dir(config)
    if folder is None:
        return
    config.option.infer_baseline = None
    config.option.infer_save_baseline = None
    config.option.infer_report_dir = str(folder)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    folder = rerun_dir(config)
    if folder is None:
        return
    wanted = set(json.loads((folder / "ids.json").read_text()))
    kept = [item for item in items if item.nodeid in wanted]
    dropped = [item for item in items if item.nodeid not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from infersuite.plugin.options import is_xdist_worker
    from infersuite.plugin.perf import collect_records, perf_state_key

    folder = rerun_dir(session.config)
    state = session.config.stash.get(perf_state_key, None)
    if folder is None or state is None or is_xdist_worker(session.config):
        return
    records = [asdict(r) for r in collect_records(session.config, state)]
    (folder / "records.json").write_text(json.dumps(records))


def filter_args(args: Sequence[str]) -> list[str]:
    """`args` without WITH_VALUE, FLAGS and OPTIONAL_VALUE options."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in WITH_VALUE:
            skip = "=" not in arg
            continue
        if name in FLAGS or name in OPTIONAL_VALUE:
            continue
        out.append(arg)
    return out


def child_args(args: Sequence[str], folder: Path) -> list[str]:
    """The parent's arguments, filtered, for a child that re-measures into `folder`."""
    return [*filter_args(args), "--infer-rerun-of", str(folder)]


def child_env() -> dict[str, str]:
    """The parent's environment, with PYTEST_ADDOPTS filtered as the arguments are."""
    import os
    import shlex

    env = dict(os.environ)
    if env.get("PYTEST_ADDOPTS"):
        env["PYTEST_ADDOPTS"] = shlex.join(filter_args(shlex.split(env["PYTEST_ADDOPTS"])))
    return env


def _ini_addopts(config: pytest.Config) -> list[str]:
    """The ini file's addopts, filtered, to replace it in the child (-o addopts=...)."""
    import shlex

    given = config.getini("addopts")
    kept = filter_args(list(given))
    return [] if kept == list(given) else ["-o", f"addopts={shlex.join(kept)}"]


def remeasure(config: pytest.Config, keys: Sequence[str]) -> tuple[list[PerfRecord] | None, str]:
    """Run the child over `keys`; its records, or None and why there are none."""
    folder = get_settings(config).report_dir / "rerun"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("records.json", "report.json", "report.md"):
        (folder / stale).unlink(missing_ok=True)
    (folder / "ids.json").write_text(json.dumps(list(keys)))
    command = [sys.executable, "-m", "pytest", *_ini_addopts(config),
               *child_args(config.invocation_params.args, folder)]
    log = folder / "pytest.log"
    start = time.perf_counter()
    with log.open("w") as out:
        # its own process group: a timeout stops it and any workers it started
        child = subprocess.Popen(command, cwd=config.invocation_params.dir, stdout=out,
                                 stderr=subprocess.STDOUT, env=child_env(),
                                 start_new_session=True)
        try:
            code = child.wait(timeout=RERUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            import os
            import signal

            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return None, f"the re-measurement ran past {RERUN_TIMEOUT_S:.0f} s (its log: {log})"
    seconds = time.perf_counter() - start
    try:
        data = json.loads((folder / "records.json").read_text())
        records = [PerfRecord(**entry) for entry in data]
    except (OSError, ValueError, TypeError) as exc:
        return None, (f"the re-measurement exited {code} after {seconds:.0f} s with no "
                      f"readable records ({type(exc).__name__}; its log: {log})")
    exited = "" if code == 0 else f", exit {code} (its log: {log})"
    return records, f"{len(records)} of {len(keys)} benchmarks in {seconds:.0f} s{exited}"


def confirm_by_rerun(config: pytest.Config, gate: Any,
                     judge: Callable[[list[PerfRecord], Any], Any]) -> tuple[Any, str]:
    """The gate with each regression confirmed by a re-measurement or made inconclusive;
    `judge(records, floors)` gates records against the run's baseline. Returns the gate
    and a line for the terminal ("" when nothing was re-measured)."""
    from infersuite.baseline.rerun import apply_rerun, flagged_keys

    keys = flagged_keys(gate)
    if not keys or config.getoption("infer_no_rerun") or rerun_dir(config) is not None:
        return gate, ""
    records, said = remeasure(config, keys)
    if records is None:
        return apply_rerun(gate, None, said), f"regressions not re-measured: {said}"
    confirmed = apply_rerun(gate, judge(records, gate.noise_floors))
    measured = {r.fullname for r in records}
    missing = [k for k in keys if k not in measured]
    repeated = len([k for k in flagged_keys(confirmed) if k in measured])
    unmeasured = f", {len(missing)} not re-measured (they stand)" if missing else ""
    report = get_settings(config).report_dir / "rerun"
    return confirmed, (f"re-measured {said}: {repeated} of {len(keys)} regressions "
                       f"repeated{unmeasured} (report: {report})")
