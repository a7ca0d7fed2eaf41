# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of a fleet run, published as a small JSON file while the run goes on.

A module cannot print while it runs: Ansible shows its result only at the end. So the engine counts
what it has done here, and a writer thread replaces ``path`` with the counters every ``interval``
seconds. The ``fleet`` action plugin reads that file on the controller and prints a line when it
changes; anything else (a pipeline, ``watch cat``) can read it too.

The file, one JSON object::

    {"phase": "read" | "apply" | "done", "total": 500, "done": 120, "elapsed": 12.5, "rate": 9.9,
     "outcomes": {"created": 100, "unchanged": 18, "failed": 2}, "failed": 2,
     "api_calls": 731, "throttles": 3, "retries": 4}

``total``/``done`` count the devices of the current phase (in ``read``: the devices whose certificate
attachments are listed one call each); ``rate`` is devices per second over the phase so far.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from typing import Any, Callable, Dict, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils.crypto import write_file_atomic

CallCounters = Callable[[], Dict[str, Any]]


class Progress:
    """Thread-safe counters of a fleet run; a context manager that publishes them to ``path``."""

    def __init__(
        self,
        path: Optional[str] = None,
        interval: float = 10.0,
        call_counters: Optional[CallCounters] = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.path = path
        self.interval = interval
        self.call_counters = call_counters or dict
        self.clock = clock
        self.lock = threading.Lock()
        self.started = clock()
        self.phase = "read"
        self.phase_started = self.started
        self.total = 0
        self.done = 0
        self.outcomes: Dict[str, int] = {}
        self._stop = threading.Event()
        self._writer: Optional[threading.Thread] = None

    def start_phase(self, phase: str, total: int) -> None:
        with self.lock:
            self.phase = phase
            self.phase_started = self.clock()
            self.total = total
            self.done = 0

    def advance(self, outcome: Optional[str] = None) -> None:
        """One device of the current phase is through (with its outcome, in the apply phase)."""
        with self.lock:
            self.done += 1
            if outcome:
                self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def snapshot(self) -> Dict[str, Any]:
        now = self.clock()
        with self.lock:
            phase_time = now - self.phase_started
            state: Dict[str, Any] = {
                "phase": self.phase,
                "total": self.total,
                "done": self.done,
                "elapsed": round(now - self.started, 1),
                "rate": round(self.done / phase_time, 1) if phase_time > 0 else 0.0,
                "outcomes": dict(sorted(self.outcomes.items())),
                "failed": self.outcomes.get("failed", 0),
            }
        counters = self.call_counters()
        state["api_calls"] = counters.get("api_calls_total", 0)
        state["throttles"] = counters.get("throttles", 0)
        state["retries"] = counters.get("retries", 0)
        return state

    def publish(self) -> None:
        if not self.path:
            return
        # Progress is a courtesy: a full disk or a vanished directory must not fail the run.
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            write_file_atomic(self.path, json.dumps(self.snapshot()).encode(), 0o600)

    def _write_periodically(self) -> None:
        while not self._stop.wait(self.interval):
            self.publish()

    def __enter__(self) -> Progress:
        if self.path and self.interval > 0:
            self.publish()
            self._writer = threading.Thread(target=self._write_periodically, name="fleet-progress", daemon=True)
            self._writer.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        if self._writer:
            self._writer.join()
        with self.lock:
            self.phase = "done"
        if self.interval > 0:
            self.publish()
