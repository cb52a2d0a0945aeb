"""What a user does with a search beyond running it: compare, best, retrain, manage, dashboard.
May import: core, training, objectives, store, report, engine.
"""
