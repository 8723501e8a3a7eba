"""The arithmetic a run trains in: ``train.precision`` = ``auto``, ``fp32`` or ``bf16`` (autocast).

``auto`` picks bf16 where the hardware computes it natively and fp32 elsewhere:

* CUDA: bf16 when the GPU supports it (``torch.cuda.is_bf16_supported()``), else fp32;
* CPU: bf16 when the CPU has ``avx512_bf16`` or ``amx_bf16`` *and* neither ATen
  (``ATEN_CPU_CAPABILITY``) nor oneDNN (``ONEDNN_MAX_CPU_ISA``) is held below the instruction sets
  that use them; fp32 everywhere else (AVX2-only CPUs, non-x86 CPUs, systems without
  ``/proc/cpuinfo``). Without those instructions bf16 autocast is emulated and far slower than fp32.

A run resolves ``auto`` once, at its first start, and records the result in ``run.json``; a resumed
run keeps the recorded arithmetic, whatever machine it continues on (``resolve_for_run``).
"""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from zoo import fileio

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 dot products
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) below the first one with bf16 dot products
_ONEDNN_NO_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")
# What emulated bf16 costs, quoted by the warning: the committed measurement of docs/performance.md,
# "Without native bf16" (docs/results/avx2/train_step-gpt-emulation.json; a test checks the figures).
EMULATION_COST = ("a training step of the cpu-hour recipe's gpt ran at 407 tokens/s in bf16 against 4,239 in fp32 "
                  "(10.4x slower) on a Zen 4 with torch and oneDNN capped to AVX2 (docs/performance.md)")


@dataclass(frozen=True)
class CPUFeatures:
    """What decides native bf16 on a CPU: its flags and the instruction-set caps torch runs under."""

    flags: frozenset[str]
    capability: str  # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...
    onednn_max_isa: str = ""  # ONEDNN_MAX_CPU_ISA, "" when unset

    @classmethod
    def detect(cls) -> CPUFeatures:
        """This machine's (Linux: /proc/cpuinfo flags; elsewhere none, hence fp32)."""
        return cls(_machine_flags(), torch.backends.cpu.get_cpu_capability(),
                   os.environ.get("ONEDNN_MAX_CPU_ISA", ""))


def _cpuinfo_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    if platform.system() != "Linux":
        return frozenset()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):  # x86; every core lists the same
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@cache
def _machine_flags() -> frozenset[str]:
    """This machine's CPU flags, read once per process (a run resolves its precision more than once)."""
    return _cpuinfo_flags()


def cpu_bf16(cpu: CPUFeatures) -> tuple[bool, str]:
    """(native bf16?, why), from the CPU's flags and caps alone (a pure function)."""
    have = [f for f in BF16_FLAGS if f in cpu.flags]
    if not have:
        return False, "the CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag), so bf16 would be emulated"
    if cpu.capability.upper() != "AVX512":
        return False, (f"the CPU has {'/'.join(have)} but torch runs its {cpu.capability} kernels "
                       f"(ATEN_CPU_CAPABILITY), so bf16 would be emulated")
    if cpu.onednn_max_isa.upper() in _ONEDNN_NO_BF16:
        return False, (f"the CPU has {'/'.join(have)} but ONEDNN_MAX_CPU_ISA={cpu.onednn_max_isa} keeps oneDNN "
                       f"from it, so bf16 would be emulated")
    return True, f"the CPU computes bf16 natively ({'/'.join(have)})"


@dataclass(frozen=True)
class Precision:
    """A resolved precision: ``fp32`` or ``bf16``, the setting it came from, and why."""

    name: str  # fp32 | bf16
    setting: str  # auto | fp32 | bf16
    reason: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.name == "bf16" else None

    def record(self) -> dict[str, str]:
        return {"setting": self.setting, "resolved": self.name, "reason": self.reason}


def resolve_precision(setting: str, device: torch.device, cpu: CPUFeatures | None = None,
                      cuda_bf16: bool | None = None) -> Precision:
    """``setting`` on ``device``; ``cpu`` / ``cuda_bf16`` default to this machine's (tests pass fakes)."""
    if setting not in PRECISIONS:
        raise ValueError(f"precision = {setting!r}; expected one of {', '.join(PRECISIONS)}")
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16
        why = "the GPU computes bf16 natively" if native else "the GPU has no native bf16"
    elif device.type == "cpu":
        native, why = cpu_bf16(cpu or CPUFeatures.detect())
    else:
        native, why = False, f"bf16 autocast is not chosen automatically on {device.type}"
    if setting == "fp32":
        return Precision("fp32", setting, "train.precision = fp32")
    if setting == "bf16":
        return Precision("bf16", setting, "train.precision = bf16" + ("" if native else f"; {why}"))
    return Precision("bf16" if native else "fp32", setting, f"auto: {why}")


_warned = False


def warn_if_emulated(p: Precision, device: torch.device, cpu: CPUFeatures | None = None) -> bool:
    """Warn (once per process) that bf16 on this CPU is emulated; True when it warned."""
    global _warned
    if p.name != "bf16" or device.type != "cpu" or _warned:
        return False
    native, why = cpu_bf16(cpu or CPUFeatures.detect())
    if native:
        return False
    _warned = True
    log.warning("bf16 on this CPU is slow: %s; %s. Use --precision auto or fp32 unless you must match a "
                "bf16 run's arithmetic", why, EMULATION_COST)
    return True


def recorded_precision(run_dir: Path) -> dict[str, Any] | None:
    """The ``precision`` record of an existing ``run.json``."""
    info = fileio.read_json(run_dir / "run.json")
    rec = info.get("precision") if isinstance(info, dict) else None
    return rec if isinstance(rec, dict) and rec.get("resolved") in ("fp32", "bf16") else None


def resolve_for_run(setting: str, device: torch.device, run_dir: Path, resuming: bool,
                    cpu: CPUFeatures | None = None, cuda_bf16: bool | None = None) -> Precision:
    """The precision of a run: a resumed ``auto`` run keeps the one its first start recorded (a run
    does not change its arithmetic halfway because it moved to another machine); otherwise resolved here.
    A run that recorded none started when ``auto`` meant bf16 on CUDA and fp32 on CPU, and keeps that."""
    here = resolve_precision(setting, device, cpu, cuda_bf16)
    if not resuming or setting != "auto":
        return here
    recorded = recorded_precision(run_dir)
    if recorded is None:
        legacy = "bf16" if device.type == "cuda" else "fp32"
        recorded = {"resolved": legacy, "reason": f"auto: {legacy} on {device.type} (the rule when the run started)"}
    name, reason = recorded["resolved"], str(recorded.get("reason", "auto"))
    if name != here.name:
        log.warning("resuming in %s, as this run started (%s); auto would choose %s on this machine (%s)",
                    name, reason, here.name, here.reason)
    return Precision(name, setting, reason)
