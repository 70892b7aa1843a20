"""``env``: an engine built in a worker process of another Python environment.

Two environments side by side in one run: a baseline venv (another torch or transformers)
or a baseline checkout of the code against the candidate, each in its own process, driven
by the same pytest run. Arguments:

- ``python=PATH``: the worker's interpreter (another venv's ``bin/python``); default: this
  one. That environment needs the inference stack (torch, transformers, numpy); infersuite
  itself comes from ``path=`` or, without it, from this process's copy (only the package
  directory is put on its path, never this environment's site-packages);
- ``path=DIR``: put first on the worker's ``PYTHONPATH``, e.g. a baseline checkout's
  ``src`` so the worker imports that tree's infersuite;
- ``engine=NAME``: the engine the worker builds (default ``hf``); every other argument goes
  to it (``env:path=../base/src,attention=eager``).

The worker loads the case's model itself (same zoo entry or checkpoint, dtype, device), so
both sides hold the same weights, and runs torch on ``--infer-cpu-threads`` threads, on
that many CPUs: the last ones of this process's, the same for every env worker
(engines/worker.worker_cpus), so the two sides of an A/B run share their cores. Calls
and their tensors cross a socket (engines/worker.py), which costs time of its own: for a
fair A/B run A as a worker too, ``--infer-engine env --infer-ab env:python=/opt/base/.venv/
bin/python``. Tensors travel as numpy pickles, so both environments need a numpy of the
same major version.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from infersuite.engines.base import EngineContext, EngineError, EngineSpec, parse_engine_spec
from infersuite.engines.worker import IsolatedEngine

OWN_ARGS = ("python", "path", "engine")


def _package_only_path(workdir: Path) -> str:
    """A directory holding only a link to this process's infersuite package, so another
    interpreter imports this infersuite without this environment's other packages."""
    import infersuite

    folder = Path(tempfile.mkdtemp(prefix="env-path-", dir=workdir))
    (folder / "infersuite").symlink_to(Path(infersuite.__file__).parent,
                                       target_is_directory=True)
    return str(folder)


def worker_paths(python: str | None, path: str | None, workdir: Path) -> list[str] | None:
    """The worker's PYTHONPATH: `path` first; this process's sys.path after it when the
    interpreter is this one, else only an infersuite (from `path`, or a link to ours)."""
    if python is None:
        return None if path is None else [path, *sys.path]
    return [path] if path is not None else [_package_only_path(workdir)]


def _check(spec: EngineSpec, python: str | None, path: str | None) -> None:
    if python is not None and not os.access(python, os.X_OK):
        raise EngineError(f"engine {spec}: python={python!r} is not an executable file; give "
                          "the baseline environment's interpreter, e.g. "
                          "python=/opt/base/.venv/bin/python")
    if path is not None and not (Path(path) / "infersuite").is_dir():
        raise EngineError(f"engine {spec}: path={path!r} holds no infersuite package; give "
                          "the folder that contains it, e.g. a checkout's src")


def create(context: EngineContext) -> IsolatedEngine:
    args = context.spec.kwargs
    python, path = args.get("python"), args.get("path")
    _check(context.spec, python, path)
    inner = EngineSpec(args.get("engine", "hf"),
                       tuple((k, v) for k, v in context.spec.args if k not in OWN_ARGS))
    if inner.name == "env":
        raise EngineError(f"engine {context.spec}: engine=env would nest workers; name the "
                          "engine the worker should build, e.g. engine=hf")
    threads = int(context.options.get("cpu_threads") or 0)
    payload = {"model": context.model_name, "dtype": context.dtype, "device": context.device,
               "spec": str(inner), "workdir": str(context.workdir),
               "allow_pickle": bool(context.options.get("allow_pickle", False)),
               "cpu_threads": threads}
    engine = IsolatedEngine(context.spec, "infersuite.engines.env_engine:build", payload,
                            tokenizer=context.tokenizer, python=python,
                            pythonpath=worker_paths(python, path, context.workdir),
                            cpus=threads or None)
    if "transformers" in engine.capabilities:
        # Checks of transformers' own APIs drive the model in this process: they would
        # judge this environment's transformers under the worker's name.
        engine.capabilities = engine.capabilities - {"transformers"}
        engine.limitations["transformers"] = (
            "the worker's transformers model lives in another process; checks that drive "
            "the model directly would run this process's transformers instead")
    return engine


def build(payload: dict[str, Any]) -> Any:
    """In the worker: load the case's model and build the named engine on it."""
    import torch

    from infersuite.engines.base import load_factory
    from infersuite.models.loader import load_model

    if payload["cpu_threads"]:  # --infer-cpu-threads, as the parent runs its perf tests
        torch.set_num_threads(payload["cpu_threads"])
    dtype = getattr(torch, payload["dtype"])
    loaded = load_model(payload["model"], dtype, payload["device"], payload["allow_pickle"])
    spec = parse_engine_spec(payload["spec"])
    context = EngineContext(
        spec=spec, model=loaded.model, tokenizer=loaded.tokenizer,
        model_name=payload["model"], dtype=payload["dtype"], device=payload["device"],
        workdir=Path(payload["workdir"]),
        reference_fp32=lambda: load_model(payload["model"], torch.float32, "cpu",
                                          payload["allow_pickle"]).model)
    return load_factory(spec.name)(context)
