"""``expwatch gpus`` and ``expwatch devices``."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import pytest

from app.cli import main
from app.commands import gpus as gpus_command
from runtime.devices.demo import DEMO_WORKCELL
from runtime.gpu.simulated import SimulatedGpuSource
from runtime.liveness import identity_of
from state.native import ExperimentDoc, ProcessInfo
from state.store import StateStore

from .test_telemetry_gpu import _has_real_nvml


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    monkeypatch.delenv("EXPWATCH_SIMULATE_GPUS", raising=False)
    monkeypatch.setenv("EXPWATCH_STATE_DIR", str(tmp_path / "state"))


def test_gpus_simulated_json(capsys):
    assert main(["gpus", "--simulate", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["simulated"] is True and data["status"] == "ok"
    assert [g["index"] for g in data["gpus"]] == [0, 1]
    assert data["gpus"][0]["memory_total_bytes"] > 0 and data["gpus"][0]["energy_mj"] > 0
    datetime.fromisoformat(data["taken_at"])


def test_gpus_simulated_table(capsys):
    assert main(["gpus", "--simulate", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("GPUs (simulated): ok")
    assert len([line for line in out.splitlines() if line.strip().startswith(("0 ", "1 ", "2 "))]) == 3


@pytest.mark.skipif(_has_real_nvml(), reason="this check is for machines without an NVIDIA driver")
def test_gpus_without_nvml_prints_the_status_and_exits_0(capsys):
    assert main(["gpus"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("GPUs: no NVML library") or out.startswith("GPUs: no driver")
    assert main(["gpus", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gpus"] == [] and data["status"] in ("no NVML library", "no driver")


def test_gpus_names_the_experiment_using_a_gpu(tmp_path, monkeypatch, capsys):
    state = tmp_path / "state"
    state.mkdir()
    me = identity_of(role="worker", process_index=0)
    doc = ExperimentDoc(
        experiment_id="llama-sweep",
        status="running",
        processes={"0": ProcessInfo(process_index=0, status="running", owner=me, current_step="decode")},
        last_updated=datetime.now(timezone.utc),
    )
    StateStore(state).create(doc)
    source = SimulatedGpuSource(count=2, seed=3)
    source.assign(os.getpid(), 1, memory_bytes=6 * 2**30)
    monkeypatch.setattr("runtime.gpu.factory.make_gpu_source", lambda simulate=None: source)
    assert main(["gpus", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert f"1    {os.getpid():<8} compute   6.0      llama-sweep #0 [decode]" in out
    assert main(["gpus", "--json", "--state-dir", str(state)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["attributions"][str(os.getpid())]["experiment_id"] == "llama-sweep"
    assert data["attributions"][str(os.getpid())]["confident"] is True


def test_gpus_table_shows_na_and_lost_gpus():
    from state.telemetry import GpuSample, GpuSnapshot

    na = GpuSample(0, "GPU A", "u0", None, None, None, None, None, None, None, None, None)
    lost = GpuSample(1, "GPU B", "u1", None, None, None, None, None, None, None, None, None, error="GPU lost")
    text = gpus_command.render_table(GpuSnapshot(datetime.now(timezone.utc), (na, lost), "ok"), {})
    row0 = next(line for line in text.splitlines() if line.strip().startswith("0 "))
    assert row0.split()[3:6] == ["n/a", "n/a/n/a", "n/a/n/a"]
    assert "GPU lost" in text


def test_devices_demo_json(capsys):
    assert main(["devices", str(DEMO_WORKCELL), "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["workcell"] == "demo"
    ready = {d["name"]: d for d in data["ready"]["devices"]}
    assert set(ready) == {"liquid_handler", "heater_shaker", "plate_reader", "incubator_block", "centrifuge"}
    assert {d["status"] for d in ready.values()} == {"available"}
    assert ready["liquid_handler"]["details"]["channels"] == 8
    assert {d["status"] for d in data["stopped"]["devices"]} == {"offline"}
    assert "Setting up" not in out


def test_devices_table_and_refusals(tmp_path, capsys):
    assert main(["devices", str(DEMO_WORKCELL)]) == 0
    out = capsys.readouterr().out
    assert "heater_shaker" in out and "available" in out and "all devices stopped" in out
    evil = tmp_path / "evil.json"
    evil.write_text(json.dumps({"workcell": "x", "devices": [{"name": "e", "class": "builtins.eval", "data": {}}]}))
    assert main(["devices", str(evil)]) == 1
    err = capsys.readouterr().err
    assert "device 'e' (entry 0)" in err and "only classes under 'pylabrobot.'" in err
    assert main(["devices", str(tmp_path / "missing.json")]) == 3
