"""Manifests, importers, audits, splits and the synthetic stone renderer."""
