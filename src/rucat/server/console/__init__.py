"""The web console at /ui/: server-rendered pages over the same store, auth and rules as REST.

Pages are Jinja2 templates; live parts are refreshed by htmx (vendored in
static/, no CDN, no Node at run time) polling small HTML fragments. Every
decision the REST API makes (who may see or act on an engine, which action a
state allows, which confs a policy allows, what is redacted) is made here by
the same domain functions, so the console can do nothing the API cannot.
"""

from rucat.server.console.routes import console_router, install_console_redirects
from rucat.server.console.sessions import Sessions

__all__ = ["Sessions", "console_router", "install_console_redirects"]
