"""Which CPU a benchmark ran on, in one line, so that its figures say what they were measured on.

The service's targets depend on the CPU as much as on the code: the int8 model took 2.0 ms per image (batch 8)
on a 2-core VM whose CPU has VNNI (int8 dot products) and 6.05 ms on a 2-core AVX2-only one.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# instruction-set extensions that change ONNX Runtime's and OpenCV's speed, strongest first
ISA = (("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))


def cpu_description(cpuinfo: str | None = None) -> str:
    """E.g. 'AMD EPYC (family 26 model 2), 2 CPUs, AVX-512 VNNI, AVX-VNNI, AVX-512, AVX2' (Linux);
    elsewhere the platform's processor string and the CPU count."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(errors="replace") if path.is_file() else ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:  # the first processor's block is enough
                break
            continue
        fields.setdefault(key.strip(), value.strip())
    count = os.cpu_count() or 1
    if not fields:
        return f"{platform.processor() or platform.machine() or 'unknown CPU'}, {count} CPUs"
    name = fields.get("model name", "unknown CPU")
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']} model {fields.get('model', '?')})"
    flags = set(fields.get("flags", "").split())
    isa = [label for flag, label in ISA if flag in flags]
    if flags and not {"avx512_vnni", "avx_vnni"} & flags:
        isa.append("no VNNI")
    return ", ".join([name, f"{count} CPUs", *isa])
