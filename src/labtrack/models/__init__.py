"""Models: the MLflow model format (an ``MLmodel`` folder), flavors, pyfunc loading, serving.

``lt.sklearn``, ``lt.pyfunc`` and ``lt.pytorch`` are the flavor modules here,
imported on first use (they bring numpy, pandas and the framework).  A model
folder that labtrack writes loads with ``mlflow.pyfunc.load_model``, and one
that MLflow writes loads with ``lt.pyfunc.load_model``.
"""
