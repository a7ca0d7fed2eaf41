"""Measuring helpers of the fleet benchmark (benchmarks/run.py): memory of a process tree, load, bounds, scale.

Kept apart from run.py so that tests/unit/test_benchmark_measure.py can check them without an endpoint.
"""

from __future__ import annotations

import collections
import json
import math
import os
import threading
from typing import Any, Callable, Iterable, Mapping

# The calls a correct tool cannot do without, per device, for the benchmark's devices (a CSR certificate, one
# policy, the fleet group). Cold: the five changes (reads of an empty account are a page or two, left out).
# Nothing to change: which certificate each thing has is known only per thing (ListThingPrincipals); the
# things, group members, certificates and policy targets come from shared pages of 250, counted per page.
MINIMAL_CALLS = {
    "cold": {
        "CreateThing": 1.0,
        "AddThingToThingGroup": 1.0,
        "CreateCertificateFromCsr": 1.0,
        "AttachThingPrincipal": 1.0,
        "AttachPolicy": 1.0,
    },
    "warm": {
        "ListThingPrincipals": 1.0,
        "ListThings": 1 / 250,
        "ListThingsInThingGroup": 1 / 250,
        "ListCertificates": 1 / 250,
        "ListTargetsForPolicy": 1 / 250,
    },
}
# Rotation (benchmarks/rotation.py), a csr device with one policy. Step 1: the warm reads (the stage is known
# only per thing) and the new certificate beside the old one. Step 2: the warm reads and the old one's removal in
# AWS's order. The fleet also reads ListPrincipalThings (is the old certificate shared with another thing?) and
# ListAttachedPolicies (its policies, named in the input or not) before it removes it; they are not counted here.
MINIMAL_CALLS["rotate_issue"] = {
    **MINIMAL_CALLS["warm"],
    "CreateCertificateFromCsr": 1.0,
    "AttachThingPrincipal": 1.0,
    "AttachPolicy": 1.0,
}
MINIMAL_CALLS["rotate_retire"] = {
    **MINIMAL_CALLS["warm"],
    "UpdateCertificate": 1.0,
    "DetachThingPrincipal": 1.0,
    "DetachPolicy": 1.0,
    "DeleteCertificate": 1.0,
}


def minimal_bound(kind: str, devices: int, quotas: Mapping[str, float], default_tps: float) -> tuple[float, str]:
    """Seconds the minimal call set of ``devices`` needs at least at ``quotas``, and the API that sets it."""
    return max(
        (math.ceil(per_device * devices) / quotas.get(op, default_tps), op)
        for op, per_device in MINIMAL_CALLS[kind].items()
    )


def made_bound(calls: Iterable[str], quotas: Mapping[str, float], default_tps: float) -> tuple[float, str]:
    """The same bound over the calls a run made (it cannot show a wasted call)."""
    counts = collections.Counter(calls)
    return max(((count / quotas.get(op, default_tps), op) for op, count in counts.items()), default=(0.0, "-"))


def scaled_rates(operations: Iterable[str], quotas: Mapping[str, float], default_tps: float) -> dict[str, float]:
    """The fleet's api_rates for an endpoint whose quotas were scaled: each operation at the endpoint's TPS."""
    return {op: float(quotas.get(op, default_tps)) for op in sorted(operations)}


def cpu_seconds(before: Any, after: Any) -> float:
    """User plus system CPU seconds between two getrusage(RUSAGE_CHILDREN) readings (waited-for descendants)."""
    return round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2)


def load_average() -> float:
    """The one-minute load average of the machine (other engineers' tests share its 2 cores)."""
    return round(os.getloadavg()[0], 2)


# --------------------------------------------------------------------------- memory of a process tree


def parent_of(stat_line: str) -> int:
    """The parent pid in a /proc/PID/stat line (the command name in parentheses may hold spaces)."""
    return int(stat_line[stat_line.rindex(")") + 2 :].split()[1])


def descendants(root: int, parents: Mapping[int, int]) -> list[int]:
    """``root`` and every process below it, given each process's parent."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for pid, parent in parents.items():
        children[parent].append(pid)
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def status_kib(text: str, field: str) -> int:
    """A ``Field:   123 kB`` value of /proc/PID/status or /proc/PID/smaps_rollup, 0 when absent."""
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:  # the process ended between the listing and the read
        return ""


def process_parents() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            line = _read(f"/proc/{entry}/stat")
            if line:
                parents[int(entry)] = parent_of(line)
    return parents


class TreeMemory:
    """Samples the memory of a process and all its descendants from /proc until stopped.

    Per sample: the sum of the resident set sizes (RSS, counts pages shared between a parent and its forked
    worker twice: an upper bound) and of the proportional set sizes (PSS, shared pages split between their
    users: what the tree costs the machine). The peaks of both sums are kept, with the process count then.
    ``on_sample`` (optional) is called after each sample, e.g. to read a progress file at the same pace.
    """

    def __init__(self, root: int, interval: float = 0.1, on_sample: Callable[[], None] | None = None) -> None:
        self.root = root
        self.interval = interval
        self.on_sample = on_sample
        self.peak_rss_kib = 0
        self.peak_pss_kib = 0
        self.peak_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def sample(self) -> None:
        rss = pss = 0
        pids = descendants(self.root, process_parents())
        for pid in pids:
            rss += status_kib(_read(f"/proc/{pid}/status"), "VmRSS")
            pss += status_kib(_read(f"/proc/{pid}/smaps_rollup"), "Pss")
        self.samples += 1
        if rss > self.peak_rss_kib:
            self.peak_rss_kib, self.peak_processes = rss, len(pids)
        self.peak_pss_kib = max(self.peak_pss_kib, pss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            if self.on_sample:
                self.on_sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> dict[str, float]:
        return {
            "peak_rss_mib": round(self.peak_rss_kib / 1024, 1),
            "peak_pss_mib": round(self.peak_pss_kib / 1024, 1),
            "processes_at_peak": self.peak_processes,
            "memory_samples": self.samples,
        }


# --------------------------------------------------------------------------- planning time from the progress file


class PlanningClock:
    """Reads the fleet's progress file (progress_path) and tells when planning ended.

    The fleet writes ``{"phase": "read" | "apply" | "done", "elapsed": ..., "done": ..., "rate": ...}`` every
    progress_interval seconds. Planning (reading the account, computing the plan) is everything before the
    ``apply`` phase: the first ``apply`` snapshot, less the time already spent applying (done / rate), gives it
    to within the interval. An apply phase shorter than the interval (nothing to change) may never show: then
    the run's end (the ``done`` snapshot) is the planning time, too long by at most that short phase. A
    check-mode run has no apply phase: its plan takes the whole run.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.planning_s: float | None = None
        self.last_read_s: float | None = None
        self.done_s: float | None = None

    def observe(self, state: Mapping[str, object]) -> None:
        phase, elapsed = state.get("phase"), float(state.get("elapsed") or 0.0)  # type: ignore[arg-type]
        if phase == "read":
            self.last_read_s = elapsed
        elif phase == "apply" and self.planning_s is None:
            rate, done = float(state.get("rate") or 0.0), float(state.get("done") or 0.0)  # type: ignore[arg-type]
            applying = done / rate if rate > 0 else 0.0
            self.planning_s = round(max(self.last_read_s or 0.0, elapsed - applying), 1)
        elif phase == "done":
            self.done_s = elapsed

    def poll(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                state = json.load(handle)
        except (OSError, ValueError):  # not written yet, or being replaced
            return
        if isinstance(state, dict):
            self.observe(state)

    def planning(self, check_mode: bool) -> float | None:
        if check_mode or self.planning_s is None:
            return self.done_s
        return self.planning_s


def growth(first: tuple[int, float], second: tuple[int, float]) -> float | None:
    """How a figure grows with the fleet, as the exponent k of figure ~ devices^k between two sizes."""
    (n1, v1), (n2, v2) = first, second
    if n1 <= 0 or n2 <= 0 or n1 == n2 or v1 <= 0 or v2 <= 0:
        return None
    return round(math.log(v2 / v1) / math.log(n2 / n1), 2)
