"""Samples as JSON and back: the format of the host agent's ``/v1/telemetry``.

A sample is an object whose keys are the :class:`HostSample` fields; absent metrics are
``null`` (or left out). ``gpu_state`` is ``"ok"``, ``"no_gpu"``, ``"error"`` or
``"unknown"``. Readers ignore keys they do not know, so newer agents can add fields.
:func:`sample_from_json` raises ValueError with a reason for anything malformed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.core.telemetry.types import GpuProcess, GpuSample, GpuState, HostSample, ProcessSample

_STATE_NAMES = {state: state.name.lower() for state in GpuState}
_STATES_BY_NAME = {name: state for state, name in _STATE_NAMES.items()}


def state_name(state: GpuState) -> str:
    """``"ok"``, ``"no_gpu"``, ``"error"`` or ``"unknown"``."""
    return _STATE_NAMES[state]


def state_from_name(name: str) -> GpuState:
    try:
        return _STATES_BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown gpu_state {name!r}") from None


def _gpu_process_json(p: GpuProcess) -> dict[str, Any]:
    return {"pid": p.pid, "name": p.name, "used_memory": p.used_memory}


def _gpu_json(g: GpuSample) -> dict[str, Any]:
    return {
        "index": g.index,
        "name": g.name,
        "uuid": g.uuid,
        "utilization_pct": g.utilization_pct,
        "memory_utilization_pct": g.memory_utilization_pct,
        "memory_used": g.memory_used,
        "memory_total": g.memory_total,
        "temperature_c": g.temperature_c,
        "power_w": g.power_w,
        "power_limit_w": g.power_limit_w,
        "sm_clock_mhz": g.sm_clock_mhz,
        "memory_clock_mhz": g.memory_clock_mhz,
        "fan_pct": g.fan_pct,
        "processes": [_gpu_process_json(p) for p in g.processes],
        "error": g.error,
    }


def _process_json(p: ProcessSample) -> dict[str, Any]:
    return {
        "pid": p.pid,
        "name": p.name,
        "kind": p.kind,
        "cpu_pct": p.cpu_pct,
        "rss": p.rss,
        "vram": p.vram,
    }


def sample_to_json(sample: HostSample) -> dict[str, Any]:
    """A JSON-ready dict for a sample."""
    return {
        "t": sample.t,
        "cpu_pct": sample.cpu_pct,
        "cpu_per_core": list(sample.cpu_per_core),
        "ram_used": sample.ram_used,
        "ram_total": sample.ram_total,
        "swap_used": sample.swap_used,
        "swap_total": sample.swap_total,
        "gpu_state": state_name(sample.gpu_state),
        "gpu_reason": sample.gpu_reason,
        "gpus": [_gpu_json(g) for g in sample.gpus],
        "model_processes": [_process_json(p) for p in sample.model_processes],
        "cost_ms": sample.cost_ms,
    }


# -- reading ----------------------------------------------------------------------------
def _obj(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} is not an object")
    return value


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where}.{key} is not a list")
    return value


def _float(data: Mapping[str, Any], key: str, where: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}.{key} is not a number")
    return float(value)


def _int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}.{key} is not a whole number")
    return value


def _required_int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = _int(data, key, where)
    if value is None:
        raise ValueError(f"{where}.{key} is missing")
    return value


def _str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{where}.{key} is not text")
    return value


def _gpu_from_json(raw: object, where: str) -> GpuSample:
    d = _obj(raw, where)
    processes = []
    for i, p in enumerate(_list(d, "processes", where)):
        pw = f"{where}.processes[{i}]"
        pd = _obj(p, pw)
        processes.append(
            GpuProcess(
                _required_int(pd, "pid", pw), _str(pd, "name", pw), _int(pd, "used_memory", pw)
            )
        )
    return GpuSample(
        index=_required_int(d, "index", where),
        name=_str(d, "name", where),
        uuid=_str(d, "uuid", where),
        utilization_pct=_float(d, "utilization_pct", where),
        memory_utilization_pct=_float(d, "memory_utilization_pct", where),
        memory_used=_int(d, "memory_used", where),
        memory_total=_int(d, "memory_total", where),
        temperature_c=_float(d, "temperature_c", where),
        power_w=_float(d, "power_w", where),
        power_limit_w=_float(d, "power_limit_w", where),
        sm_clock_mhz=_float(d, "sm_clock_mhz", where),
        memory_clock_mhz=_float(d, "memory_clock_mhz", where),
        fan_pct=_float(d, "fan_pct", where),
        processes=tuple(processes),
        error=_str(d, "error", where),
    )


def _process_from_json(raw: object, where: str) -> ProcessSample:
    d = _obj(raw, where)
    return ProcessSample(
        pid=_required_int(d, "pid", where),
        name=_str(d, "name", where),
        cpu_pct=_float(d, "cpu_pct", where),
        rss=_int(d, "rss", where),
        vram=_int(d, "vram", where),
        kind=_str(d, "kind", where),
    )


def sample_from_json(raw: object, where: str = "snapshot") -> HostSample:
    """A sample from parsed JSON; raises ValueError saying what is wrong."""
    d = _obj(raw, where)
    t = _float(d, "t", where)
    if t is None:
        raise ValueError(f"{where}.t is missing")
    cores = []
    for i, v in enumerate(_list(d, "cpu_per_core", where)):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"{where}.cpu_per_core[{i}] is not a number")
        cores.append(float(v))
    return HostSample(
        t=t,
        cpu_pct=_float(d, "cpu_pct", where),
        cpu_per_core=tuple(cores),
        ram_used=_int(d, "ram_used", where),
        ram_total=_int(d, "ram_total", where),
        swap_used=_int(d, "swap_used", where),
        swap_total=_int(d, "swap_total", where),
        gpus=tuple(
            _gpu_from_json(g, f"{where}.gpus[{i}]") for i, g in enumerate(_list(d, "gpus", where))
        ),
        gpu_state=state_from_name(_str(d, "gpu_state", where) or "unknown"),
        gpu_reason=_str(d, "gpu_reason", where),
        model_processes=tuple(
            _process_from_json(p, f"{where}.model_processes[{i}]")
            for i, p in enumerate(_list(d, "model_processes", where))
        ),
        cost_ms=_float(d, "cost_ms", where),
    )


def history_to_json(history: Mapping[str, Iterable[tuple[float, float]]]) -> dict[str, Any]:
    return {metric: [[t, v] for t, v in points] for metric, points in history.items()}


def history_from_json(raw: object, where: str = "history") -> dict[str, list[tuple[float, float]]]:
    """``{metric: [(t, value), ...]}``; raises ValueError for anything malformed."""
    if raw is None:
        return {}
    d = _obj(raw, where)
    out: dict[str, list[tuple[float, float]]] = {}
    for metric, points in d.items():
        if not isinstance(points, list):
            raise ValueError(f"{where}.{metric} is not a list")
        parsed: list[tuple[float, float]] = []
        for point in points:
            if (
                not isinstance(point, list)
                or len(point) != 2
                or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in point)
            ):
                raise ValueError(f"{where}.{metric} holds something that is not [t, value]")
            parsed.append((float(point[0]), float(point[1])))
        out[str(metric)] = parsed
    return out
