# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rotation confirmations: which NEW certificates their devices are confirmed to use.

One reader for the fleet module (``rotation.confirmed`` / ``rotation.confirmed_file``) and the certificate_rotation
role (its confirmed ids and confirmation file). A confirmation is a certificate id (what a device, or the presence
event's ``principalIdentifier``, reports), never a device name: a name left in git would retire the old certificate
of the next rotation the moment it starts.

A confirmation file is one id per line (``#`` comments, blank lines ignored), a YAML or JSON list of ids, or a
mapping of device name to an id or a list of ids (an entry confirms for that device only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Set

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    HAS_YAML = False


@dataclass
class Confirmations:
    """Ids confirmed for any device (a list) and per device (a mapping)."""

    ids: Set[str] = field(default_factory=set)
    by_device: Dict[str, Set[str]] = field(default_factory=dict)

    def for_device(self, name: str) -> Set[str]:
        return self.ids | self.by_device.get(name, set())

    def confirms(self, name: str, cert_id: str) -> bool:
        return cert_id in self.ids or cert_id in self.by_device.get(name, set())

    def merge(self, other: Confirmations) -> Confirmations:
        by_device = {name: set(ids) for name, ids in self.by_device.items()}
        for name, ids in other.by_device.items():
            by_device.setdefault(name, set()).update(ids)
        return Confirmations(self.ids | other.ids, by_device)


def check_certificate_id(field_name: str, value: Any) -> str:
    """A confirmation entry: a certificate id, lower case."""
    text = value.strip() if isinstance(value, str) else value
    if not crypto.is_certificate_id(text):
        raise ValidationError(
            field_name,
            f"must be a certificate id (64 hexadecimal characters: the NEW certificate's id, as the device or its "
            f"presence event reports it), got {value!r}; a device name alone is never a confirmation (a name left "
            "in git would retire the old certificate of the next rotation as soon as it starts)",
        )
    return text.lower()


def check_certificate_ids(field_name: str, values: Iterable[Any]) -> Set[str]:
    return {check_certificate_id(f"{field_name}[{index}]", value) for index, value in enumerate(values)}


def _structured(text: str) -> Any:
    """The file as a list or mapping when it is one (every scalar kept as text), else None (lines of ids)."""
    stripped = text.strip()
    if HAS_YAML:
        try:
            # BaseLoader keeps every scalar a string: an id of digits only (or like 12e4...) is not a number.
            data = yaml.load(stripped, Loader=yaml.BaseLoader)  # nosec B506 - BaseLoader builds no objects
        except yaml.YAMLError:
            return None  # not YAML: read as lines, where each line is checked as an id
    elif stripped.startswith(("[", "{")):
        try:
            data = json.loads(stripped)
        except ValueError:
            return None
    else:
        return None
    return data if isinstance(data, (list, dict)) else None


def parse_confirmations(text: Any, field_name: str) -> Confirmations:
    """A confirmation file's text (see the module docstring); every entry is checked as a certificate id."""
    if text is None or not str(text).strip():
        return Confirmations()
    text = str(text)
    data = _structured(text)
    if isinstance(data, dict):
        by_device = {}
        for name, value in data.items():
            values = value if isinstance(value, list) else [value]
            by_device[str(name)] = check_certificate_ids(f"{field_name} ({name})", values)
        return Confirmations(by_device=by_device)
    if isinstance(data, list):
        return Confirmations(ids=check_certificate_ids(field_name, data))
    ids = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            ids.add(check_certificate_id(f"{field_name} line {number}", line))
    return Confirmations(ids=ids)
