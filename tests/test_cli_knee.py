"""`infersuite knee SWEEP.csv`: JSON output, units, and errors a person can act on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infersuite.cli import main

GRID = [1, 2, 4, 8, 16, 32, 64, 128]


def _rows_seconds() -> list[tuple[int, float, float, float]]:
    rows = []
    for b in GRID:
        x = 5000.0 * b / (b + 8.0)  # Amdahl, K = 8: power knee at 8
        p50 = b / x
        rows.append((b, x, p50, 1.5 * p50))
    return rows


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _csv_seconds(tmp_path: Path, extra_rows: str = "") -> Path:
    lines = ["batch_size,throughput,latency_p50,latency_p99,gpu"]
    lines += [f"{b},{x!r},{p50!r},{p99!r},h100" for b, x, p50, p99 in _rows_seconds()]
    return _write(tmp_path / "sweep.csv", "\n".join(lines) + "\n" + extra_rows)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["knee", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, str(_csv_seconds(tmp_path)))
    assert code == 0, err
    report = json.loads(out)
    assert {"power_knee", "slo_knee", "fit", "kneedle", "points", "warnings"} <= set(report)
    assert report["power_knee"]["batch_size"] == 8
    assert report["slo_knee"]["batch_size"] is not None
    assert report["fit"]["model"] == "amdahl"
    assert report["fit"]["params"]["K"] == pytest.approx(8.0, rel=1e-3)
    assert "batch_size" in report["kneedle"]
    assert len(report["points"]) == len(GRID)


def test_millisecond_header_and_slo_ms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["batch_size,throughput,latency_p50_ms,latency_p99_ms"]
    lines += [f"{b},{x!r},{p50 * 1e3!r},{p99 * 1e3!r}" for b, x, p50, p99 in _rows_seconds()]
    path = _write(tmp_path / "ms.csv", "\n".join(lines) + "\n")
    code, out, _ = _run(capsys, str(path), "--slo-ms", "3.5")
    report = json.loads(out)
    assert code == 0
    assert report["slo_knee"]["detail"]["slo"] == pytest.approx(0.0035)
    # p99 (s) = 1.5 * (b + 8) / 5000 <= 0.0035  <=>  b <= 3.67, so the SLO knee is 2.
    assert report["slo_knee"]["batch_size"] == 2
    assert report["points"][0]["latency_p50"] == pytest.approx(_rows_seconds()[0][2])
    assert report["power_knee"]["batch_size"] == 8


def test_status_column_and_model_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["batch_size,throughput,latency_p50,latency_p99,status"]
    lines += [f"{b},{x!r},{p50!r},{p99!r},ok" for b, x, p50, p99 in _rows_seconds()]
    lines.append("256,,,,OOM")
    path = _write(tmp_path / "oom.csv", "\n".join(lines) + "\n")
    code, out, _ = _run(capsys, str(path), "--model", "usl", "--slo-factor", "3")
    report = json.loads(out)
    assert code == 0
    assert report["points"][-1]["status"] == "oom"
    assert any("256: oom" in w for w in report["warnings"])
    assert report["fit"]["model"] == "usl"
    assert "3 x p99" in report["slo_knee"]["detail"]["slo_source"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("", "is empty"),
        ("batch_size,throughput,latency_p50,latency_p99\n", "no data rows"),
        ("batch_size,throughput,latency_p50\n1,10,0.1\n", "missing column(s) latency_p99"),
        (
            "batch_size,throughput,latency_p50,latency_p99\n1,10,0.1,0.2\n2,fast,0.1,0.2\n",
            "row 2 (line 3): throughput 'fast' is not a number",
        ),
        (
            "batch_size,throughput,latency_p50,latency_p99\n1.5,10,0.1,0.2\n",
            "row 1 (line 2): batch_size '1.5' is not a positive integer",
        ),
        ("batch_size,throughput,latency_p50,latency_p99\n1,,0.1,0.2\n", "throughput is empty"),
        ("batch_size,throughput,latency_p50,latency_p99,status\n1,1,1,1,crashed\n", "status"),
        (
            "batch_size,throughput,latency_p50,latency_p99\n1,1,1,1\n1,2,2,2\n",
            "appears more than once",
        ),
    ],
)
def test_bad_input_exits_2_with_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, expected: str
) -> None:
    path = tmp_path / "sweep.csv"
    if content is not None:
        _write(path, content)
    code, out, err = _run(capsys, str(path))
    assert code == 2
    assert out == ""
    assert expected in err
    assert "Traceback" not in err


def test_bad_option_value_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc_info:
        main(["knee", str(_csv_seconds(tmp_path)), "--slo-ms", "-1"])
    assert exc_info.value.code == 2
    assert "must be a finite number > 0" in capsys.readouterr().err


def test_help_in_a_subprocess() -> None:
    # `python -m infersuite.cli` needs a cli/__main__.py; call main() directly instead.
    code = "import sys; from infersuite.cli import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", code, "knee", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "SWEEP.csv" in result.stdout
    assert "--slo-ms" in result.stdout
