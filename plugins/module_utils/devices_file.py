# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One reader of devices files, for the fleet module (and its lookup) and thing_registration_task.

Both read a CSV with a header (rows of blank cells skipped; the header's names unique and non-empty; every row
exactly as wide as the header, or refused with its line: an unquoted comma would otherwise shift values into
the wrong columns), a JSON list, or JSON lines (one value a line, blank lines skipped). Errors name the file's
line. What a cell means is the caller's: the fleet strips cells and reads ``attributes.NAME`` columns and
``;`` lists; a registration task passes its template parameters through as they are.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError


def csv_records(text: str, field: str, width_rule: str) -> List[Tuple[int, Dict[str, str]]]:
    """(line, {column: cell as written}) per row after the header.

    ``width_rule`` words the refusal of a row of the wrong width; ``{cells}`` and ``{header}`` are the counts.
    """
    records: List[Tuple[int, Dict[str, str]]] = []
    reader = csv.reader(io.StringIO(text))
    header: Optional[List[str]] = None
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            if len(set(header)) != len(header) or "" in header:
                raise ValidationError(
                    f"{field} line {reader.line_num}", "the CSV header needs unique, non-empty column names"
                )
            continue
        if len(row) != len(header):
            raise ValidationError(
                f"{field} line {reader.line_num}", width_rule.format(cells=len(row), header=len(header))
            )
        records.append((reader.line_num, dict(zip(header, row))))
    return records


def json_records(text: str, field: str, allow_list: bool = True) -> List[Tuple[int, Any]]:
    """(number, value): the items of a JSON list (numbered from 1), or JSON lines (numbered by their line).

    ``allow_list`` false: JSON lines only, even when the first line starts with ``[``.
    """
    if allow_list and text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ValidationError(field, f"is not valid JSON: {error}") from None
        return list(enumerate(data, start=1))
    records: List[Tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except ValueError as error:
            raise ValidationError(f"{field} line {number}", f"is not valid JSON: {error}") from None
    return records


__all__ = ["csv_records", "json_records"]
