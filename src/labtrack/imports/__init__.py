"""``labtrack import``: MLflow data (an SQL store, a file store or a server) copied into labtrack.

Sources (``sql_source``, ``file_source``, ``rest_source``) read MLflow's data
into the plain records of ``records`` without changing a byte of it; the
store's ``mlflow_import`` writes those records in bulk through the one writer;
``importer`` ties them together, holding the target database's ownership
record as ``labtrack sync`` does, and copies artifacts.
"""
