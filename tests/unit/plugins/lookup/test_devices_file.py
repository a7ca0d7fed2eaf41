"""The devices_file lookup reads every format the fleet module reads."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleLookupError
from ansible.parsing.dataloader import DataLoader

from ansible_collections.iotfleet.provisioning.plugins.lookup.devices_file import LookupModule


@pytest.fixture
def lookup():
    return LookupModule(loader=DataLoader())


def test_csv_yaml_and_jsonl_give_the_same_devices(lookup, tmp_path):
    (tmp_path / "d.csv").write_text("name,attributes.serial,thing_groups\na,1,g1;g2\nb,2,\n")
    (tmp_path / "d.yml").write_text(
        "devices:\n  - {name: a, attributes: {serial: '1'}, thing_groups: [g1, g2]}\n"
        "  - {name: b, attributes: {serial: '2'}}\n"
    )
    (tmp_path / "d.jsonl").write_text(
        '{"name": "a", "attributes": {"serial": "1"}, "thing_groups": ["g1", "g2"]}\n\n'
        '{"name": "b", "attributes": {"serial": "2"}}\n'
    )
    expected = [
        {"name": "a", "attributes": {"serial": "1"}, "thing_groups": ["g1", "g2"]},
        {"name": "b", "attributes": {"serial": "2"}},
    ]
    for name in ("d.csv", "d.yml", "d.jsonl"):
        assert lookup.run([str(tmp_path / name)], variables={}) == expected, name


def test_missing_file_and_bad_content_name_the_file(lookup, tmp_path):
    with pytest.raises(AnsibleLookupError, match=r"devices file '.*nope\.csv' not found"):
        lookup.run([str(tmp_path / "nope.csv")], variables={})
    (tmp_path / "bad.jsonl").write_text('{"name": "a"}\n{oops\n')
    with pytest.raises(AnsibleLookupError, match=r"bad.jsonl: devices_file line 2: is not valid JSON"):
        lookup.run([str(tmp_path / "bad.jsonl")], variables={})
    (tmp_path / "d.txt").write_text("a\n")
    with pytest.raises(AnsibleLookupError, match=r"must end in \.csv"):
        lookup.run([str(tmp_path / "d.txt")], variables={})
