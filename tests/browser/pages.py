"""Web pages on an origin of their own: a threaded `http.server` serving pages the tests write."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PageServer:
    """Serves `pages` (path → HTML) at `origin`; anything else is 404."""

    def __init__(self, server: ThreadingHTTPServer, pages: dict[str, bytes]) -> None:
        self.pages = pages
        self.origin = f"http://127.0.0.1:{server.server_address[1]}"

    def serve(self, path: str, html: str) -> str:
        """Publish `html` at `path`; its URL."""
        self.pages[path] = html.encode()
        return f"{self.origin}{path}"


@contextmanager
def page_server() -> Iterator[PageServer]:
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0])
            if body is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test's output is the figures, not an access log

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="page-server", daemon=True)
    thread.start()
    try:
        yield PageServer(server, pages)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
