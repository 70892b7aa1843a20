"""Run exported ONNX graphs with onnxruntime: prefill logits, decode steps, greedy loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch


def providers_for(device: str) -> list[str]:
    """ORT execution providers for a suite device; raises LookupError naming what is missing."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = "CUDAExecutionProvider" if device.startswith("cuda") else "CPUExecutionProvider"
    if wanted not in available:
        raise LookupError(f"onnxruntime {ort.__version__} has no {wanted} (available: "
                          f"{', '.join(available)}); install onnxruntime-gpu for CUDA")
    return [wanted, "CPUExecutionProvider"] if wanted != "CPUExecutionProvider" else [wanted]


def open_session(path: Path, device: str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Two shared CPU cores here; more threads only add contention.
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=providers_for(device))


def run_prefill(session: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor
                ) -> torch.Tensor:
    """Logits [B, T, V] (float32, on the CPU) from a prefill graph."""
    import torch

    feed = {"input_ids": input_ids.cpu().numpy(), "attention_mask": attention_mask.cpu().numpy()}
    return torch.from_numpy(session.run(["logits"], feed)[0])


class OrtDecoder:
    """A decode graph plus its flat KV cache, stepped like hf.decode_step."""

    def __init__(self, session: Any, kv_heads: int, head_dim: int) -> None:
        self.session = session
        self.past_names = [i.name for i in session.get_inputs()][2:]
        self.kv_heads, self.head_dim = kv_heads, head_dim

    def empty_past(self, batch: int) -> list[np.ndarray]:
        import numpy as np

        shape = (batch, self.kv_heads, 0, self.head_dim)
        return [np.zeros(shape, np.float32) for _ in self.past_names]

    def step(self, input_ids: np.ndarray, attention_mask: np.ndarray,
             past: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Feed new tokens on top of `past`; returns (logits [B, new, V], present)."""
        feed = {"input_ids": input_ids, "attention_mask": attention_mask,
                **dict(zip(self.past_names, past, strict=True))}
        logits, *present = self.session.run(None, feed)
        return logits, present

    def greedy(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_new: int,
               banned: Sequence[int] = (), on_token: Callable[[], None] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed-length greedy decoding (banned ids, e.g. EOS, never chosen), as
        hf.generate_greedy; `on_token()` after each step's token is chosen. Returns
        (tokens [B, n_new], step logits [B, n_new, V])."""
        import numpy as np
        import torch

        ids = input_ids.cpu().numpy()
        mask = attention_mask.cpu().numpy()
        past = self.empty_past(ids.shape[0])
        tokens, step_logits = [], []
        for _ in range(n_new):
            logits, past = self.step(ids, mask, past)
            last = logits[:, -1, :]
            choice = last.copy()
            choice[:, list(banned)] = -np.inf
            ids = choice.argmax(-1)[:, None].astype(np.int64)
            if on_token is not None:
                on_token()
            tokens.append(ids[:, 0])
            step_logits.append(last)
            mask = np.concatenate([mask, np.ones_like(mask[:, :1])], axis=1)
        return (torch.from_numpy(np.stack(tokens, 1)),
                torch.from_numpy(np.stack(step_logits, 1)))
