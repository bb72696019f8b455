"""Serving the JavaScript client (``static/stabilizer.js``) from a Starlette or FastAPI app."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CLIENT_FILES = {
    "stabilizer.js": "text/javascript; charset=utf-8",
    "stabilizer.d.ts": "application/typescript; charset=utf-8",
}


def client_source(name: str = "stabilizer.js") -> str:
    """The text of a shipped client file."""
    if name not in CLIENT_FILES:
        raise ValueError(f"no client file {name!r}; there are {sorted(CLIENT_FILES)}")
    return (
        resources.files("asgi_ws_stabilizer").joinpath("static").joinpath(name).read_text("utf-8")
    )


def client_route(path: str = "/stabilizer.js") -> Route:
    """A route that serves the ES module::

    app.router.routes.append(client_route())        # Starlette or FastAPI
    # <script type="module">import {StabilizedSocket} from "/stabilizer.js"</script>
    """
    body = client_source().encode()

    async def serve(request: Request) -> Response:
        return Response(
            body,
            media_type=CLIENT_FILES["stabilizer.js"],
            headers={"cache-control": "public, max-age=3600"},
        )

    return Route(path, serve, methods=["GET", "HEAD"], name="stabilizer_js")
