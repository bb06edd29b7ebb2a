"""What a deployment must be given before `spine serve` binds its port.

Outside lab, several instances serve one deployment, and what one of them appends must reach the
followers connected to the others at once (a realtime thread's messages, flags, any stream): that
bus is Redis. Without it each instance would only poll, so a production deployment without
`SPINE_REDIS_URL` is refused before it serves anything, in one line, rather than started slow.
"""

from __future__ import annotations

from app.settings import Settings


def refusal(settings: Settings) -> str | None:
    """Why `settings` may not be served (one line), or None."""
    if settings.deployment != "lab" and not settings.redis_url:
        return (
            f"SPINE_DEPLOYMENT={settings.deployment} needs SPINE_REDIS_URL (or --redis-url): Redis is the "
            "bus between instances; refusing to start without it"
        )
    return None
