"""The fleet benchmark's measuring helpers (benchmarks/measure.py): bounds, /proc parsing, planning time, growth."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import measure

QUOTAS = {
    "CreateThing": 100.0,
    "AddThingToThingGroup": 100.0,
    "AttachThingPrincipal": 100.0,
    "CreateCertificateFromCsr": 15.0,
    "AttachPolicy": 15.0,
    "ListThingPrincipals": 20.0,
}


def test_minimal_bound_is_set_by_the_slowest_api_of_the_minimal_calls():
    seconds, api = measure.minimal_bound("cold", 500, QUOTAS, 10.0)
    assert (seconds, api) == (pytest.approx(500 / 15), "CreateCertificateFromCsr")
    # Nothing to change: one ListThingPrincipals per device; the shared pages (1 per 250) at 10 TPS weigh less.
    assert measure.minimal_bound("warm", 1000, QUOTAS, 10.0) == (50.0, "ListThingPrincipals")


def test_made_bound_counts_the_calls_made_including_wasted_ones():
    calls = ["CreateThing"] * 100 + ["UpdateCertificate"] * 30 + ["CreateCertificateFromCsr"] * 15
    assert measure.made_bound(calls, QUOTAS, 10.0) == (3.0, "UpdateCertificate")  # unlisted: 10 TPS
    assert measure.made_bound([], QUOTAS, 10.0) == (0.0, "-")


def test_scaled_rates_give_every_engine_operation_the_endpoints_rate():
    rates = measure.scaled_rates(["ListCertificates", "CreateThing"], {"CreateThing": 200.0}, 20.0)
    assert rates == {"CreateThing": 200.0, "ListCertificates": 20.0}


def test_proc_parsing():
    assert measure.parent_of("123 (ansible-playbook (x) y) S 77 123 123 0 -1") == 77
    assert measure.status_kib("Name:\tpython\nVmRSS:\t  2048 kB\n", "VmRSS") == 2048
    assert measure.status_kib("Pss:   10 kB\n", "VmRSS") == 0
    parents = {1: 0, 10: 1, 11: 10, 12: 11, 20: 1, 13: 10}
    assert sorted(measure.descendants(10, parents)) == [10, 11, 12, 13]


def test_tree_memory_sums_a_process_and_its_children():
    child = subprocess.Popen(["sh", "-c", "sleep 2 & sleep 2 & wait"])
    try:
        sampler = measure.TreeMemory(child.pid, interval=0.05)
        for _attempt in range(40):  # until the shell has started both sleeps
            sampler.sample()
            if sampler.peak_processes >= 3:
                break
        assert sampler.peak_processes >= 3 and sampler.peak_rss_kib > 0 and sampler.peak_pss_kib > 0
    finally:
        child.kill()
        child.wait()


def test_planning_clock_reads_the_phases():
    clock = measure.PlanningClock("/nonexistent")
    clock.poll()  # no file yet: nothing seen, no error
    for state in (
        {"phase": "read", "elapsed": 0.1},
        {"phase": "read", "elapsed": 3.9, "done": 400, "rate": 100},
        {"phase": "apply", "elapsed": 4.4, "done": 20, "rate": 50.0},  # 0.4 s into the apply phase
        {"phase": "apply", "elapsed": 9.0, "done": 250, "rate": 50.0},
        {"phase": "done", "elapsed": 12.0},
    ):
        clock.observe(state)
    assert clock.planning(check_mode=False) == 4.0
    assert clock.planning(check_mode=True) == 12.0
    short = measure.PlanningClock("/nonexistent")  # an apply phase too short to be seen
    for state in ({"phase": "read", "elapsed": 5.0}, {"phase": "done", "elapsed": 5.3}):
        short.observe(state)
    assert short.planning(check_mode=False) == 5.3


def test_growth_exponent():
    assert measure.growth((1000, 10.0), (10000, 100.0)) == 1.0
    assert measure.growth((1000, 80.0), (10000, 80.0)) == 0.0
    assert measure.growth((1000, 0.0), (10000, 5.0)) is None


def test_cpu_seconds_add_user_and_system_time():
    class Usage:
        def __init__(self, user: float, system: float) -> None:
            self.ru_utime, self.ru_stime = user, system

    assert measure.cpu_seconds(Usage(1.0, 0.5), Usage(3.25, 1.0)) == 2.75
