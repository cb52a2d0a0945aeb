"""The engine: workers, stage preparation, fail fast, retries, progress and signals.
May import: core, training, objectives, store, report.
"""
