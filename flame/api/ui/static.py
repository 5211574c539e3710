"""The page and its static files (web/), served with fixed types."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from flame.errors import NotFound

# The UI's own files, by type. Fixed here rather than taken from the machine's mime.types: with
# nosniff, a module script served under another type would not run. Anything else is not served.
STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".html": "text/html; charset=utf-8",
    ".woff2": "font/woff2",
}


def add_routes(app: web.Application, web_dir: Path) -> None:
    root = web_dir.resolve()
    index = root / "index.html"

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index, headers={"Content-Type": STATIC_TYPES[".html"]})

    async def static(request: web.Request) -> web.FileResponse:
        name = request.match_info["path"]
        if "\x00" in name:  # no file has one; the OS would refuse the name with a ValueError
            raise NotFound("No such file.")
        path = (root / name).resolve()
        content_type = STATIC_TYPES.get(path.suffix)
        if content_type is None or not path.is_relative_to(root) or not path.is_file():
            raise NotFound("No such file.")
        return web.FileResponse(path, headers={"Content-Type": content_type})

    app.router.add_get("/", page)
    app.router.add_get("/static/{path:.+}", static)
