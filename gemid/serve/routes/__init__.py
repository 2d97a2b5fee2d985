"""The service's routes, one module per resource, each with a module-level `router`: `health` (probes and
metrics), `identify` (POST /v1/identify), `reports` (the stored reports, /v1/reports) and `page` (the
technician web page). What they share (the store, the model, the settings...) comes from gemid.serve.deps.
"""

from gemid.serve.routes import health, identify, page, reports

ROUTERS = (health.router, identify.router, reports.router, page.router)  # in the order the docs list them

__all__ = ["ROUTERS"]
