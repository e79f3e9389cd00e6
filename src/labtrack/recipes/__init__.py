"""Recipes: a small ML project laid out as steps (ingest, split, transform, train, evaluate,
register), each a plain Python module, run with caching and tracked as child runs.

``labtrack recipes init classification|regression`` writes one; ``labtrack
recipes run`` runs it (``recipe``, ``card``, ``runner``).
"""
