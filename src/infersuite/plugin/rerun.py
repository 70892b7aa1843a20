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

# Options whose files the child must not write over (the parent writes them), each with
# a value; the child's report folder is its own.
PARENT_OUTPUTS = ("--infer-save-baseline", "--infer-report-dir", "--benchmark-json",
                  "--benchmark-save", "--junitxml", "--junit-xml", "--resultlog")
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


def child_args(args: Sequence[str], folder: Path) -> list[str]:
    """The parent's arguments without the options that name its output files."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in PARENT_OUTPUTS or name == "--infer-rerun-of":
            skip = "=" not in arg
            continue
        out.append(arg)
    return [*out, "--infer-rerun-of", str(folder)]


def remeasure(config: pytest.Config, keys: Sequence[str]) -> tuple[list[PerfRecord] | None, str]:
    """Run the child over `keys`; its records, or None and why there are none."""
    folder = get_settings(config).report_dir / "rerun"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("records.json", "report.json", "report.md"):
        (folder / stale).unlink(missing_ok=True)
    (folder / "ids.json").write_text(json.dumps(list(keys)))
    command = [sys.executable, "-m", "pytest",
               *child_args(config.invocation_params.args, folder)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=config.invocation_params.dir, capture_output=True,
                              text=True, timeout=RERUN_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return None, f"the re-measurement ran past {RERUN_TIMEOUT_S:.0f} s"
    log = folder / "pytest.log"
    log.write_text(done.stdout + done.stderr)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or not (folder / "records.json").exists():
        return None, (f"the re-measurement exited {done.returncode} after {seconds:.0f} s "
                      f"(its log: {log})")
    data = json.loads((folder / "records.json").read_text())
    return [PerfRecord(**entry) for entry in data], f"{len(keys)} benchmarks in {seconds:.0f} s"


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
    kept = len(flagged_keys(confirmed))
    return confirmed, (f"re-measured {said}: {kept} of {len(keys)} regressions repeated "
                       f"(report: {get_settings(config).report_dir / 'rerun'})")
