# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The devices file: CSV, YAML, JSON or JSON lines into device entries (``load_device_rows``)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Dict, List, Optional

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
