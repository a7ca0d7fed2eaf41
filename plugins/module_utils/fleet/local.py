# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device files in output_dir: keys, certificates and the marker of calls whose answer was lost."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.spec import (
    ATTEMPT_SECONDS,
    CERT_FILE,
    KEY_FILE,
    MARKER_FILE,
    MARKER_SKEW_SECONDS,
)

# ---------------------------------------------------------------------------
# Local files
# ---------------------------------------------------------------------------


def device_paths(output_dir: str, name: str) -> Dict[str, str]:
    base = os.path.join(output_dir, name)
    return {
        "dir": base,
        "key": os.path.join(base, KEY_FILE),
        "cert": os.path.join(base, CERT_FILE),
        "marker": os.path.join(base, MARKER_FILE),
    }


@dataclass
class CallRecord:
    """A certificate-creating call of this fleet, in the device's marker file from before its first attempt.

    A call whose every attempt was answered is removed from the file once its files are written; what stays is
    a call that may have made a certificate nobody received: a lost answer (``lost`` attempts), a killed run
    (``ended`` None), or an answer whose files could not be written (its certificate id in ``made``).
    """

    device: str
    source: str  # aws_keys | csr | unknown (a marker of an older version, or unreadable)
    started: float
    last: float = 0.0  # when the latest attempt started
    attempts: int = 1
    lost: Optional[int] = None  # attempts without an answer; None: not known (the run ended first)
    ended: Optional[float] = None
    made: List[str] = field(default_factory=list)

    def window(self, now: float) -> Tuple[float, float]:
        """When (AWS's clock, give or take the skew) a certificate of this call can have been created."""
        end = self.ended if self.ended is not None else max(self.started, self.last) + ATTEMPT_SECONDS
        return self.started - MARKER_SKEW_SECONDS, min(end, now) + MARKER_SKEW_SECONDS

    def possibly_lost(self) -> int:
        """How many certificates this call can have made that nobody received (an upper bound)."""
        return self.attempts if self.lost is None else self.lost

    def to_json(self) -> Dict[str, Any]:
        return {
            "source": self.source,
            "started": self.started,
            "last": self.last,
            "attempts": self.attempts,
            "lost": self.lost,
            "ended": self.ended,
            "made": self.made,
        }


@dataclass
class LocalDevice:
    key_public: Optional[bytes] = None  # SPKI DER of the key on disk
    key_error: Optional[str] = None
    key_mode: Optional[int] = None  # permission bits of the key file
    cert_id: Optional[str] = None
    cert_public: Optional[bytes] = None
    records: List[CallRecord] = field(default_factory=list)  # certificate calls not yet swept


def _parse_records(name: str, data: bytes, mtime: float) -> List[CallRecord]:
    try:
        document = json.loads(data.decode())
        if "calls" in document:
            return [
                CallRecord(
                    device=name,
                    source=str(c.get("source") or "unknown"),
                    started=float(c["started"]),
                    last=float(c.get("last") or c["started"]),
                    attempts=int(c.get("attempts") or 1),
                    lost=None if c.get("lost") is None else int(c["lost"]),
                    ended=None if c.get("ended") is None else float(c["ended"]),
                    made=[str(i) for i in c.get("made") or []],
                )
                for c in document["calls"]
            ]
        # An older version's marker: start times only; its certificates are told by their public key only.
        return [CallRecord(device=name, source="unknown", started=float(t)) for t in document.get("started", [])]
    except (ValueError, AttributeError, KeyError, TypeError):
        # Unreadable: only a certificate with this device's public key, created before the file last changed.
        return [CallRecord(device=name, source="unknown", started=0.0, last=mtime, ended=mtime)]


def read_local_device(output_dir: Optional[str], name: str) -> LocalDevice:
    local = LocalDevice()
    if not output_dir:
        return local
    paths = device_paths(output_dir, name)
    key = crypto.read_file(paths["key"])
    if key is not None:
        try:
            local.key_public = crypto.private_key_public_key(key)
        except crypto.CryptoError as e:
            local.key_error = f"{paths['key']} {e}"
        with contextlib.suppress(OSError):
            local.key_mode = os.stat(paths["key"]).st_mode & 0o777
    cert = crypto.read_file(paths["cert"])
    if cert is not None:
        try:
            local.cert_id = crypto.certificate_id(cert)
            local.cert_public = crypto.certificate_public_key(cert)
        except crypto.CryptoError as e:
            local.key_error = f"{paths['cert']} {e}"
    marker = crypto.read_file(paths["marker"])
    if marker is not None:
        try:
            mtime = os.stat(paths["marker"]).st_mtime
        except OSError:
            mtime = time.time()
        local.records = _parse_records(name, marker, mtime)
    return local


def write_records(output_dir: str, name: str, records: List[CallRecord]) -> None:
    """The device's marker file holds exactly ``records``, durably (none: the file is removed)."""
    paths = device_paths(output_dir, name)
    if not records:
        clear_marker(output_dir, name)
        return
    os.makedirs(paths["dir"], mode=0o700, exist_ok=True)
    data = json.dumps({"calls": [r.to_json() for r in records]}).encode()
    crypto.write_file_atomic(paths["marker"], data, crypto.CERTIFICATE_MODE)


def clear_marker(output_dir: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(device_paths(output_dir, name)["marker"])
