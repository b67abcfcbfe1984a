"""Energy measurement: offline (no network at all), quiet, no files, a number even for a stage
shorter than codecarbon's measuring interval, a clear error instead of a crash, and off when off."""

from __future__ import annotations

import json
import socket

import pytest

from tunesmith import energy


@pytest.fixture
def no_network(monkeypatch):
    """Every way out of the machine raises and is recorded."""
    tried = []

    def refuse(*args, **kwargs):
        tried.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return tried


def _busy(seconds: float) -> None:
    import time

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(1000))


def test_measures_offline_without_files_or_network(no_network, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    # 0.5 s: far shorter than codecarbon's 15-second interval; stop() still takes its last sample.
    with energy.measure("train", True, "FRA", None) as used:
        _busy(0.5)
    assert no_network == []
    assert used["kwh"] > 0 and used["kg_co2eq"] > 0 and used["seconds"] >= 0.5
    assert used["country"] == "FRA" and used["stage"] == "train" and "error" not in used
    assert used["tracker"].startswith("codecarbon 3.") and used["tracker"].endswith("OfflineEmissionsTracker")
    assert "CPU:" in used["power_method"] and used["grid_g_co2eq_per_kwh"] > 0
    assert list(tmp_path.iterdir()) == []  # no emissions.csv, no lock file
    assert "codecarbon" not in capfd.readouterr().err  # its INFO/WARNING lines stay quiet


def test_the_country_sets_the_grid_intensity():
    with energy.measure("a", True, "FRA") as fra:
        _busy(0.2)
    with energy.measure("b", True, "POL") as pol:
        _busy(0.2)
    # France's grid (nuclear) is far cleaner than Poland's (coal) in codecarbon's shipped table.
    assert fra["grid_g_co2eq_per_kwh"] * 3 < pol["grid_g_co2eq_per_kwh"]


def test_disabled_measures_nothing_and_records_nothing(tmp_path):
    with energy.measure("train", False) as used:
        pass
    assert used == {}
    (tmp_path / "manifest.json").write_text(json.dumps({"status": "completed"}))
    energy.record(tmp_path, "train", used)
    assert "energy" not in json.loads((tmp_path / "manifest.json").read_text())


def test_a_failing_codecarbon_gives_an_error_not_a_crash(monkeypatch):
    import codecarbon

    class Broken:
        def __init__(self, **kwargs):
            raise RuntimeError("no hardware probe today")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", Broken)
    ran = []
    with energy.measure("eval", True) as used:
        ran.append(1)
    assert ran == [1]
    assert used["error"] == "codecarbon could not start: RuntimeError: no hardware probe today"
    assert energy.summary(used).startswith("not measured (codecarbon could not start")

    class Silent:  # codecarbon's own decorators swallow errors and return None
        def __init__(self, **kwargs):
            pass

        def start(self):
            pass

        def stop(self):
            return None

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", Silent)
    with energy.measure("eval", True) as used:
        pass
    assert used["error"] == "codecarbon returned no measurement (see its log for why)"


def test_the_work_s_own_exception_still_stops_the_tracker_and_propagates():
    with pytest.raises(ValueError, match="training broke"):
        with energy.measure("train", True) as used:
            raise ValueError("training broke")
    assert used["kwh"] > 0  # measured up to the failure; no tracker thread left running


def test_record_adds_a_stage_beside_the_others(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"status": "completed", "energy": {"train": {"kwh": 1.0}}}))
    energy.record(tmp_path, "eval", {"kwh": 0.5, "kg_co2eq": 0.2})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["energy"] == {"train": {"kwh": 1.0}, "eval": {"kwh": 0.5, "kg_co2eq": 0.2}}
    assert manifest["status"] == "completed"


def test_summary_line():
    assert energy.summary({"kwh": 0.00123, "kg_co2eq": 0.000456, "seconds": 12.34, "country": "USA",
                           "region": "california"}) == "0.00123 kWh, 0.000456 kg CO2eq (12.3 s, USA/california)"
