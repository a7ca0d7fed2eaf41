# -*- coding: utf-8 -*-
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Descriptions of the attributes every module documents; each module sets the support level.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check mode and predict the change, without modifying anything in AWS.
  diff_mode:
    description: Returns what changed (or would change, in check mode) as before and after, when in diff mode.
  idempotent:
    description: A second run with the same arguments reports no change and makes no mutating AWS call.
  action_group:
    description: Part of the C(iotfleet.provisioning.aws) action group, so O(region), O(endpoint_url) and
      credentials can be set once with C(module_defaults).
    support: full
    membership:
      - iotfleet.provisioning.aws
"""
