# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet engine: the desired state of many devices, planned from list calls and applied concurrently.

Stages, each a small function:

* ``load_device_rows`` / ``validate_fleet(params) -> FleetSpec``: the input (a list or a CSV/YAML/JSON(L)
  file), defaults merged under every device, every limit checked before any client exists.
* ``read_fleet_state(call, spec) -> Snapshot``: the remote state from paged list calls
  (ListThingsInThingGroup per named group, ListThings within a page budget and DescribeThing for the
  devices not seen by then, ListCertificates, ListTargetsForPolicy per named policy) plus
  ListThingPrincipals only for existing things that should carry a certificate, and the local
  key/certificate files.
* ``plan_fleet(spec, snapshot) -> FleetPlan``: a pure function: per device the steps that make it match.
* ``apply_plan(call, spec, plan, ...)``: a thread pool over devices; each device's steps run in
  dependency order (thing, groups, certificate, attach, policies, activate).

Nothing is lost: a certificate is created INACTIVE; the private key and certificate are written (files
prepared before the call, committed right after it) before the next step; it is attached, given its
policies, and activated last. Before every attempt of a certificate-creating call the device's marker file
records it (``CallRecord``: source, time, attempts); a call whose every attempt was answered leaves no record.
A record left behind (an answer lost to a dropped connection or a 5xx, a killed process) lets the orphan sweep
of the same or the next run delete what it can prove this fleet made, and nothing else: INACTIVE, attached to
nothing, unknown to every device file, created within the record's own window, and either returned to this
run, or carrying the public key of one of this fleet's device keys, or (AWS-made keys, whose certificate
cannot be told by its key) no more of them in the windows than the attempts whose answers were lost.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, iot_access, retry
from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError, ValidationError, is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates import validate_policy_names
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_progress import Progress
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_rate import DEFAULT_TPS, validate_api_rates
from ansible_collections.iotfleet.provisioning.plugins.module_utils.keys import ensure_private_key, make_csr
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things import (
    attribute_delta,
    attributes_after,
    visible_attributes,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    MAX_ATTRIBUTES_WITH_TYPE,
    MAX_ATTRIBUTES_WITHOUT_TYPE,
    MAX_THING_GROUPS_PER_THING,
    check_attributes,
    check_thing_group_name,
    check_thing_name,
    check_thing_type_name,
    check_unique_names,
    validate_declared,
)

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover
    HAS_YAML = False

CERTIFICATE_SOURCES = ("aws_keys", "csr", "pem", "none")
DEVICE_KEYS = (
    "name",
    "thing_type",
    "attributes",
    "purge_attributes",
    "thing_groups",
    "certificate",
    "certificate_pem",
    "certificate_pem_path",
    "policies",
)
PAGE_SIZE = 250
PLAN_LISTING_LIMIT = 50
KEY_FILE = "private.pem.key"
CERT_FILE = "certificate.pem.crt"
MARKER_FILE = ".fleet-pending.json"
# A certificate made by a call whose answer was lost is at most this much older than its marker says
# (clock skew between this host and AWS).
MARKER_SKEW_SECONDS = 120
# An attempt whose answer never came ran at most this long after it started (botocore's default connect
# and read timeouts, 60 s each): the end of the window of a call a killed run never finished.
ATTEMPT_SECONDS = 120
CREATE_OPERATIONS = {
    "create_keys_and_certificate": "CreateKeysAndCertificate",
    "create_certificate_from_csr": "CreateCertificateFromCsr",
}
KEY_SPEC = {"type": "EC", "curve": "P-256"}
# The waits between the fleet's delete attempts (the schedules live in retry.py).
DELETE_WAITS = retry.FLEET_CERTIFICATE_DELETE.waits
# What the plan, the diff and the report say of a device whose key is not in output_dir on this machine.
KEY_NOT_HERE = "not on this controller"

Call = Callable[..., Dict[str, Any]]


# ---------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------


def _split_list(text: str) -> List[str]:
    return [part.strip() for part in text.replace("|", ";").split(";") if part.strip()]


def csv_rows(text: str) -> List[Dict[str, Any]]:
    """CSV with a header. Columns: the device keys; lists separated by ';'; attributes as ``attributes.NAME``.

    An empty cell means "not given" (the device takes the default, or the remote value is left alone), as in a
    registration task's devices file. A row whose number of cells differs from the header's is refused with its
    line: an unquoted comma or a truncated line would otherwise shift values into the wrong columns silently.
    """
    rows = []
    reader = csv.reader(io.StringIO(text))
    header: Optional[List[str]] = None
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            if len(set(header)) != len(header) or "" in header:
                raise ValidationError(
                    f"devices_file line {reader.line_num}", "the CSV header needs unique, non-empty column names"
                )
            continue
        if len(row) != len(header):
            raise ValidationError(
                f"devices_file line {reader.line_num}",
                f"has {len(row)} cells, the header has {len(header)} (quote a value that holds a comma)",
            )
        device: Dict[str, Any] = {}
        for column, value in zip(header, row):
            value = value.strip()
            if value == "":
                continue
            if column.startswith("attributes.") or column.startswith("attr."):
                device.setdefault("attributes", {})[column.split(".", 1)[1]] = value
            elif column in ("thing_groups", "policies"):
                device[column] = _split_list(value)
            elif column == "purge_attributes":
                device[column] = value.lower() in ("true", "yes", "1")
            else:
                device[column] = value
        rows.append(device)
    return rows


def json_rows(text: str, field_name: str) -> List[Any]:
    """A JSON list, or JSON lines (one object per line, blank lines skipped)."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except ValueError as e:
            raise ValidationError(field_name, f"is not valid JSON: {e}") from None
        return data
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as e:
            raise ValidationError(f"{field_name} line {number}", f"is not valid JSON: {e}") from None
    return rows


def load_device_rows(path: str) -> List[Any]:
    """The device entries of ``devices_file`` by its extension: .csv, .yml/.yaml, .json/.jsonl."""
    field_name = "devices_file"
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as e:
        raise ValidationError(field_name, f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ValidationError(field_name, f"cannot read {path}: it is not UTF-8 text ({e.reason})") from None
    lower = path.lower()
    if lower.endswith(".csv"):
        return csv_rows(text)
    if lower.endswith((".yml", ".yaml")):
        if not HAS_YAML:
            raise ValidationError(field_name, "reading YAML needs the Python library PyYAML")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValidationError(field_name, f"is not valid YAML: {e}") from None
        if isinstance(data, dict) and "devices" in data:
            data = data["devices"]
        if data is None:
            return []
        if not isinstance(data, list):
            raise ValidationError(field_name, f"must hold a list of devices, got {type(data).__name__}")
        return data
    if lower.endswith((".json", ".jsonl", ".ndjson")):
        return json_rows(text, field_name)
    raise ValidationError(field_name, f"must end in .csv, .yml, .yaml, .json or .jsonl, got {path!r}")


def merge_defaults(defaults: Mapping[str, Any], device: Mapping[str, Any]) -> Dict[str, Any]:
    """The device over the defaults; attributes merge key by key (the device wins), everything else replaces."""
    merged = dict(defaults)
    for key, value in device.items():
        if key == "attributes" and isinstance(value, Mapping) and isinstance(merged.get("attributes"), Mapping):
            attributes = dict(merged["attributes"])
            attributes.update(value)
            merged[key] = attributes
        else:
            merged[key] = value
    return merged


@dataclass
class DesiredDevice:
    name: str
    thing_type: Optional[str] = None  # None: leave the remote type alone
    attributes: Optional[Dict[str, str]] = None  # None: leave the remote attributes alone
    purge_attributes: bool = True
    thing_groups: Optional[List[str]] = None  # None: leave memberships alone (the fleet group is always added)
    certificate: str = "none"
    certificate_pem: Optional[str] = None
    certificate_id: Optional[str] = None
    policies: Optional[List[str]] = None


@dataclass
class FleetSpec:
    devices: List[DesiredDevice]
    fleet_group: str
    output_dir: Optional[str] = None
    prune: bool = False
    prune_all: bool = False
    max_prune: Any = "10%"
    # Why the input holds no device (None: it holds some): such an input never prunes without prune_all.
    empty_input: Optional[str] = None
    max_failures: int = 0
    concurrency: int = 10
    plan_path: Optional[str] = None
    report_path: Optional[str] = None
    progress_path: Optional[str] = None
    progress_interval: float = 10.0
    api_rates: Dict[str, float] = field(default_factory=dict)
    # Replace the attached certificate of a device whose key is not on this controller (never by default).
    replace_lost_keys: bool = False
    # Policies and thing types that earlier tasks of the play create: in check mode those tasks only
    # predicted them, so a missing one is planned as made by them instead of failing its devices.
    declared_policies: List[str] = field(default_factory=list)
    declared_thing_types: List[str] = field(default_factory=list)
    check_mode: bool = False

    @property
    def named_groups(self) -> List[str]:
        """The thing groups this fleet manages memberships of: the fleet group and every group a device names."""
        groups = {self.fleet_group}
        for device in self.devices:
            groups.update(device.thing_groups or [])
        return sorted(groups)

    @property
    def named_policies(self) -> List[str]:
        policies: Set[str] = set()
        for device in self.devices:
            policies.update(device.policies or [])
        return sorted(policies)

    @property
    def named_thing_types(self) -> List[str]:
        return sorted({device.thing_type for device in self.devices if device.thing_type})


def _device_label(index: int, device: Any, source: str) -> str:
    name = device.get("name") if isinstance(device, Mapping) else None
    return f"{source}[{index}] ({name})" if isinstance(name, str) and name else f"{source}[{index}]"


def validate_device(raw: Any, label: str) -> DesiredDevice:
    """One merged device entry; every message names the device (``label``) and the field."""
    if not isinstance(raw, Mapping):
        raise ValidationError(label, f"must be a dictionary with at least a name, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(DEVICE_KEYS))
    if unknown:
        raise ValidationError(f"{label}.{unknown[0]}", f"is not a device option; use {', '.join(DEVICE_KEYS)}")
    if raw.get("name") in (None, ""):
        raise ValidationError(f"{label}.name", "is required")
    device = DesiredDevice(name=check_thing_name(f"{label}.name", raw["name"]))
    if raw.get("thing_type") is not None:
        device.thing_type = check_thing_type_name(f"{label}.thing_type", raw["thing_type"])
    if raw.get("attributes") is not None:
        device.attributes = check_attributes(f"{label}.attributes", raw["attributes"])
        # Without thing_type the device is checked as a thing without a type (3 attributes): the input names
        # the type of every device that needs more.
        _check_attribute_count(f"{label}.attributes", device.attributes, bool(device.thing_type))
    if raw.get("purge_attributes") is not None:
        if not isinstance(raw["purge_attributes"], bool):
            raise ValidationError(f"{label}.purge_attributes", "must be true or false")
        device.purge_attributes = raw["purge_attributes"]
    if raw.get("thing_groups") is not None:
        device.thing_groups = check_unique_names(f"{label}.thing_groups", raw["thing_groups"], check_thing_group_name)
    source = raw.get("certificate") or "none"
    if source not in CERTIFICATE_SOURCES:
        raise ValidationError(
            f"{label}.certificate", f"must be one of {', '.join(CERTIFICATE_SOURCES)}, got {source!r}"
        )
    device.certificate = source
    pem_given = [k for k in ("certificate_pem", "certificate_pem_path") if raw.get(k) is not None]
    if source == "pem":
        if len(pem_given) != 1:
            raise ValidationError(
                f"{label}.certificate", "pem needs exactly one of certificate_pem or certificate_pem_path"
            )
        if pem_given[0] == "certificate_pem_path":
            path = raw["certificate_pem_path"]
            data = crypto.read_file(path) if isinstance(path, str) else None
            if data is None:
                raise ValidationError(f"{label}.certificate_pem_path", f"{path} does not exist")
            text = data.decode("ascii", "replace")
        else:
            text = raw["certificate_pem"]
        try:
            device.certificate_id = crypto.certificate_id(text)
        except crypto.CryptoError as e:
            raise ValidationError(f"{label}.{pem_given[0]}", str(e)) from None
        device.certificate_pem = text
    elif pem_given:
        raise ValidationError(f"{label}.{pem_given[0]}", f"is only used with certificate: pem, not {source}")
    if raw.get("policies") is not None:
        device.policies = validate_policy_names(raw["policies"], f"{label}.policies")
        if device.policies and source == "none":
            raise ValidationError(f"{label}.policies", "policies are attached to a certificate: certificate is none")
    return device


def _check_attribute_count(field_name: str, attributes: Mapping[str, str], typed: bool) -> None:
    limit = MAX_ATTRIBUTES_WITH_TYPE if typed else MAX_ATTRIBUTES_WITHOUT_TYPE
    count = len([v for v in attributes.values() if v != ""])
    if count > limit:
        kind = "with" if typed else "without"
        raise ValidationError(
            field_name, f"a thing {kind} a thing type can have at most {limit} attributes, got {count}"
        )


def parse_max_prune(value: Any) -> Tuple[str, float]:
    """``("count", n)`` or ``("percent", p)`` from an int or a string like "10%" or "25"."""
    if isinstance(value, bool):
        raise ValidationError("max_prune", f"must be a count or a percentage like '10%', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValidationError("max_prune", f"must be zero or more, got {value}")
        return ("count", float(value))
    text = str(value).strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 <= pct <= 100:
                raise ValueError
            return ("percent", pct)
        count = int(text)
        if count < 0:
            raise ValueError
        return ("count", float(count))
    except ValueError:
        raise ValidationError(
            "max_prune", f"must be a count (0 or more) or a percentage from 0% to 100%, got {value!r}"
        ) from None


def prune_allowance(max_prune: Tuple[str, float], managed: int) -> int:
    kind, amount = max_prune
    if kind == "count":
        return int(amount)
    return math.floor(managed * amount / 100.0 + 1e-9)


def validate_fleet(params: Mapping[str, Any]) -> FleetSpec:
    """Every option checked and every device validated; no AWS call, no file written."""
    state = params.get("state") or "present"
    if state != "present":
        raise ValidationError("state", f"must be present, got {state!r}")
    devices_given = params.get("devices") is not None
    file_given = params.get("devices_file") is not None
    if devices_given == file_given:
        raise ValidationError("devices, devices_file", "give exactly one of them")
    fleet_group = params.get("fleet_group")
    if not fleet_group:
        raise ValidationError("fleet_group", "is required: it marks the devices this fleet manages")
    fleet_group = check_thing_group_name("fleet_group", fleet_group)
    if devices_given:
        rows, source = params["devices"], "devices"
        if not isinstance(rows, list):
            raise ValidationError("devices", f"must be a list, got {type(rows).__name__}")
        empty_input = "devices is an empty list" if not rows else None
    else:
        path = params["devices_file"]
        rows, source = load_device_rows(path), "devices_file"
        empty_input = None
        if not rows:
            try:
                size = os.path.getsize(path)
            except OSError:
                size = None
            what = "is empty (0 bytes)" if size == 0 else "holds no devices"
            empty_input = f"devices_file {path} {what}"
    defaults = params.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise ValidationError("defaults", f"must be a dictionary, got {type(defaults).__name__}")
    if "name" in defaults:
        raise ValidationError("defaults.name", "a name cannot be a default: every device needs its own")
    devices: List[DesiredDevice] = []
    seen: Dict[str, str] = {}
    for index, raw in enumerate(rows):
        label = _device_label(index, raw, source)
        if not isinstance(raw, Mapping):
            raise ValidationError(label, f"must be a dictionary with at least a name, got {type(raw).__name__}")
        device = validate_device(merge_defaults(defaults, raw), label)
        if device.name in seen:
            raise ValidationError(f"{label}.name", f"{device.name!r} is listed twice (first as {seen[device.name]})")
        seen[device.name] = label
        groups = set(device.thing_groups or []) | {fleet_group}
        if len(groups) > MAX_THING_GROUPS_PER_THING:
            raise ValidationError(
                f"{label}.thing_groups",
                f"a thing can be in at most {MAX_THING_GROUPS_PER_THING} thing groups "
                f"(the fleet group included), got {len(groups)}",
            )
        devices.append(device)
    spec = FleetSpec(devices=devices, fleet_group=fleet_group, empty_input=empty_input)
    spec.prune = bool(params.get("prune"))
    spec.prune_all = bool(params.get("prune_all"))
    if spec.prune_all and not spec.prune:
        raise ValidationError("prune_all", "only takes effect with prune: true; set both to retire the whole fleet")
    spec.max_prune = parse_max_prune(params.get("max_prune", "10%") if params.get("max_prune") is not None else "10%")
    for option, minimum in (("max_failures", 0), ("concurrency", 1)):
        value = params.get(option)
        if value is None:
            value = 0 if option == "max_failures" else 10
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValidationError(option, f"must be an integer of at least {minimum}, got {value!r}")
        setattr(spec, option, value)
    replace = params.get("replace_lost_keys")
    if replace is not None and not isinstance(replace, bool):
        raise ValidationError("replace_lost_keys", f"must be true or false, got {replace!r}")
    spec.replace_lost_keys = bool(replace)
    spec.output_dir = params.get("output_dir")
    declared = validate_declared(params.get("declared_resources"), ("policies", "thing_types"))
    spec.declared_policies, spec.declared_thing_types = declared["policies"], declared["thing_types"]
    needs_files = [d.name for d in devices if d.certificate in ("aws_keys", "csr")]
    if needs_files and not spec.output_dir:
        raise ValidationError(
            "output_dir", f"is required when a device's certificate is aws_keys or csr (e.g. {needs_files[0]})"
        )
    if spec.output_dir:
        check_outside_collections("output_dir", spec.output_dir)
        _check_writable_dir("output_dir", spec.output_dir)
    spec.api_rates = validate_api_rates(params.get("api_rates"))
    interval = params.get("progress_interval")
    if interval is not None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0:
            raise ValidationError("progress_interval", f"must be a number of seconds, 0 or more, got {interval!r}")
        spec.progress_interval = float(interval)
    for option in ("plan_path", "report_path", "progress_path"):
        path = params.get(option)
        if path:
            # A directory a fresh checkout lacks is made when the file is written (check mode included).
            _check_writable_dir(option, os.path.dirname(os.path.abspath(path)))
            setattr(spec, option, path)
    return spec


def check_outside_collections(field_name: str, path: str) -> None:
    """Keys never go inside an installed collection: upgrading it (install --force) deletes them."""
    parts = os.path.abspath(os.path.expanduser(path)).split(os.sep)
    if "ansible_collections" in parts:
        raise ValidationError(
            field_name,
            f"{path} is inside an ansible_collections tree, which ansible-galaxy replaces on every install or "
            "upgrade (the device keys would be deleted); choose a directory outside it, for example under /srv or "
            "your home directory",
        )


def _check_writable_dir(field_name: str, path: str) -> None:
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(os.path.abspath(probe))
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ValidationError(field_name, f"{probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValidationError(field_name, f"{probe} is not writable")


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


# ---------------------------------------------------------------------------
# Reading the remote state
# ---------------------------------------------------------------------------


@dataclass
class Snapshot:
    """What exists: enough for the planner to decide every step without another call."""

    groups: Dict[str, Optional[Set[str]]] = field(default_factory=dict)  # group -> member names (None: no group)
    things: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # name -> thing_type, attributes, version
    principals: Dict[str, List[str]] = field(default_factory=dict)  # thing -> principal ARNs (where read)
    certificates: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # id -> arn, status, created
    policy_targets: Dict[str, Optional[Set[str]]] = field(default_factory=dict)  # policy -> target ARNs
    # Thing types a device is to get (created or changed things only) -> {"deprecated": bool} (None: no type).
    thing_types: Dict[str, Optional[Dict[str, Any]]] = field(default_factory=dict)
    local: Dict[str, LocalDevice] = field(default_factory=dict)
    recovered: Dict[str, Dict[str, str]] = field(default_factory=dict)  # name -> {id, pem} found by public key


def cert_id_of_arn(arn: str) -> Optional[str]:
    return iot_access.certificate_id_of_arn(arn)


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def read_group_members(call: Call, group: str) -> Optional[Set[str]]:
    things = iot_access.pages_unless_gone(
        call, "list_things_in_thing_group", "things", thingGroupName=group, maxResults=PAGE_SIZE
    )
    return None if things is None else set(things)


def read_policy_targets(call: Call, policy: str) -> Optional[Set[str]]:
    targets = iot_access.pages_unless_gone(
        call, "list_targets_for_policy", "targets", policyName=policy, pageSize=PAGE_SIZE
    )
    return None if targets is None else set(targets)


def read_thing_type(call: Call, name: str) -> Optional[Dict[str, Any]]:
    answer = iot_access.unless_gone(call, "describe_thing_type", thingTypeName=name)
    if answer is None:
        return None
    return {"deprecated": bool((answer.get("thingTypeMetadata") or {}).get("deprecated"))}


def types_to_check(spec: FleetSpec, things: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """The thing types a device would get by this run: only those are read (AWS refuses a missing or
    deprecated one at CreateThing/UpdateThing; a thing that already has its type needs no read)."""
    wanted = set()
    for device in spec.devices:
        current = things.get(device.name)
        if device.thing_type and (current is None or current["thing_type"] != device.thing_type):
            wanted.add(device.thing_type)
    return sorted(wanted)


def read_certificates(call: Call) -> Dict[str, Dict[str, Any]]:
    certs = call.pages("list_certificates", "certificates", pageSize=PAGE_SIZE)
    return {
        c["certificateId"]: {
            "arn": c["certificateArn"],
            "status": c.get("status"),
            "created": _timestamp(c.get("creationDate")),
        }
        for c in certs
    }


def _thing_view(thing: Mapping[str, Any]) -> Dict[str, Any]:
    """The fields the planner compares, from a ListThings entry or a DescribeThing answer (same names)."""
    view = iot_access.thing_view(thing)
    return {key: view[key] for key in ("thing_type", "attributes", "version", "arn")}


def listing_page_budget(devices: int, rates: Optional[Mapping[str, float]] = None) -> int:
    """How many ListThings pages cost no more quota-time than one DescribeThing per device.

    A page (250 things) takes 1/10 s of ListThings quota, a DescribeThing 1/350 s of its own: 35 describes
    cost one page. Paging the account up to this budget and describing the devices not seen by then is
    never more than twice the cheaper of the two reads (all pages or all describes), whatever the size of
    the account, which is unknown until it has been read.
    """
    rates = rates or DEFAULT_TPS
    describes_per_page = rates["DescribeThing"] / rates["ListThings"]
    return max(1, math.ceil(devices / describes_per_page))


def read_things(
    call: Call, names: Set[str], concurrency: int, rates: Optional[Mapping[str, float]] = None
) -> Dict[str, Dict[str, Any]]:
    """The things among ``names`` that exist: ListThings pages within the budget, then DescribeThing for the rest."""
    things: Dict[str, Dict[str, Any]] = {}
    params: Dict[str, Any] = {"maxResults": PAGE_SIZE}
    complete = False
    for _page in range(listing_page_budget(len(names), rates)):
        page = call("list_things", **params)
        for thing in page.get("things", []):
            if thing["thingName"] in names:
                things[thing["thingName"]] = _thing_view(thing)
        if not page.get("nextToken"):
            complete = True
            break
        params["nextToken"] = page["nextToken"]
    if complete:
        return things

    def describe(name: str) -> Optional[Dict[str, Any]]:
        answer = iot_access.unless_gone(call, "describe_thing", thingName=name)
        return None if answer is None else _thing_view(answer)

    unseen = sorted(names - set(things))
    for name, view in zip(unseen, _parallel(concurrency, describe, unseen)):
        if view is not None:
            things[name] = view
    return things


def _parallel(concurrency: int, func: Callable[[Any], Any], items: List[Any]) -> List[Any]:
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(items)))) as pool:
        return list(pool.map(func, items))


def read_fleet_state(call: Call, spec: FleetSpec, progress: Optional[Progress] = None) -> Snapshot:
    """The state the planner needs, from as few calls as the input allows.

    Listings of different APIs draw on different quotas, so they overlap: the group and thing listings
    together, then the per-thing principal listings (the long part) beside the certificate and policy
    listings.
    """
    snap = Snapshot()
    for device in spec.devices:
        snap.local[device.name] = read_local_device(spec.output_dir, device.name)
    needs_certs = any(d.certificate != "none" for d in spec.devices)
    markers = any(local.records for local in snap.local.values())
    wanted = {d.name for d in spec.devices}
    with ThreadPoolExecutor(max_workers=2) as side:
        groups = {group: side.submit(read_group_members, call, group) for group in spec.named_groups}
        # Only pruning needs the fleet group's members before the things are read (they are read too).
        pruned = sorted((groups[spec.fleet_group].result() or set()) - wanted) if spec.prune else []
        rates = {**DEFAULT_TPS, **spec.api_rates}
        snap.things = read_things(call, wanted | set(pruned), spec.concurrency, rates)
        snap.groups = {group: future.result() for group, future in groups.items()}
        types = {name: side.submit(read_thing_type, call, name) for name in types_to_check(spec, snap.things)}
        certificates = side.submit(read_certificates, call) if (needs_certs or pruned or markers) else None
        targets = {policy: side.submit(read_policy_targets, call, policy) for policy in spec.named_policies}
        need_principals = [d.name for d in spec.devices if d.certificate != "none" and d.name in snap.things] + [
            name for name in pruned if name in snap.things
        ]
        if progress:
            progress.start_phase("read", len(need_principals))

        def principals_of(name: str) -> List[str]:
            principals = call.pages("list_thing_principals", "principals", thingName=name, maxResults=PAGE_SIZE)
            if progress:
                progress.advance()
            return principals

        results = _parallel(spec.concurrency, principals_of, need_principals)
        snap.principals = dict(zip(need_principals, results))
        if certificates is not None:
            snap.certificates = certificates.result()
        snap.policy_targets = {policy: future.result() for policy, future in targets.items()}
        snap.thing_types = {name: future.result() for name, future in types.items()}
    # A device with its key on disk but no certificate file: look for its certificate by public key
    # among the certificates attached to its thing and, when a call of an earlier run was left unfinished
    # (killed between writing the key and the certificate), among the INACTIVE certificates made within that
    # call's window (DescribeCertificate only for those).
    lookups = []
    file_ids = {local.cert_id for local in snap.local.values() if local.cert_id}
    now = time.time()
    for device in spec.devices:
        local = snap.local[device.name]
        if device.certificate in ("aws_keys", "csr") and local.key_public and not local.cert_id:
            for arn in snap.principals.get(device.name, []):
                if cert_id_of_arn(arn):
                    lookups.append((device.name, cert_id_of_arn(arn)))
            windows = [r.window(now) for r in local.records]
            # A CSR certificate is made ACTIVE; either way only the device's own public key can match it.
            statuses = ("INACTIVE", "ACTIVE") if device.certificate == "csr" else ("INACTIVE",)
            for cert_id, info in sorted(snap.certificates.items()):
                if (
                    info["status"] in statuses
                    and cert_id not in file_ids
                    and any(low <= info["created"] <= high for low, high in windows)
                ):
                    lookups.append((device.name, cert_id))

    def describe(item: Tuple[str, str]) -> Tuple[str, str, Optional[str]]:
        name, cert_id = item
        description = iot_access.describe_certificate(call, cert_id)
        return name, cert_id, None if description is None else description.get("certificatePem")

    for name, cert_id, pem in _parallel(spec.concurrency, describe, lookups):
        if pem and name not in snap.recovered:
            try:
                if crypto.certificate_public_key(pem) == snap.local[name].key_public:
                    snap.recovered[name] = {"id": cert_id, "pem": pem}
            except crypto.CryptoError:
                continue
    return snap


# ---------------------------------------------------------------------------
# Planning (pure)
# ---------------------------------------------------------------------------


@dataclass
class DevicePlan:
    name: str
    action: str = "unchanged"  # create | update | unchanged | prune | failed
    changes: List[str] = field(default_factory=list)
    create_thing: Optional[Dict[str, Any]] = None
    update_thing: Optional[Dict[str, Any]] = None
    groups_to_add: List[str] = field(default_factory=list)
    groups_to_remove: List[str] = field(default_factory=list)
    # Certificate: the one to use (id) or one to make (new_certificate = aws_keys|csr|pem).
    certificate_id: Optional[str] = None
    certificate_arn: Optional[str] = None
    new_certificate: Optional[str] = None
    write_certificate_pem: Optional[str] = None  # recovered by public key: write the file
    fix_key_mode: bool = False  # the key file is readable by others: make it 0600
    attach_certificate: bool = False
    policies_to_attach: List[str] = field(default_factory=list)
    policies_to_detach: List[str] = field(default_factory=list)
    activate: bool = False
    # The key of the certificate in use is not in output_dir here: KEY_NOT_HERE (None: it is, or no key file).
    key: Optional[str] = None
    # replace_lost_keys: the certificates (id, ARN) the new one replaces, detached and deleted after it is ACTIVE.
    replace_certificates: List[Tuple[str, str]] = field(default_factory=list)
    error: Optional[str] = None
    # Prune only: principal ARNs to decommission and groups to leave.
    prune_principals: List[str] = field(default_factory=list)
    before: Dict[str, Any] = field(default_factory=dict)
    after: Dict[str, Any] = field(default_factory=dict)


@dataclass
class FleetPlan:
    devices: List[DevicePlan]
    groups_to_create: List[str]
    records: List[CallRecord]  # certificate calls of earlier runs that may have left a certificate behind
    # Check mode: declared_resources that do not exist yet, planned as made by earlier tasks of the play.
    made_by_earlier_tasks: Dict[str, List[str]] = field(default_factory=dict)

    def counts(self) -> Dict[str, int]:
        counts = {"create": 0, "update": 0, "unchanged": 0, "prune": 0, "failed": 0}
        for device in self.devices:
            counts[device.action] = counts.get(device.action, 0) + 1
        counts["create_thing_group"] = len(self.groups_to_create)
        return counts

    @property
    def changing(self) -> List[DevicePlan]:
        return [d for d in self.devices if d.action in ("create", "update", "prune")]


def _certificate_view(status: Optional[str], cert_id: Optional[str], policies: List[str]) -> Dict[str, Any]:
    return {"certificate_id": cert_id, "status": status, "policies": sorted(policies)}


def thing_type_error(device: DesiredDevice, spec: FleetSpec, snap: Snapshot) -> Optional[str]:
    """Why AWS would refuse the thing type this device is to get (None: it would not, or it is not read)."""
    name = device.thing_type
    current = snap.things.get(device.name)
    if not name or name not in snap.thing_types or (current is not None and current["thing_type"] == name):
        return None
    info = snap.thing_types[name]
    if info is None:
        if spec.check_mode and name in spec.declared_thing_types:
            return None
        if name in spec.declared_thing_types:
            return (
                f"thing_type: thing type {name} does not exist, though declared_resources.thing_types says an "
                "earlier task creates it; check that task"
            )
        return (
            f"thing_type: thing type {name} does not exist; create it first (iotfleet.provisioning.thing_type), or "
            "list it in declared_resources.thing_types when an earlier task of this play creates it"
        )
    if info["deprecated"]:
        return (
            f"thing_type: thing type {name} is deprecated and AWS gives it to no thing; undeprecate it "
            "(iotfleet.provisioning.thing_type with deprecated: false) or choose another type"
        )
    return None


def plan_device(
    device: DesiredDevice, spec: FleetSpec, snap: Snapshot, named_groups: Optional[List[str]] = None
) -> DevicePlan:
    # named_groups: spec.named_groups, worked out once per plan (it reads every device: once per device made
    # planning quadratic, 85 s for 10,000 devices).
    named = spec.named_groups if named_groups is None else named_groups
    plan = DevicePlan(name=device.name)
    current = snap.things.get(device.name)
    plan.error = thing_type_error(device, spec, snap)
    if plan.error:
        plan.action = "failed"
        return plan
    # Thing
    if current is None:
        attributes = attributes_after({}, device.attributes, True)
        _check_attribute_count(f"{device.name}.attributes", attributes, bool(device.thing_type))
        plan.create_thing = {"thingName": device.name}
        if device.thing_type:
            plan.create_thing["thingTypeName"] = device.thing_type
        if attributes:
            plan.create_thing["attributePayload"] = {"attributes": attributes}
        plan.changes.append("create thing")
        thing_type = device.thing_type
    else:
        thing_type = current["thing_type"] if device.thing_type is None else device.thing_type
        attributes = attributes_after(current["attributes"], device.attributes, device.purge_attributes)
        _check_attribute_count(f"{device.name}.attributes", attributes, bool(thing_type))
        update: Dict[str, Any] = {}
        if thing_type != current["thing_type"]:
            update["thingTypeName"] = thing_type
            plan.changes.append(f"set thing type {thing_type}")
        delta = attribute_delta(current["attributes"], attributes)
        if delta:
            update["attributePayload"] = {"attributes": delta, "merge": True}
            plan.changes.append("update attributes " + ", ".join(sorted(delta)))
        if update:
            update["thingName"] = device.name
            if current.get("version") is not None:
                update["expectedVersion"] = current["version"]
            plan.update_thing = update
    # Groups: the fleet group always; other named groups as the device lists them.
    desired_groups = {spec.fleet_group} | set(device.thing_groups or [])
    for group in sorted(desired_groups):
        members = snap.groups.get(group)
        if members is None or device.name not in members:
            plan.groups_to_add.append(group)
    if device.thing_groups is not None:
        for group in named:
            if group in desired_groups:
                continue
            members = snap.groups.get(group) or set()
            if device.name in members:
                plan.groups_to_remove.append(group)
    if plan.groups_to_add:
        plan.changes.append("add to groups " + ", ".join(plan.groups_to_add))
    if plan.groups_to_remove:
        plan.changes.append("remove from groups " + ", ".join(plan.groups_to_remove))
    before_groups = sorted(g for g in named if device.name in (snap.groups.get(g) or set()))
    after_groups = sorted((set(before_groups) | set(plan.groups_to_add)) - set(plan.groups_to_remove))
    plan.before = (
        {"thing_type": current["thing_type"], "attributes": current["attributes"], "thing_groups": before_groups}
        if current
        else {}
    )
    plan.after = {"thing_type": thing_type or None, "attributes": attributes, "thing_groups": after_groups}
    # Certificate
    if device.certificate != "none":
        will_exist = set(spec.declared_policies) if spec.check_mode else set()
        _plan_certificate(device, snap, plan, spec.output_dir, spec.replace_lost_keys, will_exist)
        local = snap.local.get(device.name)
        if (
            not plan.error
            and device.certificate in ("aws_keys", "csr")
            and local is not None
            and local.key_public is not None
            and local.key_mode is not None
            and local.key_mode != crypto.PRIVATE_KEY_MODE
        ):
            # As the csr module does: a private key readable by others is made 0600 (reported as a change).
            plan.fix_key_mode = True
            plan.changes.append(f"set {KEY_FILE} mode to 0600 (was {local.key_mode:04o})")
            if plan.before:
                plan.before["key_file_mode"] = f"{local.key_mode:04o}"
            plan.after["key_file_mode"] = f"{crypto.PRIVATE_KEY_MODE:04o}"
    if plan.error:
        plan.action = "failed"
    elif current is None:
        plan.action = "create"
    elif plan.changes:
        plan.action = "update"
    return plan


def _attached_in_order(snap: Snapshot, principals: List[str]) -> List[str]:
    """The ids of the certificates attached to a thing that exist: ACTIVE first, then the newest first."""
    ids = {cert_id_of_arn(arn) for arn in principals} - {None}
    found = [cert_id for cert_id in ids if cert_id in snap.certificates]
    return sorted(
        found,
        key=lambda i: (snap.certificates[i]["status"] != "ACTIVE", -snap.certificates[i]["created"], i),
    )


def _plan_certificate(
    device: DesiredDevice,
    snap: Snapshot,
    plan: DevicePlan,
    output_dir: Optional[str] = None,
    replace_lost_keys: bool = False,
    will_exist: Optional[Set[str]] = None,
) -> None:
    """The certificate steps; ``will_exist``: missing policies an earlier task creates (check mode only)."""
    will_exist = will_exist or set()
    local = snap.local.get(device.name) or LocalDevice()
    principals = snap.principals.get(device.name, [])
    attached_ids = {cert_id_of_arn(arn) for arn in principals}
    cert_id: Optional[str] = None
    if device.certificate == "pem":
        cert_id = device.certificate_id
        if cert_id not in snap.certificates:
            plan.new_certificate = "pem"
    else:
        if local.key_error:
            plan.error = local.key_error
            return
        if local.cert_id:
            if local.key_public is not None and local.cert_public != local.key_public:
                plan.error = f"{CERT_FILE} does not match {KEY_FILE}: fix or remove the device's files"
                return
            if local.key_public is None and device.certificate == "aws_keys":
                plan.error = f"{CERT_FILE} exists but {KEY_FILE} is missing: the key is lost; remove the files"
                return
            if local.cert_id in snap.certificates:
                cert_id = local.cert_id
        elif device.name in snap.recovered:
            cert_id = snap.recovered[device.name]["id"]
            plan.write_certificate_pem = snap.recovered[device.name]["pem"]
            plan.changes.append(f"write {CERT_FILE} of the certificate that has the key's public key")
        if cert_id is None and local.key_public is not None and device.certificate == "aws_keys":
            # AWS makes a new key with every certificate: making one would replace this key file.
            why = (
                f"its certificate {local.cert_id} in {CERT_FILE} no longer exists in AWS IoT"
                if local.cert_id
                else f"its certificate was not found ({CERT_FILE} is missing and no certificate attached to the "
                "thing, or left by an interrupted run, has the key's public key)"
            )
            key_path = device_paths(output_dir, device.name)["key"] if output_dir else KEY_FILE
            plan.error = (
                f"{key_path} exists but {why}; a device key is never replaced by a new one: "
                f"restore the key's certificate in {CERT_FILE}, or move the device's {KEY_FILE} (and "
                f"{CERT_FILE}) away to have a new key and certificate made"
            )
            return
        if cert_id is None and local.key_public is None and local.cert_id is None:
            # No files here (a fresh controller): AWS says what exists. A certificate attached to the thing
            # (ACTIVE or INACTIVE) is the device's; its key is on the device, never made again for lack of files.
            attached = [
                i
                for i in _attached_in_order(snap, principals)
                if snap.certificates[i]["status"] in ("ACTIVE", "INACTIVE")
            ]
            if attached:
                plan.key = KEY_NOT_HERE
                if replace_lost_keys:
                    plan.replace_certificates = [(i, snap.certificates[i]["arn"]) for i in attached]
                else:
                    cert_id = attached[0]
        if cert_id is None:
            plan.new_certificate = device.certificate
    if plan.new_certificate:
        plan.changes.append(f"create certificate ({plan.new_certificate})")
        for old, _arn in plan.replace_certificates:
            plan.changes.append(f"replace certificate {old} ({KEY_FILE} {KEY_NOT_HERE})")
        plan.attach_certificate = True
        # CSR certificates are made ACTIVE (the key was on disk before the call: a lost answer's certificate is
        # found again, or swept, by that key); the others INACTIVE, activated once attached (one more call).
        plan.activate = plan.new_certificate != "csr"
        plan.policies_to_attach = list(device.policies or [])
        status = None
        current_policies: List[str] = []
    else:
        info = snap.certificates[cert_id]
        plan.certificate_id = cert_id
        plan.certificate_arn = info["arn"]
        status = info["status"]
        plan.attach_certificate = cert_id not in attached_ids
        plan.activate = status != "ACTIVE"
        current_policies = sorted(p for p, targets in snap.policy_targets.items() if targets and info["arn"] in targets)
        if device.policies is not None:
            plan.policies_to_attach = [p for p in device.policies if p not in current_policies]
            plan.policies_to_detach = [p for p in current_policies if p not in device.policies]
    missing = [p for p in device.policies or [] if snap.policy_targets.get(p) is None and p not in will_exist]
    if missing:
        plan.error = (
            f"policies: policy {missing[0]} does not exist; create it first (iotfleet.provisioning.policy), or "
            "list it in declared_resources.policies when an earlier task of this play creates it (that list "
            "stands in for the policy in check mode only)"
        )
        return
    if plan.new_certificate is None and plan.attach_certificate:
        plan.changes.append("attach certificate")
    if plan.policies_to_attach and not plan.new_certificate:
        plan.changes.append("attach policies " + ", ".join(plan.policies_to_attach))
    if plan.policies_to_detach:
        plan.changes.append("detach policies " + ", ".join(plan.policies_to_detach))
    if plan.activate and not plan.new_certificate:
        plan.changes.append("activate certificate")
    if plan.before:
        if plan.replace_certificates:
            old_id, old_arn = plan.replace_certificates[0]
            old_policies = sorted(p for p, targets in snap.policy_targets.items() if targets and old_arn in targets)
            plan.before["certificate"] = _certificate_view(snap.certificates[old_id]["status"], old_id, old_policies)
            plan.before["certificate"]["key"] = KEY_NOT_HERE
        else:
            plan.before["certificate"] = _certificate_view(status, plan.certificate_id, current_policies)
            if plan.key:
                plan.before["certificate"]["key"] = plan.key
    after_policies = device.policies if device.policies is not None else current_policies
    plan.after["certificate"] = _certificate_view(
        "ACTIVE", plan.certificate_id or "(new)" if plan.new_certificate else plan.certificate_id, after_policies
    )
    if plan.key and not plan.new_certificate:
        plan.after["certificate"]["key"] = plan.key


def plan_fleet(spec: FleetSpec, snap: Snapshot) -> FleetPlan:
    """Per device the steps that make it match, the prune list, and the guard. No call, no file."""
    devices = []
    named_groups = spec.named_groups
    for device in spec.devices:
        try:
            devices.append(plan_device(device, spec, snap, named_groups))
        except ValidationError as e:
            devices.append(DevicePlan(name=device.name, action="failed", error=str(e)))
    managed = snap.groups.get(spec.fleet_group) or set()
    wanted = {d.name for d in spec.devices}
    if spec.prune:
        to_prune = sorted(managed - wanted)
        allowed = prune_allowance(spec.max_prune, len(managed))
        if to_prune and not spec.prune_all and (spec.empty_input or len(to_prune) == len(managed)):
            # Retiring the whole fleet is a decision of its own, never the side effect of an empty or wrong
            # input, whatever max_prune allows.
            why = (
                spec.empty_input
                or f"none of the {len(managed)} devices in thing group {spec.fleet_group} is in the input"
            )
            raise ValidationError(
                "prune",
                f"{why}: prune would decommission every device of thing group {spec.fleet_group} "
                f"({len(to_prune)}); nothing was changed. An input with no devices, or none of the current ones, "
                "never prunes whatever max_prune says; to retire the whole fleet set prune_all: true "
                "(run it in check mode first to see what it removes)",
            )
        # prune_all with an empty input is the decision to retire the fleet; otherwise the guard stands.
        if len(to_prune) > allowed and not (spec.prune_all and spec.empty_input):
            kind, amount = spec.max_prune
            limit = f"{amount:g}%" if kind == "percent" else f"{int(amount)}"
            raise ValidationError(
                "max_prune",
                f"prune would remove {len(to_prune)} of the {len(managed)} devices in thing group "
                f"{spec.fleet_group} but max_prune {limit} allows {allowed}; nothing was changed. Check the input "
                "(a truncated file?) or raise max_prune",
            )
        devices.extend(plan_prune(name, snap) for name in to_prune)
    groups_to_create = sorted(g for g in spec.named_groups if snap.groups.get(g) is None)
    records = [r for device in spec.devices for r in (snap.local.get(device.name) or LocalDevice()).records]
    made_earlier: Dict[str, List[str]] = {}
    if spec.check_mode:
        made_earlier = {
            "policies": [p for p in spec.declared_policies if snap.policy_targets.get(p, set()) is None],
            "thing_types": [t for t in spec.declared_thing_types if t in snap.thing_types and not snap.thing_types[t]],
        }
    return FleetPlan(
        devices=devices, groups_to_create=groups_to_create, records=records, made_by_earlier_tasks=made_earlier
    )


def plan_prune(name: str, snap: Snapshot) -> DevicePlan:
    """A device to decommission, with the certificates it takes with it (shown in the plan, diff and report)."""
    plan = DevicePlan(name=name, action="prune", changes=["decommission"])
    plan.prune_principals = list(snap.principals.get(name, []))
    plan.groups_to_remove = sorted(g for g, members in snap.groups.items() if members and name in members)
    certificates = []
    for arn in plan.prune_principals:
        cert_id = cert_id_of_arn(arn)
        if cert_id:
            status = (snap.certificates.get(cert_id) or {}).get("status")
            certificates.append({"certificate_id": cert_id, "status": status})
            plan.changes.append(
                f"detach certificate {cert_id}, then deactivate and delete it unless another thing uses it"
            )
        else:
            plan.changes.append(f"detach principal {arn}")
    if plan.groups_to_remove:
        plan.changes.append("remove from groups " + ", ".join(plan.groups_to_remove))
    plan.changes.append("delete thing")
    plan.certificate_id = ";".join(c["certificate_id"] for c in certificates) or None
    thing = snap.things.get(name)
    if thing:
        plan.before = {
            "thing_type": thing["thing_type"],
            "attributes": thing["attributes"],
            "thing_groups": plan.groups_to_remove,
            "certificates": certificates,
        }
    return plan


def summary_line(counts: Mapping[str, int], check_mode: bool, fleet_group: str) -> str:
    """One line for the console: ``sensors: 3 create, 5 update, 2 prune, 43 unchanged`` (check mode says so)."""
    parts = [f"{counts.get(action, 0)} {action}" for action in ("create", "update", "prune", "unchanged")]
    if counts.get("failed"):
        parts.append(f"{counts['failed']} failed")
    if counts.get("create_thing_group"):
        verb = "to create" if check_mode else "created"
        parts.append(f"{counts['create_thing_group']} thing group(s) {verb}")
    return f"{fleet_group}: " + ("check mode, nothing changed: " if check_mode else "") + ", ".join(parts)


def plan_result(plan: FleetPlan) -> Dict[str, Any]:
    listing = [
        {"name": d.name, "action": d.action, "changes": d.changes, **({"error": d.error} if d.error else {})}
        for d in plan.devices
        if d.action != "unchanged"
    ]
    keys_elsewhere = [d.name for d in plan.devices if d.key == KEY_NOT_HERE and not d.replace_certificates]
    return {
        "counts": plan.counts(),
        "thing_groups_to_create": plan.groups_to_create,
        "devices": listing[:PLAN_LISTING_LIMIT],
        "devices_listed": min(len(listing), PLAN_LISTING_LIMIT),
        "devices_not_listed": max(0, len(listing) - PLAN_LISTING_LIMIT),
        "pending_certificate_markers": len(plan.records),
        # Devices whose attached certificate is in use though its key is not in output_dir here (first 50).
        "key_not_on_this_controller": {"count": len(keys_elsewhere), "devices": keys_elsewhere[:PLAN_LISTING_LIMIT]},
        "made_by_earlier_tasks": plan.made_by_earlier_tasks,
    }


def plan_diff(plan: FleetPlan) -> List[Dict[str, Any]]:
    """One diff per changing device (the first 50), each under its own header: a device that goes and one
    that comes are never shown as one changed into the other."""
    return [
        {
            "before_header": f"device {d.name}",
            "after_header": f"device {d.name} ({d.action})",
            "before": d.before or {},
            "after": {} if d.action == "prune" else d.after,
        }
        for d in plan.changing[:PLAN_LISTING_LIMIT]
    ]


def full_plan_document(plan: FleetPlan) -> Dict[str, Any]:
    return {
        "counts": plan.counts(),
        "thing_groups_to_create": plan.groups_to_create,
        "made_by_earlier_tasks": plan.made_by_earlier_tasks,
        "devices": [
            {
                "name": d.name,
                "action": d.action,
                "changes": d.changes,
                "error": d.error,
                "key": d.key,
                "before": d.before,
                "after": d.after,
            }
            for d in plan.devices
        ],
    }


def write_json(path: str, data: Any) -> None:
    # A plan or report directory a fresh checkout lacks is made (validate_fleet checked it can be).
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    crypto.write_file_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str).encode(), 0o644)


# ---------------------------------------------------------------------------
# Applying
# ---------------------------------------------------------------------------


class DeviceFailure(Exception):
    def __init__(self, step: str, error: BaseException):
        super().__init__(f"{step}: {error}")
        self.step = step
        self.error = error


def _step(name: str, func: Callable[[], Any]) -> Any:
    try:
        return func()
    except DeviceFailure:
        raise
    except Exception as e:  # every failure of one device is recorded; the others go on
        raise DeviceFailure(name, e) from e


def _create_certificate(call: Call, spec: FleetSpec, device: DesiredDevice, plan: DevicePlan) -> None:
    """Make the device's certificate (ACTIVE from a CSR, else INACTIVE), its files on disk before this returns."""
    if plan.new_certificate == "pem":
        try:
            response = call("register_certificate_without_ca", certificatePem=device.certificate_pem, status="INACTIVE")
            plan.certificate_arn = response["certificateArn"]
        except ClientError as e:
            if not is_error(e, "ResourceAlreadyExistsException", "CertificateConflictException"):
                raise
            info = call("describe_certificate", certificateId=device.certificate_id)["certificateDescription"]
            plan.certificate_arn = info["certificateArn"]
        plan.certificate_id = device.certificate_id
        return
    paths = device_paths(spec.output_dir, device.name)
    os.makedirs(paths["dir"], mode=0o700, exist_ok=True)
    _remove_stale_temporaries(paths["dir"])
    if plan.new_certificate == "csr":
        existing = crypto.read_file(paths["key"])
        if existing is not None:
            key = crypto.load_private_key(existing)
        else:
            _changed, key, _info = ensure_private_key(paths["key"], KEY_SPEC, False, False)
        csr = make_csr(key, {"common_name": device.name}).decode()
        with crypto.PendingFile(paths["cert"], crypto.CERTIFICATE_MODE) as cert_file:
            response = _recorded_call(
                call,
                spec.output_dir,
                device.name,
                "csr",
                (cert_file,),
                "create_certificate_from_csr",
                certificateSigningRequest=csr,
                setAsActive=True,
            )
    else:
        if os.path.lexists(paths["key"]):
            # The planner refuses this; a key that appeared since is not replaced either.
            raise ValidationError(
                f"{device.name}", f"{paths['key']} exists: a device key is never replaced; move it away first"
            )
        with crypto.PendingFile(paths["key"], crypto.PRIVATE_KEY_MODE) as key_file, crypto.PendingFile(
            paths["cert"], crypto.CERTIFICATE_MODE
        ) as cert_file:
            response = _recorded_call(
                call,
                spec.output_dir,
                device.name,
                "aws_keys",
                (key_file, cert_file),
                "create_keys_and_certificate",
                setAsActive=False,
            )
    plan.certificate_id = response["certificateId"]
    plan.certificate_arn = response["certificateArn"]


class _AttemptWatch:
    """The attempts of one certificate-creating call, counted in its own thread from botocore's events.

    Each attempt is added to the call's record on disk before it is sent; an attempt counts as answered when
    an HTTP answer below 500 came back (a 5xx or a dropped connection may have made a certificate).
    """

    def __init__(self, output_dir: str, records: List[CallRecord], record: CallRecord):
        self.output_dir = output_dir
        self.records = records
        self.record = record
        self.started = 0
        self.answered = 0

    def before_attempt(self) -> None:
        self.started += 1
        if self.started > self.record.attempts:
            self.record.attempts = self.started
            self.record.last = time.time()
            write_records(self.output_dir, self.record.device, self.records)

    def answer(self, status: int) -> None:
        if status < 500:
            self.answered += 1


_WATCH = threading.local()


def _before_attempt(**_kwargs: Any) -> None:
    watch = getattr(_WATCH, "watch", None)
    if watch is not None:
        watch.before_attempt()


def _after_attempt(http_response: Any = None, **_kwargs: Any) -> None:
    watch = getattr(_WATCH, "watch", None)
    if watch is not None and http_response is not None:
        watch.answer(int(getattr(http_response, "status_code", 500) or 500))


def watch_certificate_calls(call: Any) -> bool:
    """Count the attempts of the certificate-creating calls made through ``call``'s boto3 client, if it has one."""
    events = getattr(getattr(getattr(call, "client", None), "meta", None), "events", None)
    if events is None or not hasattr(events, "register"):
        return False
    for operation in CREATE_OPERATIONS.values():
        events.register(f"before-call.iot.{operation}", _before_attempt, unique_id=f"iotfleet-fleet-before-{operation}")
        events.register(f"after-call.iot.{operation}", _after_attempt, unique_id=f"iotfleet-fleet-after-{operation}")
    return True


def _device_records(output_dir: str, name: str) -> List[CallRecord]:
    path = device_paths(output_dir, name)["marker"]
    data = crypto.read_file(path)
    if data is None:
        return []
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        mtime = time.time()
    return _parse_records(name, data, mtime)


def _end_attempts(watch: _AttemptWatch) -> None:
    _WATCH.watch = None
    watch.record.ended = time.time()
    # Known only when the client's events were seen; otherwise every attempt may have been lost.
    watch.record.lost = watch.started - watch.answered if watch.started else None


def _recorded_call(
    call: Call, output_dir: str, name: str, source: str, files: Tuple[Any, ...], method: str, **params: Any
) -> Dict[str, Any]:
    """A certificate-creating call, recorded in the device's marker file before its first attempt; its answer's
    files committed. The record is dropped when every attempt was answered and the files are written."""
    records = _device_records(output_dir, name)
    now = time.time()
    record = CallRecord(device=name, source=source, started=now, last=now)
    records.append(record)
    write_records(output_dir, name, records)
    watch = _AttemptWatch(output_dir, records, record)
    _WATCH.watch = watch
    try:
        response = call(method, **params)
    except BaseException:
        _end_attempts(watch)
        if record.lost == 0:
            records.remove(record)  # every attempt answered, none with a certificate: nothing can be left
        with contextlib.suppress(OSError):
            write_records(output_dir, name, records)
        raise
    _end_attempts(watch)
    try:
        if source == "aws_keys":
            files[0].commit(response["keyPair"]["PrivateKey"].encode())
            files[1].commit(response["certificatePem"].encode())
        else:
            files[0].commit(response["certificatePem"].encode())
    except BaseException:
        # Received, but not on disk: the sweep may delete it (its id proves it is this fleet's).
        record.made.append(response["certificateId"])
        with contextlib.suppress(OSError):
            write_records(output_dir, name, records)
        raise
    if record.lost == 0:
        records.remove(record)
    write_records(output_dir, name, records)
    return response


def _remove_stale_temporaries(directory: str) -> None:
    """Temporary files of an interrupted run (PendingFile names them .<file>.<random>.tmp)."""
    for entry in os.listdir(directory):
        if entry.startswith((f".{KEY_FILE}.", f".{CERT_FILE}.")) and entry.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, entry))


def _update_thing(call: Call, plan: DevicePlan) -> None:
    """UpdateThing; a version conflict is fine when the thing already is as planned (a retried call that ran)."""
    try:
        call("update_thing", **plan.update_thing)
    except ClientError as e:
        if not is_error(e, "VersionConflictException"):
            raise
        thing = call("describe_thing", thingName=plan.name)
        now = {
            "thing_type": thing.get("thingTypeName") or None,
            "attributes": visible_attributes(thing.get("attributes")),
        }
        if now != {"thing_type": plan.after["thing_type"], "attributes": plan.after["attributes"]}:
            raise


def apply_device(call: Call, spec: FleetSpec, device: DesiredDevice, plan: DevicePlan) -> None:
    """One device's steps in dependency order: thing, groups, certificate, attach, policies, activate."""
    if plan.create_thing:
        _step("create thing", lambda: call("create_thing", **plan.create_thing))
    if plan.update_thing:
        _step("update thing", lambda: _update_thing(call, plan))
    for group in plan.groups_to_add:
        _step(
            f"add to thing group {group}",
            lambda group=group: call("add_thing_to_thing_group", thingGroupName=group, thingName=device.name),
        )
    for group in plan.groups_to_remove:
        _step(
            f"remove from thing group {group}",
            lambda group=group: call("remove_thing_from_thing_group", thingGroupName=group, thingName=device.name),
        )
    if device.certificate == "none":
        return
    if plan.fix_key_mode:
        key_path = device_paths(spec.output_dir, device.name)["key"]
        _step("set key file mode", lambda: os.chmod(key_path, crypto.PRIVATE_KEY_MODE))
    if plan.write_certificate_pem:
        paths = device_paths(spec.output_dir, device.name)

        def write_certificate() -> None:
            _remove_stale_temporaries(paths["dir"])
            crypto.write_file_atomic(paths["cert"], plan.write_certificate_pem.encode(), 0o644)

        _step("write certificate file", write_certificate)
    if plan.new_certificate:
        _step("create certificate", lambda: _create_certificate(call, spec, device, plan))
    arn = plan.certificate_arn
    if plan.attach_certificate:
        _step("attach certificate", lambda: call("attach_thing_principal", thingName=device.name, principal=arn))
    for policy in plan.policies_to_attach:
        _step(f"attach policy {policy}", lambda policy=policy: call("attach_policy", policyName=policy, target=arn))
    for policy in plan.policies_to_detach:
        _step(
            f"detach policy {policy}",
            lambda policy=policy: iot_access.unless_gone(call, "detach_policy", policyName=policy, target=arn),
        )
    if plan.activate:
        _step(
            "activate certificate",
            lambda: call("update_certificate", certificateId=plan.certificate_id, newStatus="ACTIVE"),
        )
    for old_id, old_arn in plan.replace_certificates:
        # Only now that the new certificate is ACTIVE, attached and has its policies: the old one goes.
        _step(f"retire certificate {old_id}", lambda i=old_id, a=old_arn: retire_certificate(call, device.name, i, a))


def retire_certificate(
    call: Call, name: str, cert_id: str, arn: str, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Detach a replaced certificate from the thing; deactivate and delete it unless another thing uses it."""
    iot_access.unless_gone(call, "detach_thing_principal", thingName=name, principal=arn)
    others = call.pages("list_principal_things", "things", principal=arn, maxResults=PAGE_SIZE)
    if [t for t in others if t != name]:
        return  # in use by another thing: detached from this one only
    iot_access.unless_gone(call, "update_certificate", certificateId=cert_id, newStatus="INACTIVE")
    delete_certificate(call, cert_id, arn, sleep)


def delete_certificate(call: Call, cert_id: str, arn: str, sleep: Callable[[float], None] = time.sleep) -> None:
    """Detach policies, delete; the certificate is already INACTIVE and detached from every thing."""
    iot_access.delete_certificate(call, cert_id, arn, sleep, retry.FLEET_CERTIFICATE_DELETE)


def prune_device(call: Call, spec: FleetSpec, plan: DevicePlan, sleep: Callable[[float], None] = time.sleep) -> None:
    """Decommission in the safe order: certificates INACTIVE, detached, deleted; groups left; thing deleted."""
    name = plan.name
    for arn in plan.prune_principals:
        cert_id = cert_id_of_arn(arn)
        # A certificate another thing also uses is only detached from this one: deactivating it would cut
        # that other device off, and it is not this fleet's to retire.
        shared = bool(cert_id) and bool(
            [
                thing
                for thing in _step(
                    "list certificate things",
                    lambda arn=arn: call.pages("list_principal_things", "things", principal=arn, maxResults=PAGE_SIZE),
                )
                if thing != name
            ]
        )
        if cert_id and not shared:
            _step(
                "deactivate certificate",
                lambda cert_id=cert_id: iot_access.unless_gone(
                    call,
                    "update_certificate",
                    certificateId=cert_id,
                    newStatus="INACTIVE",
                ),
            )
        _step(
            "detach certificate",
            lambda arn=arn: iot_access.unless_gone(call, "detach_thing_principal", thingName=name, principal=arn),
        )
        if cert_id and not shared:
            _step("delete certificate", lambda cert_id=cert_id, arn=arn: delete_certificate(call, cert_id, arn, sleep))
    for group in plan.groups_to_remove:
        _step(
            f"remove from thing group {group}",
            lambda group=group: iot_access.unless_gone(
                call,
                "remove_thing_from_thing_group",
                thingGroupName=group,
                thingName=name,
            ),
        )
    _step("delete thing", lambda: iot_access.delete_thing(call, name, sleep, retry.FLEET_THING_DELETE))
    if spec.output_dir:
        paths = device_paths(spec.output_dir, name)
        for key in ("cert", "key", "marker"):
            if os.path.exists(paths[key]):
                os.unlink(paths[key])


@dataclass
class SweepResult:
    deleted: List[str] = field(default_factory=list)
    # INACTIVE, unattached, in a window, but not provably this fleet's: left alone and reported.
    kept: List[str] = field(default_factory=list)


def sweep_orphans(
    call: Call,
    records: List[CallRecord],
    known_ids: Set[str],
    device_keys: Mapping[bytes, str],
    sleep: Callable[[float], None] = time.sleep,
    now: Optional[float] = None,
) -> SweepResult:
    """Delete the certificates this fleet's unfinished calls (``records``) provably left behind.

    A candidate is INACTIVE, or ACTIVE within the window of a CSR call (which makes its certificate ACTIVE),
    unknown to every device file (``known_ids``) and created within the window of a record. It is deleted (an
    ACTIVE one deactivated first), once found attached to no thing, when this fleet can prove it made it:
    its id was returned to a call whose files could not be written, or
    its public key is one of this fleet's device keys (``device_keys``: SPKI DER -> device). A certificate that
    a call with AWS-made keys may have left (its answer lost) cannot be told from one another tool or fleet made
    in the same window, INACTIVE and not yet attached: it is kept and reported, never deleted.
    """
    result = SweepResult()
    if not records:
        return result
    now = time.time() if now is None else now
    certificates = read_certificates(call)
    windows = [(r, *r.window(now)) for r in records]
    made = {cert_id for r in records for cert_id in r.made}
    candidates = {}
    for cert_id, info in certificates.items():
        if info["status"] not in ("INACTIVE", "ACTIVE") or cert_id in known_ids:
            continue
        inside = [r for r, low, high in windows if low <= info["created"] <= high]
        if info["status"] == "ACTIVE":
            # Only a CSR call makes an ACTIVE certificate, and only its device key can prove it this fleet's.
            inside = [r for r in inside if r.source == "csr"]
            if not inside:
                continue
        elif not inside and cert_id not in made:
            continue
        candidates[cert_id] = (info, inside)
    proven: List[str] = []
    # Public keys: only needed when a record's device key can tell its certificates.
    keyed = any(r.source != "aws_keys" for r in records) and device_keys
    unproven_aws = []
    for cert_id, (info, inside) in sorted(candidates.items(), key=lambda item: item[1][0]["created"]):
        if cert_id in made and info["status"] == "INACTIVE":
            proven.append(cert_id)
            continue
        if keyed:
            description = iot_access.unless_gone(call, "describe_certificate", certificateId=cert_id)
            pem = ((description or {}).get("certificateDescription") or {}).get("certificatePem")
            try:
                public = crypto.certificate_public_key(pem) if pem else None
            except crypto.CryptoError:
                public = None
            if public is not None and public in device_keys:
                proven.append(cert_id)
                continue
        if any(r.source == "aws_keys" and r.possibly_lost() for r in inside):
            unproven_aws.append(cert_id)  # this fleet lost an answer in its window: maybe ours, cannot tell

    def unattached(cert_id: str) -> bool:
        arn = candidates[cert_id][0]["arn"]
        return not call.pages("list_principal_things", "things", principal=arn, maxResults=PAGE_SIZE)

    result.kept.extend(cert_id for cert_id in unproven_aws if unattached(cert_id))
    orphans = [cert_id for cert_id in proven if unattached(cert_id)]
    for cert_id in orphans:
        info = candidates[cert_id][0]
        try:
            if info["status"] == "ACTIVE":
                # A CSR certificate carrying this fleet's device key, attached to nothing: it was never in use.
                call("update_certificate", certificateId=cert_id, newStatus="INACTIVE")
            delete_certificate(call, cert_id, info["arn"], sleep)
        except ClientError as e:
            if not is_error(e, "CertificateStateException", "DeleteConflictException"):
                raise
            result.kept.append(cert_id)  # activated or attached meanwhile: in use, left alone
            continue
        result.deleted.append(cert_id)
    result.kept.sort()
    return result


@dataclass
class RunOutcome:
    outcomes: Dict[str, str] = field(default_factory=dict)  # name -> created|updated|unchanged|pruned|failed
    failures: List[Dict[str, str]] = field(default_factory=list)
    orphans_deleted: List[str] = field(default_factory=list)
    orphans_kept: List[str] = field(default_factory=list)


def _error_text(error: BaseException) -> str:
    if isinstance(error, ClientError):
        err = getattr(error, "response", {}).get("Error", {})
        return f"{getattr(error, 'operation_name', 'AWS call')} failed with {err.get('Code')}: {err.get('Message')}"
    return str(error) or type(error).__name__


def apply_plan(
    call: Call,
    spec: FleetSpec,
    plan: FleetPlan,
    progress: Optional[Progress] = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunOutcome:
    """Apply every device's plan on a thread pool; failures are collected, never stop the others."""
    run = RunOutcome()
    for group in plan.groups_to_create:
        iot_access.ignoring(call, ("ResourceAlreadyExistsException",), "create_thing_group", thingGroupName=group)
    desired = {d.name: d for d in spec.devices}

    def work(device_plan: DevicePlan) -> Tuple[str, str, Optional[Dict[str, str]]]:
        name = device_plan.name
        if device_plan.action == "failed":
            return name, "failed", {"name": name, "step": "plan", "error": device_plan.error or "failed"}
        if device_plan.action == "unchanged":
            return name, "unchanged", None
        try:
            if device_plan.action == "prune":
                prune_device(call, spec, device_plan, sleep)
                return name, "pruned", None
            apply_device(call, spec, desired[name], device_plan)
        except DeviceFailure as e:
            return name, "failed", {"name": name, "step": e.step, "error": _error_text(e.error)}
        return name, "created" if device_plan.action == "create" else "updated", None

    if progress:
        progress.start_phase("apply", len(plan.devices))
    order = {d.name: index for index, d in enumerate(plan.devices)}
    with ThreadPoolExecutor(max_workers=spec.concurrency) as pool:
        # As each device finishes (not in input order), so that progress is current.
        for future in as_completed([pool.submit(work, d) for d in plan.devices]):
            name, outcome, failure = future.result()
            run.outcomes[name] = outcome
            if failure:
                run.failures.append(failure)
            if progress:
                progress.advance(outcome)
    run.failures.sort(key=lambda f: order[f["name"]])
    # Orphan sweep: certificates of calls whose answer was lost (now or in an interrupted earlier run), read
    # from the marker files again (this run's own records included).
    records: List[CallRecord] = []
    known: Set[str] = set()
    keys: Dict[bytes, str] = {}
    if spec.output_dir:
        for device in spec.devices:
            local = read_local_device(spec.output_dir, device.name)
            records.extend(local.records)
            if local.cert_id:
                known.add(local.cert_id)
            if local.key_public:
                keys[local.key_public] = device.name
    known.update(d.certificate_id for d in plan.devices if d.certificate_id)
    if records:
        swept = sweep_orphans(call, records, known, keys, sleep)
        run.orphans_deleted, run.orphans_kept = swept.deleted, swept.kept
        for name in sorted({r.device for r in records}):
            clear_marker(spec.output_dir, name)
            # The temporary files of the interrupted call (its device may have needed no new call this time).
            directory = device_paths(spec.output_dir, name)["dir"]
            if os.path.isdir(directory):
                _remove_stale_temporaries(directory)
    return run


def failure_warning(failures: List[Mapping[str, str]], total: int, max_failures: int) -> Optional[str]:
    """The warning of a run whose failed devices are within ``max_failures`` (so the task does not fail)."""
    if not failures or len(failures) > max_failures:
        return None
    shown = "; ".join(f"{f['name']} ({f['step']}): {f['error']}" for f in failures[:5])
    more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
    return (
        f"{len(failures)} of {total} device(s) failed (within max_failures {max_failures}, so the task did not "
        f"fail): {shown}{more}"
    )


def summary_result(run: RunOutcome, call_summary: Mapping[str, Any], duration: float) -> Dict[str, Any]:
    counts = {"created": 0, "updated": 0, "unchanged": 0, "pruned": 0, "failed": 0}
    for outcome in run.outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return {
        **counts,
        "orphaned_certificates_deleted": len(run.orphans_deleted),
        "orphaned_certificates_kept": len(run.orphans_kept),
        **call_summary,
        "duration": round(duration, 3),
    }


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, prefixed with a single quote (shown as text)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_report(path: str, summary: Mapping[str, Any], run: RunOutcome, plan: FleetPlan) -> None:
    """The run report as JSON at ``path`` and a CSV (one row per device) beside it."""
    errors = {f["name"]: f for f in run.failures}
    rows = []
    for d in plan.devices:
        failure = errors.get(d.name, {})
        rows.append(
            {
                "name": d.name,
                "outcome": run.outcomes.get(d.name, "not run"),
                "changes": "; ".join(d.changes),
                "certificate_id": d.certificate_id or "",
                "key": f"replaced (was {d.key})" if d.replace_certificates else d.key or "",
                "failed_step": failure.get("step", ""),
                "error": failure.get("error", ""),
            }
        )
    write_json(
        path,
        {
            "summary": dict(summary),
            "failures": run.failures,
            "orphaned_certificates_deleted": run.orphans_deleted,
            "orphaned_certificates_kept": run.orphans_kept,
            "devices": rows,
        },
    )
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=["name", "outcome", "changes", "certificate_id", "key", "failed_step", "error"]
    )
    writer.writeheader()
    writer.writerows({key: csv_cell(value) for key, value in row.items()} for row in rows)
    crypto.write_file_atomic(os.path.splitext(path)[0] + ".csv", out.getvalue().encode(), 0o644)


def run_fleet(
    call: Any,
    spec: FleetSpec,
    check_mode: bool,
    clock: Callable[[], float] = time.monotonic,
    progress: Optional[Progress] = None,
) -> Tuple[FleetPlan, Optional[RunOutcome], float]:
    """Read, plan, and (unless check mode) apply. Returns the plan, the run (None in check mode), the duration."""
    started = clock()
    spec.check_mode = check_mode
    snap = read_fleet_state(call, spec, progress)
    plan = plan_fleet(spec, snap)
    if spec.plan_path:
        write_json(spec.plan_path, full_plan_document(plan))
    if check_mode:
        return plan, None, clock() - started
    if spec.output_dir:
        os.makedirs(spec.output_dir, mode=0o700, exist_ok=True)
    watch_certificate_calls(call)
    run = apply_plan(call, spec, plan, progress)
    return plan, run, clock() - started
