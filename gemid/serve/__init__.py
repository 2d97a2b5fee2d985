"""FastAPI service, report store and the technician web page."""
