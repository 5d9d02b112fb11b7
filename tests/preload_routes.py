"""Imported by each test worker's forkserver (``tests/forked_servers.py``): every domain's
endpoints and the console's pages, which ``create_app`` would otherwise import again in each
forked server (about 0.4 s of CPU per start)."""

from governance.api.app import DOMAINS
from governance.console.routes import PAGES
from governance.plugins import optional_module

for _domain in DOMAINS:
    optional_module(f"governance.{_domain}.endpoints")
for _page in PAGES:
    optional_module(f"governance.console.{_page}")
