"""Model-registry entities: registered models and their versions (reference §3).

A leaf module beside :mod:`labtrack.entities`, shared by the store (which
renders them) and the client (which parses them); it imports only that module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labtrack.entities import with_present

# Canonical stage names, matched case-insensitively on input (reference §2.4).
STAGES = ("None", "Staging", "Production", "Archived")
# The stages whose current holders ``archive_existing_versions`` may archive.
ACTIVE_STAGES = ("Staging", "Production")
# A deleted version keeps its row under this stage so its number is never reused.
DELETED_STAGE = "Deleted_Internal"
MODEL_VERSION_STATUSES = ("PENDING_REGISTRATION", "FAILED_REGISTRATION", "READY")


def _tags_json(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def _tags_parse(items: Any) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in items or []}


def _opt_int(v: Any) -> int | None:
    return None if v is None or v == "" else int(v)


@dataclass
class ModelVersion:
    """One version of a registered model; ``version`` is a string ("1", "2", ...)."""

    name: str
    version: str
    creation_timestamp: int
    last_updated_timestamp: int
    source: str
    current_stage: str = "None"
    status: str = "READY"
    description: str | None = None
    user_id: str | None = None
    run_id: str | None = None
    run_link: str | None = None
    status_message: str | None = None
    model_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "version": self.version,
            "creation_timestamp": self.creation_timestamp,
            "last_updated_timestamp": self.last_updated_timestamp,
            "current_stage": self.current_stage, "source": self.source, "status": self.status,
            "tags": _tags_json(self.tags), "aliases": list(self.aliases),
        }
        return with_present(out, self, ("description", "user_id", "run_id", "run_link", "status_message",
                                        "model_id"))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelVersion:
        return cls(
            name=d.get("name", ""), version=str(d.get("version", "")),
            creation_timestamp=_opt_int(d.get("creation_timestamp")) or 0,
            last_updated_timestamp=_opt_int(d.get("last_updated_timestamp")) or 0,
            source=d.get("source", ""), current_stage=d.get("current_stage", "None"),
            status=d.get("status", "READY"), description=d.get("description"),
            user_id=d.get("user_id"), run_id=d.get("run_id"), run_link=d.get("run_link"),
            status_message=d.get("status_message"), model_id=d.get("model_id"),
            tags=_tags_parse(d.get("tags")), aliases=list(d.get("aliases") or []),
        )


@dataclass
class RegisteredModel:
    """A named model; ``latest_versions`` holds the newest version in each stage."""

    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str | None = None
    user_id: str | None = None
    latest_versions: list[ModelVersion] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> version

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "creation_timestamp": self.creation_timestamp,
            "last_updated_timestamp": self.last_updated_timestamp,
            "latest_versions": [v.to_json() for v in self.latest_versions],
            "tags": _tags_json(self.tags),
            "aliases": [{"alias": a, "version": v} for a, v in self.aliases.items()],
        }
        return with_present(out, self, ("description", "user_id"))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RegisteredModel:
        return cls(
            name=d.get("name", ""),
            creation_timestamp=_opt_int(d.get("creation_timestamp")) or 0,
            last_updated_timestamp=_opt_int(d.get("last_updated_timestamp")) or 0,
            description=d.get("description"), user_id=d.get("user_id"),
            latest_versions=[ModelVersion.from_json(v) for v in d.get("latest_versions") or []],
            tags=_tags_parse(d.get("tags")),
            aliases={a["alias"]: str(a.get("version", "")) for a in d.get("aliases") or []},
        )
