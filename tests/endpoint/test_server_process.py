"""Servers the suite starts: health check, log capture, a clear error when one will not
come up, and no process left behind, also when pytest is interrupted or killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from infersuite.serving.process import ServerError, ServerProcess, free_port, render_command


def test_render_command_fills_port_and_host():
    assert render_command("srv --host {host} --port {port} --x 'a b'", 8123) == [
        "srv", "--host", "127.0.0.1", "--port", "8123", "--x", "a b"]


def test_server_that_exits_reports_its_log(tmp_path):
    command = [sys.executable, "-c", "import sys; print('cannot load the model'); sys.exit(3)"]
    with pytest.raises(ServerError, match=r"(?s)exited with status 3 before answering.*"
                                          r"cannot load the model"):
        ServerProcess(command, free_port(), tmp_path / "server.log").start()


def test_server_that_never_answers_is_stopped(tmp_path):
    command = [sys.executable, "-c", "import time; print('loading', flush=True); "
               "time.sleep(60)"]
    server = ServerProcess(command, free_port(), tmp_path / "server.log",
                           startup_timeout_s=1.5)
    with pytest.raises(ServerError, match=r"(?s)did not answer .* within 1.5 s.*loading"):
        server.start()
    assert not server.alive()


def _wait_gone(pid, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


HOLD = """
import time

import pytest

pytestmark = pytest.mark.infer_cases(serving=True)


def test_hold(infer_endpoint):
    print("SERVER_PID", infer_endpoint.engine.server.pid, flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_no_orphan_server_when_pytest_is_stopped(pytester, how):
    """Ctrl-C: pytest's teardown stops the server. kill -9: no teardown runs, the server
    gets SIGTERM from the kernel as its parent dies (PR_SET_PDEATHSIG)."""
    pytester.makepyfile(test_hold=textwrap.dedent(HOLD))
    # A run launched in the background (`cmd &` in a shell without job control, nohup)
    # inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler: give
    # the child the default disposition, as a terminal's Ctrl-C would find it.
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider",
                                "test_hold.py"], cwd=pytester.path, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    pid = None
    assert process.stdout is not None
    for line in process.stdout:
        if "SERVER_PID" in line:  # pytest prints it after the module's name
            pid = int(line.split("SERVER_PID")[1].split()[0])
            break
    assert pid is not None
    assert psutil.pid_exists(pid)
    process.send_signal(how)
    try:  # keep reading: a child blocked on a full pipe would never exit
        output, _ = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"pytest did not exit within 90 s of {how!r}; its output after the "
                    f"signal:\n{output[-4000:]}")
    assert _wait_gone(pid), f"server {pid} still running after pytest got {how!r}"
