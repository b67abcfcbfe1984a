"""Energy and carbon of a stage (training, evaluation, audit), measured by codecarbon offline.

codecarbon's OfflineEmissionsTracker never touches the network: the country (ISO alpha-3) and
optional region pick the grid's carbon intensity from tables shipped inside the package. How it
measures power depends on the machine (RAPL energy counters on Linux when readable, NVML on NVIDIA
GPUs, else the CPU's TDP from its table, or a generic constant, scaled by CPU load; RAM from its
size); each result says which it used, so a TDP estimate is never mistaken for a measurement.

Nothing here writes files: codecarbon's CSV output is switched off, and the result goes into the
run's manifest through record(). A failure of codecarbon is reported in the result
({"error": ...}) and never stops a training run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tunesmith import runs

DEFAULTS = {"enabled": True, "country": "USA", "region": None}


def settings(cfg_energy) -> dict:
    """The config's energy section as the plain dict that measure() and eval take. Launched as
    several processes, only the main one measures: it alone records, in codecarbon's machine mode."""
    return {"enabled": cfg_energy.enabled and runs.is_main_process(), "country": cfg_energy.country,
            "region": cfg_energy.region}


@contextmanager
def measure(stage: str, enabled: bool = True, country: str = "USA", region: str | None = None) -> Iterator[dict]:
    """Measure the energy of the `with` block; the yielded dict holds, after the block, kwh,
    kg_co2eq, seconds, country, region, the tracker's name and how power was measured (or
    {"error": ...}). Disabled, it yields an empty dict and measures nothing."""
    result: dict = {}
    if not enabled:
        yield result
        return
    tracker = None
    try:
        tracker = _start_tracker(stage, country, region)
    except Exception as e:  # noqa: BLE001 - a broken tracker must not stop the work it measures
        result["error"] = f"codecarbon could not start: {type(e).__name__}: {e}"
    start = time.perf_counter()  # after codecarbon's import and hardware probe: the block's own time
    try:
        yield result
    finally:
        if tracker is not None:
            result.update(_stop_tracker(tracker, time.perf_counter() - start, country, region))
        result.setdefault("seconds", round(time.perf_counter() - start, 3))
        result["stage"] = stage


def _start_tracker(stage: str, country: str, region: str | None):
    from codecarbon import OfflineEmissionsTracker

    # codecarbon logs at INFO to its own handler (and warns once per tracker before its log_level
    # applies): a training log is no place for it.
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    tracker = OfflineEmissionsTracker(
        country_iso_code=country, region=region.lower() if region else None, project_name=f"tunesmith-{stage}",
        output_methods=[],  # no emissions.csv in the working directory, no API
        log_level="error",
        # 'process' attributes the CPU share of this process (and its children) rather than every
        # program on the machine; launched as several processes the main one alone records, so it
        # counts the whole machine instead.
        tracking_mode="process" if runs.world_size() == 1 else "machine",
        allow_multiple_runs=True,  # no lock file: training and its evaluation may overlap in a sweep
    )
    tracker.start()
    return tracker


def _stop_tracker(tracker, seconds: float, country: str, region: str | None) -> dict:
    """The tracker's totals. stop() takes a last sample itself, so a stage shorter than
    codecarbon's 15-second measuring interval still gets a number."""
    try:
        kg = tracker.stop()
        data = getattr(tracker, "final_emissions_data", None)
        if kg is None or data is None:  # codecarbon's decorators swallow errors and return None
            return {"error": "codecarbon returned no measurement (see its log for why)"}
        from codecarbon import __version__

        out = {"kwh": data.energy_consumed, "kg_co2eq": kg, "seconds": round(seconds, 3),
               "country": country, "region": region,
               "grid_g_co2eq_per_kwh": round(1000 * kg / data.energy_consumed, 1) if data.energy_consumed else None,
               "tracker": f"codecarbon {__version__} OfflineEmissionsTracker",
               "tracking_mode": data.tracking_mode, "cpu_energy_kwh": data.cpu_energy,
               "gpu_energy_kwh": data.gpu_energy, "ram_energy_kwh": data.ram_energy,
               "cpu_power_w": round(data.cpu_power, 2), "gpu_power_w": round(data.gpu_power, 2),
               "ram_power_w": round(data.ram_power, 2), "hardware": f"{data.cpu_model}, {data.gpu_count} GPU"
               + (f" ({data.gpu_model})" if data.gpu_model else ""), "power_method": _power_method(tracker)}
        if not data.country_name:  # codecarbon fell back on its world average
            out["note"] = f"country {country!r} is not in codecarbon's table: the world-average grid intensity was used"
        return out
    except Exception as e:  # noqa: BLE001 - reported, never raised: the measured work already happened
        return {"error": f"codecarbon failed: {type(e).__name__}: {e}"}


# codecarbon's CPU modes, in words.
_MODES = {"intel_rapl": "RAPL energy counters (measured)", "windows_emi": "Windows Energy Meter (measured)",
          "intel_power_gadget": "Intel Power Gadget (measured)", "apple_powermetrics": "powermetrics (measured)",
          "cpu_load": "TDP x CPU load (estimated)", "constant": "TDP constant (estimated)"}


def _power_method(tracker) -> str:
    """How codecarbon got each component's power, from its hardware objects (private attributes,
    read defensively: a codecarbon that renames them gets 'unknown', not a crash)."""
    parts = []
    for hw in getattr(tracker, "_hardware", []):
        kind = type(hw).__name__
        if kind == "CPU":
            mode = getattr(hw, "_mode", "?")
            text = _MODES.get(mode, str(mode))
            tdp = getattr(hw, "_tdp", None)
            if mode in ("cpu_load", "constant") and tdp:
                generic = getattr(hw, "_is_generic_tdp", False)
                text += f", TDP {tdp} W" + (" (generic constant: CPU not in codecarbon's table)" if generic else "")
            parts.append(f"CPU: {text}")
        elif kind == "RAM":
            parts.append("RAM: estimated from its size")
        elif kind == "GPU":
            parts.append("GPU: NVML / AMD SMI energy readings (measured)")
        else:  # AppleSiliconChip (powermetrics), Raspberry (a model of the board)
            parts.append(kind)
    return "; ".join(parts) or "unknown"


def record(run_dir: str | Path, stage: str, result: dict) -> None:
    """Write `result` as manifest["energy"][stage] of a run (nothing when it is empty: energy off)."""
    if not result:
        return
    run_dir = Path(run_dir)
    manifest = runs.read_manifest(run_dir)
    if manifest is None:
        return
    manifest.setdefault("energy", {})[stage] = result
    runs.write_json(run_dir / runs.MANIFEST_FILE, manifest)


def summary(result: dict) -> str:
    """One line: '0.0012 kWh, 0.00045 kg CO2eq (12.3 s, USA)' or the error."""
    if result.get("error"):
        return f"not measured ({result['error']})"
    where = result.get("country") or ""
    if result.get("region"):
        where += f"/{result['region']}"
    return (f"{result.get('kwh', 0):.3g} kWh, {result.get('kg_co2eq', 0):.3g} kg CO2eq "
            f"({result.get('seconds', 0):.1f} s, {where})")
