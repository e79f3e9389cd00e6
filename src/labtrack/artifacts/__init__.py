"""Artifact roots (a local folder; later S3) and the confinement of artifact paths."""

from labtrack.artifacts.local import ArtifactWriter, LocalArtifactRoot
from labtrack.artifacts.paths import mlflow_artifacts_rel

__all__ = ["ArtifactWriter", "LocalArtifactRoot", "mlflow_artifacts_rel"]
