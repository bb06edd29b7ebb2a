"""The lab fallbacks one request was served by, said once in its answer's `X-Spine-Warning`.

In lab, a resource kind without a route falls back to the embedded store, loudly. The routers
note each fallback's code here as they resolve the spine and the views a request uses
(`SpineRouter.for_context`, `ViewRouter.runner`), and one answer hook
(`app.http.middleware.send_lab_warnings`) puts them on a successful answer: the event spine's
first, then the views', each once. No handler passes a warning along by hand.
"""

from __future__ import annotations


class LabWarnings:
    """The warning codes (`event_spine.missing_route`, …) noted for one request."""

    __slots__ = ("_spine", "_views")

    def __init__(self) -> None:
        self._spine: str | None = None
        self._views: list[str] = []

    def spine(self, code: str | None) -> None:
        """The request's event spine is the lab fallback (`code`), or not (None)."""
        if code is not None:
            self._spine = code

    def view(self, code: str | None) -> None:
        """A view the request reads or writes lives in the lab fallback (`code`), or not (None)."""
        if code is not None and code not in self._views:
            self._views.append(code)

    @property
    def header(self) -> str | None:
        """The `X-Spine-Warning` value, or None when the request met no fallback."""
        codes = [self._spine, *self._views] if self._spine else self._views
        return ", ".join(dict.fromkeys(codes)) or None
