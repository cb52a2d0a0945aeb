"""Reports: what a search found, read from storage (read-only) and formatted.
May import: core, training, objectives, store.
"""
