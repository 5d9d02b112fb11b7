"""The web console: server-rendered pages for the people who govern Warden.

Every page is guarded by the same Casbin permission as the API call behind it
(:mod:`governance.console.guard`), acts through the same services, and is audited like an API
call under the signed-in person's name. Only a person's session opens it: API keys are for the
API. Stack and reasons: docs/console.md.
"""
