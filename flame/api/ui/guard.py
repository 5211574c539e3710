"""The local UI is an attack surface (docs/UI_API.md, "Rules"): Host allowlist against DNS
rebinding, Origin on every state change and on the WebSocket upgrade, JSON bodies, strict headers.
Sessions are session.py's.

aiohttp does none of this by itself, so every route of the UI app goes through these middlewares.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from flame.errors import Forbidden, RequestError
from flame.net.http import Handler

SAFE_METHODS = {"GET", "HEAD"}
# Routes whose body is a file streamed as application/octet-stream, not JSON (api/ui/files.py).
STREAMED_ROUTES = frozenset({"ui_file_upload", "ui_group_file_upload"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class UiOrigin:
    """The names this UI answers to; the port is known only once the listener is bound."""

    def __init__(self, port: int = 0) -> None:
        self.port = port

    def hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}

    def origins(self) -> set[str]:
        return {f"http://{host}" for host in self.hosts()}


def headers_middleware() -> Middleware:
    """Outermost: every answer, errors included, carries the strict headers."""

    @web.middleware
    async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        if not response.prepared:  # a WebSocket is already past its headers
            for name, value in HEADERS.items():  # a handler's stricter CSP (a file) stays
                response.headers.setdefault(name, value)
            if request.path.startswith("/ui/api/"):
                response.headers["Cache-Control"] = "no-store"
        if isinstance(response, web.HTTPException):
            raise response
        return response

    return headers


def host_and_origin_middleware(origin: UiOrigin) -> Middleware:
    """Inside the error middleware: a foreign Host or Origin, or a body that is not JSON, is
    refused before any handler runs."""

    @web.middleware
    async def host_and_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Host", "") not in origin.hosts():
            raise RequestError("This address is not served here.", status=421, code="bad_host")
        is_upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if request.method not in SAFE_METHODS or is_upgrade:
            if request.headers.get("Origin", "") not in origin.origins():
                raise Forbidden(
                    "Requests that change anything must come from this UI's page.",
                    code="bad_origin",
                )
        if request.method not in SAFE_METHODS and request.content_type != "application/json":
            streamed = request.match_info.route.name in STREAMED_ROUTES
            if not (streamed and request.content_type == "application/octet-stream"):
                raise RequestError(
                    "Send JSON (application/json).", status=415, code="bad_content_type"
                )
        return await handler(request)

    return host_and_origin
