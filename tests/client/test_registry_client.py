"""``lt.Client``'s model registry and ``lt.register_model`` against real servers (MLflow's and
labtrack's), and every model URI form resolving to the same model."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

import labtrack as lt
from labtrack.client.model_uri import artifact_uri_of, parse_model_uri
from labtrack.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist

# Stages are deprecated in mlflow (not removed); its server warns about them, ours does not.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(server: Any) -> lt.Client:
    return lt.Client(server.uri)


def _run_with_files(client: lt.Client, tmp_path: Path, label: str) -> str:
    """A run whose artifacts hold ``model/weights.txt`` = ``label``."""
    folder = tmp_path / label
    folder.mkdir()
    (folder / "weights.txt").write_text(label)
    with lt.start_run() as run:
        client.log_artifacts(run.info.run_id, folder, "model")
    return run.info.run_id


def test_registered_model_lifecycle(client: lt.Client) -> None:
    name = _name("rm")
    model = client.create_registered_model(name, tags={"team": "ml"}, description="first")
    assert (model.name, model.tags, model.description) == (name, {"team": "ml"}, "first")
    with pytest.raises(ResourceAlreadyExists):
        client.create_registered_model(name)
    client.set_registered_model_tag(name, "stage", "dev")
    client.set_registered_model_tag(name, "stage", 2)  # values are strings; set again overwrites
    client.delete_registered_model_tag(name, "team")
    assert client.get_registered_model(name).tags == {"stage": "2"}
    assert client.update_registered_model(name, "second").description == "second"

    found = client.search_registered_models(f"name = '{name}'")
    assert [m.name for m in found] == [name]
    assert [m.name for m in client.search_registered_models(f"tags.stage = '2' AND name = '{name}'")] == [name]
    renamed = client.rename_registered_model(name, name + "-new")
    assert (renamed.name, renamed.description) == (name + "-new", "second")
    with pytest.raises(ResourceDoesNotExist):
        client.get_registered_model(name)
    client.delete_registered_model(name + "-new")
    assert client.search_registered_models(f"name = '{name}-new'") == []


def test_search_pages_and_prompts_are_hidden(client: lt.Client) -> None:
    prefix = _name("pg")
    for i in range(3):
        client.create_registered_model(f"{prefix}-{i}")
    page = client.search_registered_models(f"name LIKE '{prefix}-%'", max_results=2,
                                           order_by=["name DESC"])
    assert [m.name for m in page] == [f"{prefix}-2", f"{prefix}-1"] and page.token
    rest = client.search_registered_models(f"name LIKE '{prefix}-%'", max_results=2,
                                           order_by=["name DESC"], page_token=page.token)
    assert [m.name for m in rest] == [f"{prefix}-0"] and rest.token is None
    # A prompt is a registered model with this tag; model searches leave it out, as MLflow's do.
    client.set_registered_model_tag(f"{prefix}-1", "mlflow.prompt.is_prompt", "true")
    assert [m.name for m in client.search_registered_models(f"name LIKE '{prefix}-%'")] == [
        f"{prefix}-0", f"{prefix}-2"]


def test_versions_stages_aliases_tags(client: lt.Client, server: Any, tmp_path: Path) -> None:
    name = _name("mv")
    client.create_registered_model(name)
    runs = [_run_with_files(client, tmp_path, f"w{i}") for i in range(3)]
    versions = [client.create_model_version(name, client.get_artifact_uri(r, "model"), run_id=r,
                                            tags={"i": i}, description=f"v{i}")
                for i, r in enumerate(runs)]
    assert [v.version for v in versions] == ["1", "2", "3"]
    assert all(v.status == "READY" and v.current_stage == "None" for v in versions)
    assert versions[0].tags == {"i": "0"} and versions[0].run_id == runs[0]

    v1 = client.transition_model_version_stage(name, 1, "production")
    assert v1.current_stage == "Production"  # stages match case-insensitively
    client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    assert client.get_model_version(name, 1).current_stage == "Archived"
    client.transition_model_version_stage(name, 3, "Staging")
    latest = {v.current_stage: v.version for v in client.get_latest_versions(name)}
    assert latest == {"Archived": "1", "Production": "2", "Staging": "3"}
    assert [v.version for v in client.get_latest_versions(name, ["Staging"])] == ["3"]

    client.set_registered_model_alias(name, "champion", 2)
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert client.get_registered_model(name).aliases == {"champion": "2"}
    client.delete_registered_model_alias(name, "champion")
    # MLflow's server says INVALID_PARAMETER_VALUE here, labtrack's RESOURCE_DOES_NOT_EXIST.
    with pytest.raises((ResourceDoesNotExist, InvalidParameterValue)):
        client.get_model_version_by_alias(name, "champion")

    client.set_model_version_tag(name, 1, "k", "v")
    client.set_model_version_tag(name, key="by-stage", value="x", stage="Staging")
    assert client.get_model_version(name, 3).tags == {"i": "2", "by-stage": "x"}
    client.delete_model_version_tag(name, 1, "k")
    assert client.get_model_version(name, 1).tags == {"i": "0"}
    assert client.update_model_version(name, 1, "updated").description == "updated"

    found = client.search_model_versions(f"name = '{name}'", order_by=["version_number ASC"])
    assert [v.version for v in found] == ["1", "2", "3"]
    assert [v.version for v in client.search_model_versions(f"run_id = '{runs[1]}'")] == ["2"]
    assert client.get_model_version_download_uri(name, 2) == client.get_artifact_uri(runs[1], "model")

    client.delete_model_version(name, 1)
    with pytest.raises(ResourceDoesNotExist):
        client.get_model_version(name, 1)
    copy = client.copy_model_version(f"models:/{name}/2", name + "-copy")
    assert (copy.name, copy.version, copy.run_id) == (name + "-copy", "1", runs[1])


def test_register_model_and_every_uri_form(client: lt.Client, server: Any, tmp_path: Path) -> None:
    name = _name("reg")
    runs = [_run_with_files(client, tmp_path, f"weights-{i}") for i in range(3)]
    # The first registration creates the model; later ones add versions.
    versions = [lt.register_model(f"runs:/{r}/model", name, tags={"n": i})
                for i, r in enumerate(runs)]
    assert [v.version for v in versions] == ["1", "2", "3"]
    assert versions[2].run_id == runs[2] and versions[2].tags == {"n": "2"}
    client.transition_model_version_stage(name, 2, "Staging")
    client.set_registered_model_alias(name, "champion", 1)

    expected = {f"runs:/{runs[0]}/model": "weights-0", f"models:/{name}/1": "weights-0",
                f"models:/{name}/Staging": "weights-1", f"models:/{name}/staging": "weights-1",
                f"models:/{name}@champion": "weights-0", f"models:/{name}/latest": "weights-2"}
    for uri, label in expected.items():
        folder = tmp_path / "dl" / uuid.uuid4().hex
        path = client.download_artifacts(runs[0], "", folder)  # warm: the client works at all
        assert Path(path).is_dir()
        artifact_uri = artifact_uri_of(client, uri)
        from labtrack.client.artifact_repo import ArtifactRepo

        ArtifactRepo(client.transport, artifact_uri).download("", folder / "m")
        assert (folder / "m" / "weights.txt").read_text() == label, uri

    # A registered version can be registered again under another name (its models:/ URI).
    copy = lt.register_model(f"models:/{name}@champion", name + "-b")
    assert copy.version == "1" and copy.run_id == runs[0]
    with pytest.raises(ResourceDoesNotExist):
        artifact_uri_of(client, f"models:/{name}/Production")  # no version in that stage


def test_logged_model_uri_and_registration(client: lt.Client, server: Any) -> None:
    """``models:/<model_id>``: a logged model (MLflow 3) registered and resolved."""
    name = _name("lm")
    with lt.start_run() as run:
        exp_id = run.info.experiment_id
        model = client.create_logged_model(exp_id, name="model", source_run_id=run.info.run_id)
        client.log_outputs(run.info.run_id, [model.model_id])
        from labtrack.client.artifact_repo import ArtifactRepo

        (Path(server.workdir) / "lm.txt").write_text("logged")
        ArtifactRepo(client.transport, model.artifact_uri).log_file(Path(server.workdir) / "lm.txt")
        ready = client.finalize_logged_model(model.model_id)
    assert ready.status == "LOGGED_MODEL_READY"
    assert client.get_run(run.info.run_id).model_outputs[0][0] == model.model_id
    # runs:/<run>/model resolves through the logged model when the run has no such folder.
    assert artifact_uri_of(client, f"runs:/{run.info.run_id}/model") == model.artifact_uri
    assert artifact_uri_of(client, f"models:/{model.model_id}") == model.artifact_uri
    version = lt.register_model(f"models:/{model.model_id}", name)
    assert version.run_id == run.info.run_id
    if server.kind == "labtrack":  # MLflow's server does not echo model_id back
        assert version.model_id == model.model_id
    assert client.get_model_version_download_uri(name, 1) == model.artifact_uri
    tags = client.get_logged_model(model.model_id).tags
    assert '"name": "%s"' % name in tags["mlflow.modelVersions"]


@pytest.mark.parametrize("uri", ["models:/", "models:/name", "models:/a/b/c", "models://x/1",
                                 "models:/@alias", "runs:/"])
def test_malformed_model_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidParameterValue):
        parse_model_uri(uri)


def test_model_uri_forms_parse() -> None:
    ref = parse_model_uri("runs:/abc/path/to/model")
    assert (ref.run_id, ref.path) == ("abc", "path/to/model")
    assert (parse_model_uri("models:/m/007").kind, parse_model_uri("models:/m/007").ref) == ("version", "7")
    assert parse_model_uri("models:/m/Production").kind == "stage"
    assert parse_model_uri("models:/m/latest").kind == "latest"
    assert (parse_model_uri("models:/m@champ").kind, parse_model_uri("models:/m@champ").ref) == ("alias", "champ")
    assert parse_model_uri("models:/m-0123abcd").model_id == "m-0123abcd"
    assert parse_model_uri("mlflow-artifacts:/0/x").kind == "uri"
