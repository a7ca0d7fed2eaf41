# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The devices file: CSV, YAML, JSON or JSON lines into device entries (``load_device_rows``)."""

from __future__ import annotations

from typing import Any, Dict, List

from ansible_collections.iotfleet.provisioning.plugins.module_utils import devices_file
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover
    HAS_YAML = False


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
    width_rule = "has {cells} cells, the header has {header} (quote a value that holds a comma)"
    for _line, cells in devices_file.csv_records(text, "devices_file", width_rule):
        device: Dict[str, Any] = {}
        for column, value in cells.items():
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
    return [value for _number, value in devices_file.json_records(text, field_name)]


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
