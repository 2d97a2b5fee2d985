"""The benchmarks name the CPU they ran on: its model and whether it has VNNI (int8 dot products)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.machine import cpu_description  # noqa: E402

ZEN2 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 49
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 avx avx2 fma

processor\t: 1
model name\t: another CPU the first block already described
"""

SAPPHIRE = """processor : 0
model name : Intel(R) Xeon(R) Platinum 8481C
cpu family : 6
model : 143
flags : fpu avx avx2 avx512f avx512_vnni avx_vnni amx_int8
"""


def test_an_avx2_only_cpu_says_it_has_no_vnni():
    assert cpu_description(ZEN2) == f"AMD EPYC 7B12 (family 23 model 49), {os.cpu_count()} CPUs, AVX2, no VNNI"


def test_a_vnni_cpu_lists_its_int8_extensions_strongest_first():
    assert cpu_description(SAPPHIRE) == (f"Intel(R) Xeon(R) Platinum 8481C (family 6 model 143), {os.cpu_count()} CPUs, "
                                         "AVX-512 VNNI, AVX-VNNI, AVX-512, AVX2")


def test_without_cpuinfo_it_still_names_the_cpu_count():
    assert cpu_description("").endswith(f", {os.cpu_count()} CPUs")
