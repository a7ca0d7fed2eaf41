"""One devices-file reader: the fleet module and a registration task read the same CSV and JSON the same way."""

from __future__ import annotations

import pytest

from ansible_collections.iotfleet.provisioning.plugins.module_utils import devices_file, fleet
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.registration_task import spec as rt_spec

CSV = 'ThingName,serial\n\n d1 , A1\n"d,2",\n'


def test_csv_records_keep_cells_as_written_with_their_lines():
    assert devices_file.csv_records(CSV, "devices_file", "{cells}/{header}") == [
        (3, {"ThingName": " d1 ", "serial": " A1"}),
        (4, {"ThingName": "d,2", "serial": ""}),
    ]


def test_each_caller_reads_the_cells_its_own_way():
    # A registration task passes parameters through (only an empty cell is "not given") ...
    assert rt_spec.parse_devices_text(CSV, "csv") == [
        (3, {"ThingName": " d1 ", "serial": " A1"}),
        (4, {"ThingName": "d,2"}),
    ]
    # ... the fleet strips cells and reads its own columns.
    assert fleet.csv_rows(CSV.replace("ThingName", "name")) == [{"name": "d1", "serial": "A1"}, {"name": "d,2"}]


@pytest.mark.parametrize(
    "text, field",
    [
        ("a,a\n1,2\n", "devices_file line 1"),
        ("a,b\n1,2\n1,2,3\n", "devices_file line 3"),
    ],
)
def test_both_refuse_the_same_csv_at_the_same_line(text, field):
    with pytest.raises(ValidationError) as from_task:
        rt_spec.parse_devices_text(text, "csv")
    with pytest.raises(ValidationError) as from_fleet:
        fleet.csv_rows(text)
    assert from_task.value.field == from_fleet.value.field == field


def test_json_lines_and_lists():
    assert devices_file.json_records('\n{"a": 1}\n\n{"a": 2}\n', "f") == [(2, {"a": 1}), (4, {"a": 2})]
    assert devices_file.json_records('[{"a": 1}, {"a": 2}]', "f") == [(1, {"a": 1}), (2, {"a": 2})]
    # JSON lines only: a line that is a list is one value.
    assert devices_file.json_records("[1]\n[2]\n", "f", allow_list=False) == [(1, [1]), (2, [2])]
    with pytest.raises(ValidationError, match=r"^f line 2: is not valid JSON"):
        devices_file.json_records('{"a": 1}\n{"a"\n', "f")
