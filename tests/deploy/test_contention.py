"""deploy/contention.py: the cores other processes kept busy while cnnlab timed, and the warning a busy machine gets
(probe 196: a pruned ResNet-18 read 45× faster beside two busy processes, 6.7× on the quiet machine, without a
word)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnlab.deploy import contention


def test_the_busy_time_is_every_cores_but_idle_and_iowait_steal_included(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    stat = tmp_path / "stat"
    #                 user nice system idle iowait irq softirq steal guest guest_nice (guest is in user already)
    stat.write_text("cpu  100 5 50 800 10 2 3 40 7 0\ncpu0 50 2 25 400 5 1 1 20 3 0\ncpu1 50 3 25 400 5 1 2 20 4 0\n"
                    "intr 5 6\n")
    monkeypatch.setattr(contention, "_STAT", str(stat))
    monkeypatch.setattr(contention.os, "sched_getaffinity", lambda pid: {0, 1})
    assert contention._busy_seconds() == pytest.approx(200 / os.sysconf("SC_CLK_TCK"))  # both cores: the total
    monkeypatch.setattr(contention.os, "sched_getaffinity", lambda pid: {1})  # pinned: another core's work is not
    assert contention._busy_seconds() == pytest.approx(101 / os.sysconf("SC_CLK_TCK"))  # contention
    monkeypatch.setattr(contention.os, "sched_getaffinity", lambda pid: {7})  # a core /proc/stat does not list
    assert contention._busy_seconds() == pytest.approx(200 / os.sysconf("SC_CLK_TCK"))
    stat.write_text("intr 1 2 3\n")
    assert contention._busy_seconds() is None  # not the line it reads: unknown, not zero
    monkeypatch.setattr(contention, "_STAT", str(tmp_path / "none"))
    assert contention._busy_seconds() is None


def test_others_use_is_the_machines_busy_time_less_this_processs_own(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"busy": 10.0, "wall": 100.0, "own": 5.0}
    monkeypatch.setattr(contention, "_busy_seconds", lambda: clock["busy"])
    monkeypatch.setattr(contention.time, "perf_counter", lambda: clock["wall"])
    monkeypatch.setattr(contention.time, "process_time", lambda: clock["own"])
    watch = contention.CpuWatch.start()
    clock.update(busy=16.0, wall=102.0, own=8.0)  # 6 s busy in 2 s, 3 of them this process's threads
    assert watch.others_cores() == pytest.approx(1.5)
    clock.update(busy=10.5, own=5.6)  # counted in ticks: own time a little over the machine's is no one else's
    assert watch.others_cores() == 0.0
    clock.update(wall=100.0)
    assert watch.others_cores() is None  # no time passed


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="the kernel's counts are Linux's /proc/stat")
def test_a_busy_neighbour_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contention, "_STAT", "/proc/stat")  # the real counts (conftest hides them from other tests)
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started
        watch = contention.CpuWatch.start()
        time.sleep(1.0)
        others = watch.others_cores()
    finally:
        neighbour.kill()
        neighbour.wait()
    assert others is not None and others >= 0.6, others  # one core's worth, give or take the kernel's ticks


def test_a_paired_timing_beside_other_work_warns_and_records_it(monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from cnnlab.deploy import bench, paired

    def fake_time_onnx(path, batch, **_):  # noqa: ANN001, ANN202 - the stand-in for one timing
        return bench.LatencyStats("onnxruntime", "cpu", batch, 1, 10, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, batch, None, None)

    monkeypatch.setattr(bench, "time_onnx", fake_time_onnx)
    settings = paired.PairedSettings(batch_sizes=(1,), threads=1, rounds=2)
    for others, said in ((1.34, True), (0.1, False), (None, False)):
        monkeypatch.setattr(contention.CpuWatch, "others_cores", lambda self, value=others: value)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cnnlab"):
            timing = paired.time_paired({"A": "a", "B": "b"}, settings)
        assert timing.others_cores == (None if others is None else round(others, 3))
        warned = [r for r in caplog.records if "cores busy while the models were timed" in r.getMessage()]
        assert len(warned) == int(said), caplog.text
        if said:
            assert warned[0].getMessage().startswith("other processes kept 1.3 of the ")
            assert getattr(warned[0], "run_warning", False)  # kept in run.json's warnings too
