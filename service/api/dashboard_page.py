"""``/dashboard``: the browser dashboard, static files from the package behind a strict CSP.

The page is plain HTML, CSS and JavaScript modules shipped in ``service/api/dashboard``;
there is no build step and nothing is loaded from another address. The page talks to
the ``/v1`` API with the key the person pastes, so it sees exactly what that key sees.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

ASSETS_DIR = Path(__file__).with_name("dashboard")
ASSETS_PATH = "/dashboard/assets"

# Only this service's own scripts, styles and API: no inline script, no other origin,
# no framing. Downloads are Blob URLs made by the page itself.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class _DashboardAssets(StaticFiles):
    """The page's scripts and styles, with the same headers as the page."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        # Revalidated each load, so an upgrade of the service never runs stale scripts.
        response.headers["cache-control"] = "no-cache"
        return response


def install_dashboard(app: FastAPI) -> None:
    """Serve the page at ``/dashboard`` and its files under ``/dashboard/assets``."""
    app.mount(ASSETS_PATH, _DashboardAssets(directory=str(ASSETS_DIR)), name="dashboard-assets")

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_page() -> FileResponse:
        return FileResponse(
            ASSETS_DIR / "index.html",
            media_type="text/html",
            headers={**SECURITY_HEADERS, "cache-control": "no-cache"},
        )

    @app.get("/dashboard/", include_in_schema=False)
    async def dashboard_slash() -> RedirectResponse:
        return RedirectResponse("/dashboard")
