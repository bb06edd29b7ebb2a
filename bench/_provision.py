"""A lab tenant, project, surface and member token on a bench's server, through the public API."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

BOOTSTRAP_KEY = "bench-bootstrap-key"  # the servers of bench/_http_app.py and bench/_sse_app.py take it


def post(url: str, body: dict[str, object], headers: dict[str, str]) -> dict[str, Any]:
    data = json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **headers}
    request = urllib.request.Request(url, data=data, headers=all_headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(json.loads(answer.read()))


def provision(base: str) -> dict[str, str]:
    """Tenant `t1`, project `p1`, surface `web`, member `agent-1`: the headers of that member's requests."""
    admin = post(f"{base}/v1/auth/bootstrap", {}, {"X-Bootstrap-Key": BOOTSTRAP_KEY})
    auth = {"Authorization": f"Bearer {admin['token']}"}
    post(f"{base}/v1/tenants", {"tenant_id": "t1", "name": "bench", "mode": "lab"}, auth)
    post(f"{base}/v1/tenants/t1/projects", {"project_id": "p1", "name": "p1"}, auth)
    post(f"{base}/v1/tenants/t1/surfaces", {"surface_id": "web", "name": "web"}, auth)
    post(f"{base}/v1/tenants/t1/members", {"user_id": "agent-1", "role": "agent"}, auth)
    token = post(f"{base}/v1/tenants/t1/tokens", {"user_id": "agent-1"}, auth)["token"]
    return {"Authorization": f"Bearer {token}", "X-Project-Id": "p1", "X-Surface-Id": "web"}
