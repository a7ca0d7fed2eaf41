"""Shared helpers of the integration tests (paths, endpoint reset)."""

from __future__ import annotations

import os
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def reset_endpoint(url: str) -> None:
    """Forget all state and recorded calls, so each target starts from an empty account."""
    for path, method in (("/moto-api/reset", "POST"), ("/_local/calls", "DELETE")):
        request = urllib.request.Request(f"{url}{path}", method=method)
        urllib.request.urlopen(request, timeout=10).close()
