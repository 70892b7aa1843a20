"""A pickle checkpoint is refused before anything unpickles it."""

from __future__ import annotations

import json
import os
import pickle

import pytest


class _Payload:
    """Unpickling this runs os.system, creating the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious_checkpoint(directory, marker) -> None:
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (directory / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(str(marker))))


def test_payload_is_live(tmp_path):
    """Control: the payload really runs when unpickled, so its absence below means something."""
    marker = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_Payload(str(marker))))
    assert marker.exists()


def test_pickle_checkpoint_is_refused_and_never_unpickled(pytester: pytest.Pytester, tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "evil-ckpt"
    _malicious_checkpoint(checkpoint, marker)
    pytester.makepyfile(
        test_uses_model="def test_model(infer_case):\n    assert infer_case.model\n")
    result = pytester.runpytest("--infer-model", str(checkpoint), "--infer-device", "cpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*only pickle weights (pytorch_model.bin)*refused*"
                                 "--infer-allow-pickle*"])
    assert not marker.exists(), "the pickle payload ran: the checkpoint was unpickled"
