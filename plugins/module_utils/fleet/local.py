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
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet import expiry
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.spec import (
    ATTEMPT_SECONDS,
    CERT_FILE,
    KEY_FILE,
    MARKER_FILE,
    MARKER_SKEW_SECONDS,
    NEXT_DIR,
    ROTATION_FILE,
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
        # A rotation's new files from step 1 until step 2 moves them in place (see rotation.py).
        "next_dir": os.path.join(base, NEXT_DIR),
        "next_key": os.path.join(base, NEXT_DIR, KEY_FILE),
        "next_cert": os.path.join(base, NEXT_DIR, CERT_FILE),
        "rotation": os.path.join(base, ROTATION_FILE),
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
    # The dates and key of each certificate file here (main and next/), by certificate id: no call needed.
    facts: Dict[str, Any] = field(default_factory=dict)
    # Rotation (rotation.py): the files of next/ overlay the main ones once next/ holds a certificate, so the
    # fields above describe the new certificate from step 1 on; the main files' own are kept here.
    overlay: bool = False
    main_cert_id: Optional[str] = None
    main_key_public: Optional[bytes] = None
    next_key_public: Optional[bytes] = None  # next/ holds a key (step 1 of a csr device began)
    next_cert_id: Optional[str] = None
    key_path: Optional[str] = None  # the key file the fields above describe
    # Step 2's intent record: the old certificates being retired ({id, arn, new}); see rotation.py.
    retiring: List[Dict[str, str]] = field(default_factory=list)


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


def _read_pair(key_path: str, cert_path: str) -> Dict[str, Any]:
    """One key file and one certificate file: public keys, id, facts, errors (missing files are None)."""
    pair: Dict[str, Any] = {"key_public": None, "key_error": None, "key_mode": None, "cert_id": None}
    pair.update(cert_public=None, facts=None)
    key = crypto.read_file(key_path)
    if key is not None:
        try:
            pair["key_public"] = crypto.private_key_public_key(key)
        except crypto.CryptoError as e:
            pair["key_error"] = f"{key_path} {e}"
        with contextlib.suppress(OSError):
            pair["key_mode"] = os.stat(key_path).st_mode & 0o777
    cert = crypto.read_file(cert_path)
    if cert is not None:
        try:
            pair["cert_id"] = crypto.certificate_id(cert)
            pair["cert_public"] = crypto.certificate_public_key(cert)
            pair["facts"] = expiry.facts_of_pem(cert, "file")
        except crypto.CryptoError as e:
            pair["key_error"] = f"{cert_path} {e}"
    return pair


def read_local_device(output_dir: Optional[str], name: str) -> LocalDevice:
    local = LocalDevice()
    if not output_dir:
        return local
    paths = device_paths(output_dir, name)
    main = _read_pair(paths["key"], paths["cert"])
    local.key_public, local.key_error, local.key_mode = main["key_public"], main["key_error"], main["key_mode"]
    local.cert_id, local.cert_public = main["cert_id"], main["cert_public"]
    local.main_cert_id, local.main_key_public, local.key_path = main["cert_id"], main["key_public"], paths["key"]
    if main["facts"] is not None:
        local.facts[main["cert_id"]] = main["facts"]
    if os.path.isdir(paths["next_dir"]):
        nxt = _read_pair(paths["next_key"], paths["next_cert"])
        local.next_key_public, local.next_cert_id = nxt["key_public"], nxt["cert_id"]
        if nxt["key_error"]:
            local.key_error = nxt["key_error"]
        if nxt["facts"] is not None:
            local.facts[nxt["cert_id"]] = nxt["facts"]
        if nxt["cert_id"]:
            # Step 1 wrote the new certificate: it is the device's certificate from now on. Its key is next/'s,
            # or the main key once step 2 moved it (a run stopped between the two moves), or on the device (a
            # CSR the device made).
            local.overlay = True
            local.cert_id, local.cert_public = nxt["cert_id"], nxt["cert_public"]
            if nxt["key_public"] is not None:
                local.key_public, local.key_mode, local.key_path = nxt["key_public"], nxt["key_mode"], paths["next_key"]
            elif main["key_public"] is None or main["key_public"] != nxt["cert_public"]:
                local.key_public, local.key_mode, local.key_path = None, None, None
    marker = crypto.read_file(paths["marker"])
    if marker is not None:
        try:
            mtime = os.stat(paths["marker"]).st_mtime
        except OSError:
            mtime = time.time()
        local.records = _parse_records(name, marker, mtime)
    intent = crypto.read_file(paths["rotation"])
    if intent is not None:
        try:
            document = json.loads(intent.decode())
            local.retiring = [
                {"id": str(r["id"]), "arn": str(r["arn"]), "new": str(document["new"])} for r in document["retire"]
            ]
        except (ValueError, KeyError, TypeError, AttributeError):
            local.retiring = []  # unreadable: AWS alone says what to retire (the confirmed new certificate)
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
