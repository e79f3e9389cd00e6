"""``lt`` tracing against a real labtrack server: spans, errors, reading back, feedback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

import labtrack as lt
from labtrack.errors import LabtrackError
from tests.client.conftest import CLIENT_ENV, TrackingServer, start_labtrack, stop
from tests.client_state import reset_client_state


@pytest.fixture(scope="module")
def labtrack_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    server = start_labtrack(tmp_path_factory.mktemp("lt-tracing"))
    yield server
    stop(server.proc)


@pytest.fixture
def traced(labtrack_server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrackingServer]:
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", labtrack_server.token or "")
    reset_client_state()
    lt.set_tracking_uri(labtrack_server.uri)
    lt.set_experiment(f"traces-{uuid.uuid4().hex[:8]}")
    yield labtrack_server
    reset_client_state()


@lt.trace(span_type="LLM")
def llm(prompt: str, temperature: float = 0.0) -> str:
    span = lt.get_current_active_span()
    assert span is not None and span.name == "llm"
    span.set_token_usage(7, 3)
    return f"echo: {prompt}"


@lt.trace(name="rag")
def rag(question: str) -> dict[str, str]:
    with lt.start_span("retrieve", span_type="RETRIEVER", inputs={"q": question}) as span:
        span.set_outputs(["<script>doc</script>"])
        span.add_event("hits", {"n": 1})
    lt.update_current_trace(tags={"team": "nlp"})
    return {"answer": llm(question, temperature=0.5)}


def test_spans_nest_and_read_back(traced: TrackingServer) -> None:
    assert lt.get_current_active_span() is None
    assert rag("why?") == {"answer": "echo: why?"}
    first = lt.get_last_active_trace_id()
    with lt.start_run() as run:
        rag("in a run")
    in_run = lt.get_last_active_trace_id()
    with pytest.raises(ZeroDivisionError):
        with lt.trace("divide") as span:
            span.set_inputs({"a": 1, "b": 0})
            _ = 1 / 0
    failed = lt.get_last_active_trace_id()

    async def fetch() -> int:
        @lt.trace
        async def slow_tool(n: int) -> int:
            await asyncio.sleep(0.01)
            return n * 2
        return await slow_tool(21)
    assert asyncio.run(fetch()) == 42
    lt.flush()

    traces = lt.search_traces(return_type="list")
    assert [t.trace_id for t in traces][1:] == [failed, in_run, first]
    t = lt.get_trace(first)
    assert t.state == "OK" and t.tags["team"] == "nlp" and t.tags["mlflow.traceName"] == "rag"
    spans = {s.name: s for s in t.spans}
    assert spans["rag"].parent_id is None
    assert spans["retrieve"].parent_id == spans["llm"].parent_id == spans["rag"].span_id
    assert spans["llm"].inputs == {"prompt": "why?", "temperature": 0.5}
    assert spans["retrieve"].outputs == ["<script>doc</script>"]
    assert spans["retrieve"].events[0]["name"] == "hits" and spans["retrieve"].events[0]["attributes"] == {"n": 1}
    assert spans["rag"].outputs == {"answer": "echo: why?"}
    assert t.trace_metadata["mlflow.trace.tokenUsage"] == '{"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}'
    assert lt.get_trace(in_run).trace_metadata["mlflow.sourceRun"] == run.info.run_id
    bad = lt.get_trace(failed)
    assert bad.state == "ERROR" and bad.spans[0].status == "ERROR"
    assert bad.spans[0].events[0]["attributes"]["exception.type"] == "ZeroDivisionError"

    # Search: MLflow's filter grammar, and pandas.
    assert [x.trace_id for x in lt.search_traces(filter_string="trace.status = 'ERROR'", return_type="list")] == [failed]
    assert {x.trace_id for x in lt.search_traces(filter_string="tags.team = 'nlp'", return_type="list")} == {first, in_run}
    df = lt.search_traces(filter_string="span.type = 'LLM'", order_by=["timestamp_ms ASC"])
    assert list(df["trace_id"]) == [first, in_run]
    with pytest.raises(LabtrackError):
        lt.search_traces(filter_string="tags.team = 'nlp' OR trace.status = 'OK'")

    # Feedback, as a user gives it.
    stored = lt.log_feedback(first, "helpful", True, rationale="clear", source_id="ana")
    assert stored["assessment_id"].startswith("a-")
    again = lt.get_trace(first).assessments
    assert [(a["assessment_name"], a["feedback"]["value"], a["source"]["source_id"]) for a in again] == \
        [("helpful", True, "ana")]
    assert [x.trace_id for x in lt.search_traces(filter_string="feedback.helpful = 'true'", return_type="list")] == [first]


def test_synchronous_mode_and_rejections(traced: TrackingServer) -> None:
    lt.set_async(False)
    try:
        with lt.trace("now"):
            pass
        # Sent before the block returned: readable at once, with no flush.
        assert lt.get_trace(lt.get_last_active_trace_id()).spans[0].name == "now"
    finally:
        lt.set_async(True)
    from labtrack.client import fluent

    fluent._state.experiment_id = "987654"  # no such experiment: the server refuses the trace
    with lt.trace("lost"):
        pass
    with pytest.raises(LabtrackError, match="not delivered"):
        lt.flush()



def test_lt_traces_read_back_on_either_server(server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """lt.trace logs to a real mlflow server too (OTLP spans, then the trace's info), as to labtrack."""
    import mlflow

    if server.token:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)

    rag("both?")
    trace_id = lt.get_last_active_trace_id()
    lt.flush()
    t = lt.get_trace(trace_id)
    spans = {s.name: s for s in t.spans}
    assert set(spans) == {"rag", "retrieve", "llm"} and spans["retrieve"].parent_id == spans["rag"].span_id
    assert spans["llm"].inputs == {"prompt": "both?", "temperature": 0.5}
    assert t.tags["team"] == "nlp" and t.state == "OK"
    # The unmodified mlflow client reads the same trace.
    seen = mlflow.MlflowClient(server.uri).get_trace(trace_id)
    assert sorted(s.name for s in seen.data.spans) == ["llm", "rag", "retrieve"]
    assert seen.info.token_usage == {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
    found = lt.search_traces(filter_string="tags.team = 'nlp'", return_type="list")
    assert [x.trace_id for x in found] == [trace_id]
