"""The JavaScript client is served by one route."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.testclient import TestClient

from asgi_ws_stabilizer import client_route
from asgi_ws_stabilizer.client_js import client_source


def test_route_serves_the_module() -> None:
    """client_route() serves stabilizer.js as JavaScript from a FastAPI app."""
    app = FastAPI()
    app.router.routes.append(client_route("/js/stabilizer.js"))
    with TestClient(app) as http:
        response = http.get("/js/stabilizer.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "export class StabilizedSocket" in response.text
    assert response.text == client_source()
