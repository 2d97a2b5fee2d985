"""The service's routes, one module per resource, each with a module-level `router`: `health` (probes and
metrics), `identify` (POST /v1/identify), `reports` (the stored reports, /v1/reports), `parcels` (a
reference's stones, and the CSV exports), `verify` (the public keys and the public verification page of a
printed report), `field` (the learning loop's figures, /v1/field), `card` (the printable scale card), `session` (signing in and out), `audit`
(the audit trail) and `page` (the technician web page). What they share (the store, the model, the
settings...) comes from gemid.serve.deps; who may call each one is gemid.serve.access's table.
"""

from gemid.serve.routes import audit, card, field, health, identify, page, parcels, reports, session, verify

# in the order the docs list them; parcels before reports: /v1/reports.csv is a route of its own, not a report id
ROUTERS = (health.router, identify.router, parcels.router, reports.router, verify.router, field.router,
           card.router, session.router, audit.router, page.router)

__all__ = ["ROUTERS"]
