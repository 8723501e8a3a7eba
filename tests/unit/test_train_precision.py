"""train.precision: ``auto`` picks bf16 only where the hardware computes it natively, a resumed run
keeps the arithmetic it started with, and explicit bf16 on an emulating CPU is warned about once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from zoo.train import precision as prec
from zoo.train.precision import CPUFeatures, cpu_bf16, resolve_for_run, resolve_precision, warn_if_emulated

CPU = torch.device("cpu")
ZEN3 = CPUFeatures(frozenset({"sse4_2", "avx", "avx2", "fma"}), "AVX2")  # AVX2 only
ZEN4 = CPUFeatures(frozenset({"avx2", "avx512f", "avx512_bf16"}), "AVX512")
SAPPHIRE_RAPIDS = CPUFeatures(frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16"}), "AVX512")
SKYLAKE = CPUFeatures(frozenset({"avx2", "avx512f", "avx512bw"}), "AVX512")  # AVX-512 without bf16


@pytest.mark.parametrize(("cpu", "native"), [(ZEN3, False), (SKYLAKE, False), (ZEN4, True), (SAPPHIRE_RAPIDS, True),
                                             (CPUFeatures(frozenset(), "DEFAULT"), False)])
def test_cpu_bf16_is_decided_by_the_flags(cpu: CPUFeatures, native: bool) -> None:
    assert cpu_bf16(cpu)[0] is native


def test_capped_instruction_sets_count_as_emulated() -> None:
    capped_aten = CPUFeatures(ZEN4.flags, "AVX2")  # ATEN_CPU_CAPABILITY=avx2
    native, why = cpu_bf16(capped_aten)
    assert not native and "AVX2 kernels" in why
    capped_onednn = CPUFeatures(ZEN4.flags, "AVX512", "avx2")  # ONEDNN_MAX_CPU_ISA=AVX2
    native, why = cpu_bf16(capped_onednn)
    assert not native and "ONEDNN_MAX_CPU_ISA=avx2" in why
    assert cpu_bf16(CPUFeatures(ZEN4.flags, "AVX512", "AVX512_CORE_BF16"))[0]


def test_auto_resolves_per_device() -> None:
    assert resolve_precision("auto", CPU, ZEN3).name == "fp32"
    assert resolve_precision("auto", CPU, ZEN4).name == "bf16"
    assert "avx512_bf16" in resolve_precision("auto", CPU, ZEN4).reason
    assert resolve_precision("auto", torch.device("cuda"), cuda_bf16=True).autocast_dtype is torch.bfloat16
    assert resolve_precision("auto", torch.device("cuda"), cuda_bf16=False).autocast_dtype is None
    assert resolve_precision("fp32", CPU, ZEN4).name == "fp32"
    explicit = resolve_precision("bf16", CPU, ZEN3)
    assert explicit.name == "bf16" and "emulated" in explicit.reason


def test_the_cpu_flags_are_read_from_proc_cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n")
    monkeypatch.setattr(prec.platform, "system", lambda: "Linux")
    assert prec._cpuinfo_flags(info) == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    monkeypatch.setattr(prec.platform, "system", lambda: "Darwin")
    assert prec._cpuinfo_flags(info) == frozenset()  # elsewhere: no flags, so fp32


def test_explicit_bf16_on_an_emulating_cpu_warns_once(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(prec, "_warned", False)
    bf16 = resolve_precision("bf16", CPU, ZEN3)
    with caplog.at_level(logging.WARNING, logger="zoo.train.precision"):
        assert warn_if_emulated(bf16, CPU, ZEN3)
        assert not warn_if_emulated(bf16, CPU, ZEN3)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "10.4x slower" in warnings[0] and "capped to AVX2" in warnings[0] and "407 tokens/s" in warnings[0]
    monkeypatch.setattr(prec, "_warned", False)
    assert not warn_if_emulated(bf16, CPU, ZEN4)  # native: nothing to say
    assert not warn_if_emulated(resolve_precision("fp32", CPU, ZEN3), CPU, ZEN3)


def test_the_warning_quotes_the_committed_emulation_measurement() -> None:
    """The figures of EMULATION_COST are those of the committed file docs/performance.md cites."""
    repo = Path(__file__).parents[2]
    result = json.loads((repo / "docs" / "results" / "avx2" / "train_step-gpt-emulation.json").read_text())
    assert result["machine"]["runtime_env"]["ATEN_CPU_CAPABILITY"] == "avx2"
    assert result["machine"]["runtime_env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    fp32, bf16 = (result["summary"][v]["tokens_per_s"] for v in ("zoo-fp32", "zoo-bf16"))
    assert f"{bf16:,.0f} tokens/s in bf16 against {fp32:,.0f} in fp32" in prec.EMULATION_COST
    assert f"({fp32 / bf16:.1f}x slower)" in prec.EMULATION_COST
    assert "10.4x slower" in (repo / "docs" / "performance.md").read_text().replace("**", "")


def _run_json(run: Path, record: dict | None) -> None:
    run.mkdir(exist_ok=True)
    (run / "run.json").write_text(json.dumps({"format": 1, **({"precision": record} if record else {})}))


def test_a_resumed_auto_run_keeps_the_arithmetic_it_started_with(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    first = resolve_for_run("auto", CPU, tmp_path / "run", resuming=False, cpu=ZEN4)
    assert first.name == "bf16"
    _run_json(tmp_path / "run", first.record())
    with caplog.at_level(logging.WARNING, logger="zoo.train.precision"):
        moved = resolve_for_run("auto", CPU, tmp_path / "run", resuming=True, cpu=ZEN3)
    assert moved.name == "bf16" and moved.reason == first.reason
    assert "resuming in bf16" in caplog.text and "auto would choose fp32" in caplog.text
    # a run from before the record: auto then meant fp32 on CPU, bf16 on CUDA
    _run_json(tmp_path / "old", None)
    assert resolve_for_run("auto", CPU, tmp_path / "old", resuming=True, cpu=ZEN4).name == "fp32"
    assert resolve_for_run("auto", torch.device("cuda"), tmp_path / "old", resuming=True, cuda_bf16=False).name == "bf16"
    # explicit settings are what they say
    assert resolve_for_run("fp32", CPU, tmp_path / "run", resuming=True, cpu=ZEN4).name == "fp32"


def test_presets_and_recipes_use_auto() -> None:
    from zoo import recipes
    from zoo.compare.presets import PRESETS
    from zoo.typed_config import apply_overrides

    for preset in PRESETS.values():
        overrides = apply_overrides({}, list(preset.settings.train_overrides))
        assert overrides.get("train", {}).get("precision", "auto") == "auto"
    for name in recipes.names():
        assert recipes.load(name).get("train", {}).get("precision", "auto") == "auto", name


def test_zoo_bench_precision_auto_follows_the_cpu(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from zoo.benchmarks.zeroshot import _scoring_precision

    monkeypatch.setattr(CPUFeatures, "detect", classmethod(lambda cls: ZEN3))
    monkeypatch.setattr(prec, "_warned", False)
    assert _scoring_precision("auto", CPU) == "fp32" and _scoring_precision("fp32", CPU) == "fp32"
    with caplog.at_level(logging.WARNING, logger="zoo.train.precision"):
        assert _scoring_precision("bf16", CPU) == "bf16"
    assert "10.4x slower" in caplog.text
    monkeypatch.setattr(CPUFeatures, "detect", classmethod(lambda cls: ZEN4))
    assert _scoring_precision("auto", CPU) == "bf16"
