"""``/docs``: Swagger UI served from the installed ``swagger-ui-bundle`` package, never a CDN.

The page, its script, style sheet and icon all come from this service, so ``/docs``
works on a machine without internet access. ``validatorUrl`` is off: Swagger UI
would otherwise load a badge from validator.swagger.io.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS_PATH = "/docs/assets"


def install_docs(app: FastAPI) -> None:
    """Serve the docs page at ``/docs`` and its assets under ``/docs/assets``."""
    app.mount(ASSETS_PATH, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs_page() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="textbatch API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            # persistAuthorization: the key entered under "Authorize" survives a reload.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )
