"""Reports: what a search found, read from storage (read-only) and formatted."""
