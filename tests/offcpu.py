"""A tensor that behaves like a CUDA tensor where the difference bites on a CPU-only
host: ``.numpy()`` refuses it until it has been moved with ``.cpu()`` / ``.to("cpu")``,
with the message torch gives for a CUDA tensor."""

from __future__ import annotations

import torch


class OffCpuTensor(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        moves_to_cpu = func is torch.Tensor.cpu or (
            func is torch.Tensor.to and any(str(a) == "cpu" for a in (*args[1:], *kwargs.values())))
        result = super().__torch_function__(func, types, args, kwargs)
        if moves_to_cpu and isinstance(result, torch.Tensor):
            return result.as_subclass(torch.Tensor)
        return result

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() "
                        "to copy the tensor to host memory first.")


def off_cpu(tensor: torch.Tensor) -> OffCpuTensor:
    return tensor.as_subclass(OffCpuTensor)
