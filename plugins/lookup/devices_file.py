# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: devices_file
author:
  - iotfleet.provisioning developers (@iotfleet)
version_added: 0.1.0
short_description: Read a fleet devices file on the controller
description:
  - Reads a devices file exactly as the O(iotfleet.provisioning.fleet#module:devices_file) option of
    M(iotfleet.provisioning.fleet) does, by its extension, and returns its devices.
  - C(.csv) with a header line; columns are device keys; C(thing_groups) and C(policies) are lists separated by
    C(;); C(attributes.NAME) columns make the attributes.
  - C(.yml) or C(.yaml) with a list of devices, or a map whose C(devices) key holds it.
  - C(.json) with a list, or C(.json), C(.jsonl) or C(.ndjson) with one JSON object per line.
  - Relative paths are looked up like M(ansible.builtin.file) looks them up (the role's and the playbook's
    C(files) directories first).
options:
  _terms:
    description: The devices files; the devices of all of them are returned in order.
    required: true
    type: list
    elements: path
"""

EXAMPLES = r"""
- name: Count the devices of a manufacturing export
  ansible.builtin.debug:
    msg: "{{ query('iotfleet.provisioning.devices_file', 'line-a.csv') | length }} devices"
"""

RETURN = r"""
_raw:
  description: The devices, each a dictionary as in the file (with C(query), the list of them).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet import load_device_rows


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        devices = []
        for term in terms:
            path = self.find_file_in_search_path(variables, "files", term, ignore_missing=True)
            if not path:
                raise AnsibleLookupError(f"devices file {term!r} not found (looked in the files search path)")
            try:
                devices.extend(load_device_rows(path))
            except ValidationError as e:
                raise AnsibleLookupError(f"devices file {term}: {e}") from None
        return devices
