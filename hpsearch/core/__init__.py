"""The pure core: study files, spaces, points, regions, plans, records, checks and rules.
May import: nothing of hpsearch outside core, and none of torch, SQLAlchemy, optuna, plotly.
"""
