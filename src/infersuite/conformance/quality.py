"""Quality of an approximate model vs its reference: KL divergence, SQNR, top-1 agreement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def _flatten_positions(logits: torch.Tensor) -> torch.Tensor:
    """[..., V] -> [N, V] in float64; each row is one position."""
    import torch

    return logits.detach().cpu().to(torch.float64).reshape(-1, logits.shape[-1])


def _check_shapes(ref: torch.Tensor, test: torch.Tensor) -> None:
    if ref.shape != test.shape:
        raise ValueError(f"reference shape {tuple(ref.shape)} != test shape {tuple(test.shape)}")
    if ref.numel() == 0:
        raise ValueError("no positions to compare (empty logits)")


def compute_kl_divergence(ref_logits: torch.Tensor, test_logits: torch.Tensor) -> float:
    """Mean over positions of KL(p_ref || p_test) in nats; logits are [..., vocab]."""
    import torch

    _check_shapes(ref_logits, test_logits)
    log_p = torch.log_softmax(_flatten_positions(ref_logits), dim=-1)
    log_q = torch.log_softmax(_flatten_positions(test_logits), dim=-1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(-1)
    return float(per_position.mean())


def compute_sqnr_db(ref: torch.Tensor, test: torch.Tensor) -> float:
    """10·log10(‖ref‖² / ‖ref − test‖²); +inf when identical."""
    import math

    _check_shapes(ref, test)
    r = _flatten_positions(ref)
    noise = float(((r - _flatten_positions(test)) ** 2).sum())
    signal = float((r**2).sum())
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def compute_top1_agreement(ref_logits: torch.Tensor, test_logits: torch.Tensor) -> float:
    """Fraction of positions whose argmax token is the same."""
    _check_shapes(ref_logits, test_logits)
    same = _flatten_positions(ref_logits).argmax(-1) == _flatten_positions(test_logits).argmax(-1)
    return float(same.double().mean())


@dataclass(frozen=True)
class QualityFigures:
    kl_divergence: float  # mean KL(p_ref || p_test), nats
    sqnr_db: float
    top1_agreement: float  # in [0, 1]
    n_positions: int

    def describe(self) -> str:
        return (f"KL {self.kl_divergence:.3e} nats, SQNR {self.sqnr_db:.1f} dB, "
                f"top-1 agreement {self.top1_agreement:.2%} over {self.n_positions} positions")


def compute_quality(ref_logits: torch.Tensor, test_logits: torch.Tensor) -> QualityFigures:
    """All three figures; pass only valid (non-padded) positions, e.g. logits[mask.bool()]."""
    _check_shapes(ref_logits, test_logits)
    return QualityFigures(
        kl_divergence=compute_kl_divergence(ref_logits, test_logits),
        sqnr_db=compute_sqnr_db(ref_logits, test_logits),
        top1_agreement=compute_top1_agreement(ref_logits, test_logits),
        n_positions=ref_logits.numel() // ref_logits.shape[-1],
    )
