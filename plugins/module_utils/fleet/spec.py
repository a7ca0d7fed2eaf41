# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's desired state: constants, ``DesiredDevice``, ``FleetSpec`` and ``validate_fleet``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates import validate_policy_names
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.expiry import (
    ExpiryRule,
    key_of,
    validate_expiry,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.rotation import (
    RotationRule,
    check_rotation_devices,
    validate_rotation,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet.rows import (
    load_device_rows,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_rate import validate_api_rates
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.common import _billing_group_option
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
from ansible_collections.iotfleet.provisioning.plugins.module_utils.x509_helpers import key_strength_problem

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
    "rotation_csr_path",
    "billing_group",
)
PAGE_SIZE = 250
PLAN_LISTING_LIMIT = 50
KEY_FILE = "private.pem.key"
CERT_FILE = "certificate.pem.crt"
MARKER_FILE = ".fleet-pending.json"
# Rotation: the new files of step 1 (until step 2 moves them in place) and step 2's intent record.
NEXT_DIR = "next"
ROTATION_FILE = ".fleet-rotation.json"
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
# What the plan, the diff and the report say of a device whose key is not in output_dir on this machine.
KEY_NOT_HERE = "not on this controller"

Call = Callable[..., Dict[str, Any]]


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
    # A CSR the device made for its next certificate (rotation of a csr device whose key stays on the device).
    rotation_csr: Optional[str] = None
    rotation_csr_public: Optional[bytes] = None
    billing_group: Optional[str] = None  # None: leave it alone; "": in no billing group


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
    declared_billing_groups: List[str] = field(default_factory=list)
    check_mode: bool = False
    expiry: ExpiryRule = field(default_factory=ExpiryRule)
    rotation: RotationRule = field(default_factory=RotationRule)

    @property
    def needs_validity(self) -> bool:
        """A rule needs each certificate's dates or key (DescribeCertificate where no file has them)."""
        rule = self.rotation
        return self.expiry.declared or rule.expiring_within_days is not None or rule.key_rule

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
    if raw.get("billing_group") is not None:
        device.billing_group = _billing_group_option(f"{label}.billing_group", raw["billing_group"])
    if raw.get("rotation_csr_path") is not None:
        _read_rotation_csr(device, raw["rotation_csr_path"], f"{label}.rotation_csr_path")
    if raw.get("policies") is not None:
        device.policies = validate_policy_names(raw["policies"], f"{label}.policies")
        if device.policies and source == "none":
            raise ValidationError(f"{label}.policies", "policies are attached to a certificate: certificate is none")
    return device


def _read_rotation_csr(device: DesiredDevice, path: Any, field_name: str) -> None:
    """The device's CSR for its next certificate: a csr device only, a key AWS IoT accepts."""
    if device.certificate != "csr":
        raise ValidationError(field_name, f"is only used with certificate: csr, not {device.certificate}")
    data = crypto.read_file(path) if isinstance(path, str) else None
    if data is None:
        raise ValidationError(field_name, f"{path} does not exist (give it once the device made its CSR)")
    try:
        csr = crypto.load_csr(data)
        device.rotation_csr_public = crypto.csr_public_key(data)
    except crypto.CryptoError as e:
        raise ValidationError(field_name, f"{path} {e}") from None
    problem = key_strength_problem(csr.public_key())
    if problem:
        raise ValidationError(field_name, f"{path}: {problem}")
    device.rotation_csr = data.decode("ascii", "replace")


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
    declared = validate_declared(params.get("declared_resources"), ("policies", "thing_types", "billing_groups"))
    spec.declared_policies, spec.declared_thing_types = declared["policies"], declared["thing_types"]
    spec.declared_billing_groups = declared["billing_groups"]
    needs_files = [d.name for d in devices if d.certificate in ("aws_keys", "csr")]
    if needs_files and not spec.output_dir:
        raise ValidationError(
            "output_dir", f"is required when a device's certificate is aws_keys or csr (e.g. {needs_files[0]})"
        )
    if spec.output_dir:
        check_outside_collections("output_dir", spec.output_dir)
        _check_writable_dir("output_dir", spec.output_dir)
    spec.api_rates = validate_api_rates(params.get("api_rates"))
    spec.expiry = validate_expiry(params.get("certificate_expiry"))
    spec.rotation = validate_rotation(params.get("rotation"))
    check_rotation_devices(spec.rotation, devices)
    for device in devices:
        if device.rotation_csr_public is not None:
            minimum = spec.rotation.key_below(*_csr_key(device.rotation_csr))
            if minimum:
                raise ValidationError(f"{device.name}.rotation_csr_path", f"the CSR's key: {minimum}")
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


def _csr_key(pem: Optional[str]) -> Tuple[str, Optional[int]]:
    return key_of(crypto.load_csr(pem or "").public_key())


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
