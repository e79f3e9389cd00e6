"""The prompt registry in ``lt``: ``register_prompt``, ``load_prompt``, ``search_prompts``.

MLflow keeps a prompt as a registered model tagged ``mlflow.prompt.is_prompt``
and each version as a model version whose ``mlflow.prompt.text`` tag holds the
template (a string with ``{{variables}}``, or a JSON list of chat messages) and
whose description is the commit message.  These functions write and read that
shape over the registry REST API, so prompts made here load with
``mlflow.genai.load_prompt`` and the other way round, on labtrack or MLflow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from labtrack.errors import InvalidParameterValue, ResourceAlreadyExists

IS_PROMPT_TAG = "mlflow.prompt.is_prompt"
TEXT_TAG = "mlflow.prompt.text"
TYPE_TAG = "_mlflow_prompt_type"
# What MLflow's own client sends as a prompt version's (unused) source.
PROMPT_SOURCE = "prompt-template"
# The tags MLflow keeps for itself; a PromptVersion's ``tags`` leaves them out.
_INTERNAL_TAGS = frozenset({IS_PROMPT_TAG, TEXT_TAG, TYPE_TAG, "_mlflow_prompt_response_format",
                            "_mlflow_prompt_model_config"})
VARIABLE = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*(?:\.[a-zA-Z_][a-zA-Z0-9_]*)*)\s*\}\}")
_NAME = re.compile(r"^[a-zA-Z0-9_.-]+$")
_URI = re.compile(r"^prompts:/([^/@]+)(?:/(\d+)|@([A-Za-z0-9_.-]+))?$")


@dataclass
class PromptVersion:
    """One version of a registered prompt."""

    name: str
    version: int
    template: str | list[dict[str, Any]]
    commit_message: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    creation_timestamp: int | None = None

    @property
    def variables(self) -> set[str]:
        """The ``{{variable}}`` names the template uses."""
        text = self.template if isinstance(self.template, str) else json.dumps(self.template)
        return set(VARIABLE.findall(text))

    @property
    def uri(self) -> str:
        return f"prompts:/{self.name}/{self.version}"

    def format(self, **values: Any) -> str | list[dict[str, Any]]:
        """The template with each ``{{variable}}`` replaced by ``values[variable]``."""
        missing = self.variables - set(values)
        if missing:
            raise InvalidParameterValue(f"Missing variables for prompt {self.name!r}: {sorted(missing)}")

        def fill(text: str) -> str:
            return VARIABLE.sub(lambda m: str(values[m.group(1)]), text)
        if isinstance(self.template, str):
            return fill(self.template)
        return [{**m, "content": fill(str(m.get("content", "")))} for m in self.template]

    @classmethod
    def from_json(cls, mv: dict[str, Any]) -> PromptVersion:
        tags = {t["key"]: t.get("value", "") for t in mv.get("tags") or []}
        text = tags.get(TEXT_TAG, "")
        template: str | list[dict[str, Any]] = json.loads(text) if tags.get(TYPE_TAG) == "chat" else text
        return cls(name=mv["name"], version=int(mv["version"]), template=template,
                   commit_message=mv.get("description") or None,
                   tags={k: v for k, v in tags.items() if k not in _INTERNAL_TAGS},
                   aliases=list(mv.get("aliases") or []),
                   creation_timestamp=mv.get("creation_timestamp"))


@dataclass
class Prompt:
    """A registered prompt (its versions are loaded with :func:`load_prompt`)."""

    name: str
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    creation_timestamp: int | None = None


def _client(client: Any) -> Any:
    if client is not None:
        return client
    from labtrack.client import fluent

    return fluent._client()


def register_prompt(name: str, template: str | list[dict[str, Any]], commit_message: str | None = None,
                    tags: dict[str, Any] | None = None, *, client: Any = None) -> PromptVersion:
    """Register ``template`` as the next version of prompt ``name`` (created if new).

    ``template`` is text with ``{{variables}}`` or a list of chat messages
    (``{"role", "content"}``); ``commit_message`` says what changed.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidParameterValue(f"Invalid prompt name {name!r}: use letters, digits, '_', '-' and '.'.")
    if isinstance(template, str):
        text, kind = template, "text"
    elif isinstance(template, list) and all(isinstance(m, dict) and "role" in m for m in template):
        text, kind = json.dumps(template), "chat"
    else:
        raise InvalidParameterValue("A prompt template is a string or a list of {'role', 'content'} messages.")
    c = _client(client)
    try:
        c._call("POST", "registered-models/create",
                {"name": name, "tags": [{"key": IS_PROMPT_TAG, "value": "true"}]})
    except ResourceAlreadyExists:
        pass  # a further version of an existing prompt
    version_tags = [{"key": IS_PROMPT_TAG, "value": "true"}, {"key": TEXT_TAG, "value": text},
                    {"key": TYPE_TAG, "value": kind}]
    version_tags += [{"key": str(k), "value": str(v)} for k, v in (tags or {}).items()]
    message: dict[str, Any] = {"name": name, "source": PROMPT_SOURCE, "tags": version_tags}
    if commit_message:
        message["description"] = commit_message
    reply = c._call("POST", "model-versions/create", message)
    return PromptVersion.from_json(reply["model_version"])


def load_prompt(name_or_uri: str, version: int | str | None = None, *, client: Any = None) -> PromptVersion:
    """A prompt version: ``prompts:/name/3``, ``prompts:/name@alias`` (``@latest`` is the
    newest), or a name with ``version`` (the newest when None)."""
    alias: str | None = None
    name = name_or_uri
    m = _URI.match(name_or_uri)
    if m:
        name, number, alias = m.group(1), m.group(2), m.group(3)
        version = number if number is not None else version
    elif name_or_uri.startswith("prompts:/"):
        raise InvalidParameterValue(f"Invalid prompt URI {name_or_uri!r}: use prompts:/<name>/<version> "
                                    "or prompts:/<name>@<alias>.")
    c = _client(client)
    if alias and alias != "latest":
        reply = c._read("GET", "registered-models/alias", {"name": name, "alias": alias})
        return PromptVersion.from_json(reply["model_version"])
    if version is None:
        versions = c._read("GET", "model-versions/search", {
            "filter": f"name = '{_quote(name)}' AND tags.`{IS_PROMPT_TAG}` = 'true'",
            "order_by": ["version_number DESC"], "max_results": 1}).get("model_versions") or []
        if not versions:
            from labtrack.errors import ResourceDoesNotExist

            raise ResourceDoesNotExist(f"Prompt {name!r} has no versions.")
        return PromptVersion.from_json(versions[0])
    reply = c._read("GET", "model-versions/get", {"name": name, "version": str(version)})
    return PromptVersion.from_json(reply["model_version"])


def search_prompts(filter_string: str | None = None, max_results: int = 100, *,
                   client: Any = None) -> list[Prompt]:
    """Registered prompts matching an optional registry filter (``name LIKE 'qa%'``)."""
    c = _client(client)
    wanted = f"tags.`{IS_PROMPT_TAG}` = 'true'"
    filter_string = f"{wanted} AND {filter_string}" if filter_string else wanted
    out: list[Prompt] = []
    token: str | None = None
    while len(out) < max_results:
        message: dict[str, Any] = {"filter": filter_string, "max_results": min(1000, max_results - len(out))}
        if token:
            message["page_token"] = token
        reply = c._read("GET", "registered-models/search", message)
        for m in reply.get("registered_models") or []:
            tags = {t["key"]: t.get("value", "") for t in m.get("tags") or []}
            tags.pop(IS_PROMPT_TAG, None)
            out.append(Prompt(name=m["name"], description=m.get("description") or None, tags=tags,
                              aliases={a["alias"]: a["version"] for a in m.get("aliases") or []},
                              creation_timestamp=m.get("creation_timestamp")))
        token = reply.get("next_page_token")
        if not token:
            break
    return out


def set_prompt_alias(name: str, alias: str, version: int | str, *, client: Any = None) -> None:
    """Point ``prompts:/name@alias`` at ``version``."""
    _client(client)._call("POST", "registered-models/alias",
                          {"name": name, "alias": alias, "version": str(version)})


def _quote(text: str) -> str:
    return text.replace("'", "''")
