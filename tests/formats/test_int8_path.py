"""The int8 kernel-path description and the saturation bound behind reduce_range."""

from __future__ import annotations

import pytest

from infersuite.baseline.fingerprint import read_cpu_isa_flags
from infersuite.formats.int8_path import INT16_MAX, describe_int8_gemm_path, max_u8s8_pair_sum

ZEN4 = "flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni avx512_bf16 sha_ni\n"
SKYLAKE = "flags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
SAPPHIRE_RAPIDS = "flags : avx2 avx512f avx512bw avx512_vnni amx_tile amx_int8 amx_bf16\n"


def test_flags_are_read_from_cpuinfo():
    assert read_cpu_isa_flags(ZEN4) == ["avx2", "avx512f", "avx512bw", "avx512_vnni",
                                        "avx512_bf16"]
    assert read_cpu_isa_flags("processor : 0\n") == []


@pytest.mark.parametrize(("cpuinfo", "weights", "reduce_range", "expected"), [
    (SKYLAKE, "int8", False, "u8s8 on AVX-512BW without VNNI: pairs summed in int16 with "
                             "saturation, CPU-dependent"),
    (SKYLAKE, "int8", True, "u8s8 on AVX-512BW without VNNI: 7-bit weights keep pair sums "
                            "within int16, exact"),
    (SKYLAKE, "uint8", False, "u8u8 on AVX-512BW without VNNI: 16-bit operands into int32, "
                              "exact"),
    (ZEN4, "int8", False, "u8s8 on AVX-512 VNNI: products summed into int32, exact"),
    (SAPPHIRE_RAPIDS, "uint8", False, "u8u8 on AMX-INT8 tiles: 16-bit operands into int32, "
                                      "exact"),
])
def test_kernel_path_names_the_unit_and_exactness(cpuinfo, weights, reduce_range, expected):
    flags = read_cpu_isa_flags(cpuinfo)
    assert describe_int8_gemm_path(flags, weights, reduce_range) == expected


def test_seven_bit_weights_cannot_saturate_and_eight_bit_can():
    assert max_u8s8_pair_sum(64) <= INT16_MAX < max_u8s8_pair_sum(127)
