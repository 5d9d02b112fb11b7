"""Imported by each test worker's forkserver (``tests/forked_servers.py``): every domain's
endpoints and the console's pages, which ``create_app`` would otherwise import again in each
forked server (about 0.4 s of CPU per start)."""

from governance.api.app import domain_routers
from governance.console.routes import console_router

# The app's own discovery, so the preload follows it; the routers built here are discarded.
domain_routers()
console_router()
