"""Which int8 GEMM path onnxruntime's x86-64 CPU provider takes, and whether it can saturate.

onnxruntime documents that its u8s8 kernels (uint8 activations x int8 weights) use
VPMADDUBSW on AVX2 and AVX-512 CPUs without VNNI: two u8 x s8 products are summed into
a signed 16-bit lane and clamped there, so a result can depend on the CPU. With VNNI
(VPDPBUSD) or AMX the sums go straight to int32 and are exact. u8u8 kernels widen both
operands to 16 bits and multiply-add into int32 (VPMADDWD and its VNNI/AMX forms), exact
on every path; so is u8s8 with 7-bit weights (`reduce_range`), whose pair sums stay
within int16. An exact path gives the same integers on every x86-64 CPU.
"""

from __future__ import annotations

from collections.abc import Collection

INT16_MAX = 2**15 - 1


def describe_int8_gemm_path(isa_flags: Collection[str], weight_type: str,
                            reduce_range: bool = False) -> str:
    """One line naming the kernel family for uint8 activations x `weight_type` weights
    ("int8" or "uint8") on a CPU with `isa_flags`, and whether it is exact."""
    flags = set(isa_flags)
    if "amx_int8" in flags:
        unit = "AMX-INT8 tiles"
    elif "avx512_vnni" in flags:
        unit = "AVX-512 VNNI"
    elif "avx_vnni" in flags:
        unit = "AVX-VNNI"
    elif "avx512bw" in flags:
        unit = "AVX-512BW without VNNI"
    elif "avx2" in flags:
        unit = "AVX2 without VNNI"
    else:
        return f"u8{weight_type[0]}8: no AVX2 on this CPU (portable kernels)"
    if weight_type == "uint8":
        return f"u8u8 on {unit}: 16-bit operands into int32, exact"
    has_int32_dot = bool(flags & {"amx_int8", "avx512_vnni", "avx_vnni"})
    if has_int32_dot:
        return f"u8s8 on {unit}: products summed into int32, exact"
    if reduce_range:
        return f"u8s8 on {unit}: 7-bit weights keep pair sums within int16, exact"
    return f"u8s8 on {unit}: pairs summed in int16 with saturation, CPU-dependent"


def max_u8s8_pair_sum(max_abs_weight: int) -> int:
    """The largest |u8 x s8 + u8 x s8| a VPMADDUBSW lane can meet with these weights."""
    return 2 * 255 * max_abs_weight
