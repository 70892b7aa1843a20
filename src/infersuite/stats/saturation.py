"""Saturation models fitted to a throughput sweep: Amdahl and the Universal Scalability Law.

Amdahl:  X(b) = Xmax * b / (b + K)                      -- throughput approaches Xmax
USL:     X(b) = lam * b / (1 + sigma (b - 1) + kappa b (b - 1))  -- may peak, then fall

Fits use relative residuals (``curve_fit(sigma=X)``) because sweep noise is multiplicative.
With latency = b / X (Little's law), Kleinrock's power X / latency = X**2 / b peaks at b = K
for Amdahl; for the USL the throughput peak is b* = sqrt((1 - sigma) / kappa) and the power
optimum is the positive root of 3 kappa b**2 + (sigma - kappa) b - (1 - sigma) = 0.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from infersuite.stats.sweep import SweepPoint, ok_points

MODELS = ("auto", "amdahl", "usl")
# Mean squared relative residual below (1e-6)**2 counts as an exact fit, so a noiseless
# Amdahl curve (which the USL with kappa=0 also fits exactly) picks the simpler model.
_EXACT_MSE = 1e-12
_MIN_POINTS = {"amdahl": 3, "usl": 4}


def amdahl_throughput(batch: np.ndarray, x_max: float, k: float) -> np.ndarray:
    return x_max * batch / (batch + k)


def usl_throughput(batch: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    return lam * batch / (1.0 + sigma * (batch - 1.0) + kappa * batch * (batch - 1.0))


def fit_saturation(points: Iterable[SweepPoint], model: str = "auto") -> dict[str, object]:
    """Fit Amdahl and/or USL to the ok points; "auto" keeps the lower AICc.

    Returns a JSON-ready dict: status ("ok" | "failed" | "too few points"), reason, model,
    params, stderr, r2, aicc, optimum_batch (+ optimum_kind), power_optimum_batch and the
    per-model ``candidates``. Never raises on a failed fit.
    """
    if model not in MODELS:
        raise ValueError(f"model={model!r}: expected one of {', '.join(MODELS)}")
    usable = [p for p in ok_points(points) if p.throughput is not None and p.throughput > 0]
    batch = np.array([p.batch_size for p in usable], dtype=float)
    thr = np.array([p.throughput for p in usable], dtype=float)
    if batch.size < 3:
        return _empty(
            "too few points",
            f"{batch.size} ok points with throughput > 0; "
            "need >= 3 to fit a saturation model; sweep more batch sizes",
        )
    names = ("amdahl", "usl") if model == "auto" else (model,)
    candidates = {name: _fit_one(name, batch, thr) for name in names}
    fitted = {n: c for n, c in candidates.items() if c["status"] == "ok"}
    if not fitted:
        reasons = "; ".join(f"{n}: {c['reason']}" for n, c in candidates.items())
        status = (
            "too few points"
            if all(c["status"] == "too few points" for c in candidates.values())
            else "failed"
        )
        return {**_empty(status, reasons), "candidates": candidates}
    best = min(fitted, key=lambda n: _aicc_key(fitted[n]))
    return {**fitted[best], "model": best, "candidates": candidates}


def _fit_one(name: str, batch: np.ndarray, thr: np.ndarray) -> dict[str, object]:
    if batch.size < _MIN_POINTS[name]:
        return _empty(
            "too few points", f"{name} needs >= {_MIN_POINTS[name]} points, got {batch.size}"
        )
    func, p0, bounds, labels = _model_setup(name, batch, thr)
    with warnings.catch_warnings():
        # Covariance may be unestimable on exact fits; stderr then reports None.
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            popt, pcov = curve_fit(
                func, batch, thr, p0=p0, sigma=thr, bounds=bounds, max_nfev=20000
            )
        except (RuntimeError, ValueError) as exc:
            return _empty("failed", f"curve_fit did not converge: {exc}")
    params = {label: float(v) for label, v in zip(labels, popt, strict=True)}
    stderr = {
        label: _finite_or_none(math.sqrt(v)) if v >= 0 else None
        for label, v in zip(labels, np.diag(pcov), strict=True)
    }
    pred = func(batch, *popt)
    return {
        "status": "ok",
        "reason": "",
        "model": name,
        "params": params,
        "stderr": stderr,
        "r2": _r2(thr, pred),
        "aicc": _aicc(thr, pred, len(labels)),
        **_optimum(name, params),
    }


def _model_setup(
    name: str, batch: np.ndarray, thr: np.ndarray
) -> tuple[Callable[..., np.ndarray], list[float], tuple[list[float], list[float]], list[str]]:
    if name == "amdahl":
        p0 = [float(thr.max()) * 1.2, float(np.median(batch))]
        return amdahl_throughput, p0, ([0.0, 0.0], [np.inf, np.inf]), ["x_max", "K"]
    lam0 = float(thr[0] / batch[0])
    bounds = ([0.0, 0.0, 0.0], [np.inf, 1.0, np.inf])
    return usl_throughput, [lam0, 0.1, 1e-4], bounds, ["lambda", "sigma", "kappa"]


def _optimum(name: str, params: dict[str, float]) -> dict[str, object]:
    if name == "amdahl":
        k = params["K"]
        return {"optimum_batch": k, "optimum_kind": "power optimum b = K", "power_optimum_batch": k}
    sigma, kappa = params["sigma"], params["kappa"]
    peak = math.sqrt((1.0 - sigma) / kappa) if kappa > 0.0 else None
    if kappa > 0.0:
        disc = (sigma - kappa) ** 2 + 12.0 * kappa * (1.0 - sigma)
        power = (-(sigma - kappa) + math.sqrt(disc)) / (6.0 * kappa)
    elif sigma > 0.0:
        power = (1.0 - sigma) / sigma
    else:
        power = None
    kind = (
        "throughput peak b* = sqrt((1 - sigma) / kappa)"
        if peak is not None
        else "no throughput peak (kappa = 0)"
    )
    return {"optimum_batch": peak, "optimum_kind": kind, "power_optimum_batch": power}


def _r2(observed: np.ndarray, predicted: np.ndarray) -> float | None:
    total = float(np.sum((observed - observed.mean()) ** 2))
    if total == 0.0:
        return None  # constant throughput: R^2 is undefined
    return 1.0 - float(np.sum((observed - predicted) ** 2)) / total


def _aicc(observed: np.ndarray, predicted: np.ndarray, n_params: int) -> float | None:
    n = observed.size
    if n - n_params - 1 <= 0:
        return None
    mse = max(float(np.mean(((observed - predicted) / observed) ** 2)), _EXACT_MSE)
    return n * math.log(mse) + 2 * n_params + 2 * n_params * (n_params + 1) / (n - n_params - 1)


def _aicc_key(candidate: dict[str, object]) -> tuple[float, int]:
    aicc = candidate["aicc"]
    score = float(aicc) if isinstance(aicc, float) else math.inf
    return score, len(candidate["params"])  # type: ignore[arg-type]


def _empty(status: str, reason: str) -> dict[str, object]:
    return {
        "status": status,
        "reason": reason,
        "model": None,
        "params": {},
        "stderr": {},
        "r2": None,
        "aicc": None,
        "optimum_batch": None,
        "optimum_kind": "",
        "power_optimum_batch": None,
    }


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
