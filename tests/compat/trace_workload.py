"""A tracing and assessments workload through the unmodified mlflow client; prints what it observes.

Run as ``python -m tests.compat.trace_workload`` with MLFLOW_TRACKING_URI set (and a token if the
server wants one).  The last line of stdout is one JSON object: every value the client read back,
with the ids it made (traces, runs, models, assessments, experiments) replaced by their order of
creation, so that two servers' observations can be compared as they are.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import mlflow
from mlflow.entities import AssessmentSource, SpanEvent

XSS = "<img src=x onerror=alert(1)><script>alert(2)</script>"
LONG = "long input " * 2000  # ~22 kB, stored and read back whole


@mlflow.trace(span_type="TOOL")
def add(a: int, b: int) -> int:
    return a + b


@mlflow.trace(name="pipeline", attributes={"component": "rag"})
def pipeline(question: str) -> dict[str, Any]:
    with mlflow.start_span("retrieve", span_type="RETRIEVER") as span:
        span.set_inputs({"query": question})
        span.set_outputs([{"doc": "d1", "html": XSS}])
        span.add_event(SpanEvent("hits", attributes={"n": 2}))
    mlflow.update_current_trace(tags={"team": "nlp", "question_len": str(len(question))})
    return {"answer": add(1, len(question) % 7)}


@mlflow.trace(name="fails")
def fails() -> None:
    raise ValueError("the tool broke")


def main() -> None:
    ids: dict[str, str] = {}

    def label(value: str, kind: str) -> str:
        if value not in ids:
            ids[value] = f"{kind}{sum(1 for v in ids.values() if v.startswith(kind))}"
        return ids[value]

    exp_id = mlflow.set_experiment(os.environ.get("TRACE_WORKLOAD_EXPERIMENT", "traces-differential")).experiment_id
    label(exp_id, "E")
    client = mlflow.MlflowClient()
    made: list[str] = []

    pipeline("what is labtrack?")
    made.append(mlflow.get_last_active_trace_id())
    pipeline(LONG)
    made.append(mlflow.get_last_active_trace_id())
    try:
        fails()
    except ValueError:
        pass
    made.append(mlflow.get_last_active_trace_id())
    with mlflow.start_run() as run:
        label(run.info.run_id, "R")
        pipeline("inside a run")
        made.append(mlflow.get_last_active_trace_id())
    model = mlflow.set_active_model(name="chain")
    label(model.model_id, "M")
    pipeline("with a model")
    made.append(mlflow.get_last_active_trace_id())
    mlflow.flush_trace_async_logging()
    for t in made:
        label(t, "T")

    # Assessments: feedback, expectation, an update, an override, a delete.
    fb = mlflow.log_feedback(trace_id=made[0], name="correct", value=True, rationale="matches " + XSS,
                             source=AssessmentSource(source_type="HUMAN", source_id="alice"))
    label(fb.assessment_id, "A")
    ex = mlflow.log_expectation(trace_id=made[0], name="expected", value={"answer": 4})
    label(ex.assessment_id, "A")
    judged = mlflow.log_feedback(trace_id=made[1], name="relevance", value=0.4,
                                 source=AssessmentSource(source_type="LLM_JUDGE", source_id="judge"))
    label(judged.assessment_id, "A")
    over = mlflow.override_feedback(trace_id=made[1], assessment_id=judged.assessment_id, value=0.9,
                                    rationale="a human disagrees")
    label(over.assessment_id, "A")
    mlflow.update_assessment(trace_id=made[0], assessment_id=fb.assessment_id,
                             assessment=mlflow.entities.Feedback(name="correct", value=False))
    gone = mlflow.log_feedback(trace_id=made[2], name="temporary", value="x")
    label(gone.assessment_id, "A")
    mlflow.delete_assessment(trace_id=made[2], assessment_id=gone.assessment_id)

    # Tags and links.
    mlflow.set_trace_tag(made[0], "reviewed", "yes")
    mlflow.set_trace_tag(made[1], "reviewed", "no")
    mlflow.delete_trace_tag(made[0], "team")
    with mlflow.start_run() as linked:
        label(linked.info.run_id, "R")
    client.link_traces_to_run([made[2]], linked.info.run_id)

    obs: dict[str, Any] = {"traces": {}, "searches": {}}
    for t in made:
        trace = mlflow.get_trace(t)
        info = trace.info
        by_id = {s.span_id: s for s in trace.data.spans}
        obs["traces"][ids[t]] = {
            "trace_id_round_trip": info.trace_id == t,
            "state": str(info.state),
            "experiment": ids.get(info.experiment_id),
            "tags": {k: v for k, v in info.tags.items() if k != "mlflow.artifactLocation"},
            "artifact_location_ends": info.tags.get("mlflow.artifactLocation", "").endswith(f"/traces/{t}/artifacts"),
            "metadata": {k: ids.get(v, v) for k, v in info.trace_metadata.items()
                         if k in ("mlflow.sourceRun", "mlflow.modelId", "mlflow.traceInputs",
                                  "mlflow.traceOutputs", "mlflow.trace_schema.version")},
            "request_preview": info.request_preview,
            "response_preview": info.response_preview,
            "spans": sorted([{
                "name": s.name, "type": s.span_type, "status": str(s.status.status_code),
                "parent": by_id[s.parent_id].name if s.parent_id else None,
                "inputs": s.inputs, "outputs": s.outputs,
                "events": [(e.name, e.attributes) for e in s.events],
                "attributes": {k: v for k, v in s.attributes.items() if k in ("component", "mlflow.spanFunctionName")},
                "trace_id": s.trace_id == t,
            } for s in trace.data.spans], key=lambda d: d["name"]),
            "assessments": sorted([{
                "id": ids.get(a.assessment_id, "?"), "name": a.name, "value": a.value,
                "rationale": getattr(a, "rationale", None), "valid": a.valid,
                "source": (a.source.source_type, a.source.source_id), "overrides": ids.get(a.overrides or "", None),
                "trace": ids.get(a.trace_id),
            } for a in info.assessments], key=lambda d: d["id"]),
        }

    def found(**kw: Any) -> list[str]:
        return [ids.get(t.info.trace_id, t.info.trace_id)
                for t in mlflow.search_traces(locations=[exp_id], return_type="list", **kw)]

    obs["searches"] = {
        "all": found(),
        "tag": found(filter_string="tags.reviewed = 'yes'"),
        "tag_like": found(filter_string="tags.team LIKE 'nl%'"),
        "error": found(filter_string="trace.status = 'ERROR'"),
        "ok": found(filter_string="attributes.status = 'OK'"),
        "name": found(filter_string="trace.name = 'fails'"),
        "run": found(run_id=run.info.run_id),
        "slow_first": found(order_by=["execution_time_ms DESC"])[:0],  # durations differ by host load
        "oldest_first": found(order_by=["timestamp_ms ASC"]),
        "metadata": found(filter_string=f"metadata.`mlflow.modelId` = '{model.model_id}'"),
        "since": found(filter_string="trace.timestamp_ms > 0"),
        "linked": found(run_id=linked.info.run_id),
        "span_name": found(filter_string="span.name = 'retrieve'"),
        "span_type": found(filter_string="span.type = 'TOOL'"),
        "feedback": found(filter_string="feedback.correct IS NOT NULL"),
        "text": found(filter_string="trace.text LIKE '%inside a run%'"),
        "in": found(filter_string=f"trace.request_id IN ('{made[0]}', '{made[2]}')"),
    }
    try:
        found(filter_string="tags.reviewed = 'yes' OR tags.reviewed = 'no'")
        obs["searches"]["bad_filter"] = "accepted"
    except mlflow.exceptions.MlflowException as e:
        obs["searches"]["bad_filter"] = e.error_code
    pages: list[list[str]] = []
    token = None
    for _ in range(10):
        page = client.search_traces(locations=[exp_id], max_results=2, page_token=token,
                                    order_by=["timestamp_ms ASC"], include_spans=False)
        pages.append([ids[t.info.trace_id] for t in page])
        token = page.token
        if not token:
            break
    obs["searches"]["pages"] = pages
    deleted = client.delete_traces(exp_id, trace_ids=[made[4]])
    obs["deleted"] = deleted
    obs["searches"]["after_delete"] = found()
    obs["datasets"] = datasets(exp_id)
    print(json.dumps(obs, sort_keys=True, default=str))


def datasets(exp_id: str) -> dict[str, Any]:
    """mlflow.genai.datasets, and mlflow.genai.evaluate on one of them."""
    from mlflow.genai import datasets as gd
    from mlflow.genai.scorers import scorer

    ds = gd.create_dataset(name="qa " + XSS, experiment_id=exp_id, tags={"team": "nlp"})
    ds.merge_records([{"inputs": {"q": "a"}, "expectations": {"answer": "A"}},
                      {"inputs": {"q": "b"}, "expectations": {"answer": "x"}, "tags": {"k": "1"}}])
    # Same inputs: merged into the record, not added.
    ds.merge_records([{"inputs": {"q": "b"}, "expectations": {"style": "short"}},
                      {"inputs": {"q": "c", "long": LONG}}])
    again = gd.get_dataset(dataset_id=ds.dataset_id)
    df = again.to_df()
    rows = sorted(({"inputs": {k: v[:20] for k, v in r["inputs"].items()}, "expectations": r["expectations"]}
                   for r in df.to_dict("records")), key=lambda r: json.dumps(r, sort_keys=True))
    by_name = gd.get_dataset(name="qa " + XSS)
    gd.set_dataset_tags(dataset_id=ds.dataset_id, tags={"stage": "dev"})
    gd.delete_dataset_tag(dataset_id=ds.dataset_id, key="team")
    found = gd.search_datasets(experiment_ids=[exp_id], filter_string="name LIKE 'qa%'")
    tags = {k: v for k, v in gd.get_dataset(dataset_id=ds.dataset_id).tags.items() if not k.startswith("mlflow.")}

    @scorer
    def exact(outputs: Any, expectations: dict[str, Any]) -> bool:
        return outputs == expectations.get("answer")

    mlflow.set_experiment(os.environ.get("TRACE_WORKLOAD_EXPERIMENT", "traces-differential") + "-eval")
    small = gd.create_dataset(name="small")
    small.merge_records([{"inputs": {"question": "a"}, "expectations": {"answer": "A"}},
                         {"inputs": {"question": "b"}, "expectations": {"answer": "x"}}])
    result = mlflow.genai.evaluate(data=small, predict_fn=lambda question: question.upper(), scorers=[exact])
    evaluated = mlflow.search_traces(run_id=result.run_id, return_type="list")
    return {
        "rows": rows, "count": len(df), "name": again.name, "same_by_name": by_name.dataset_id == ds.dataset_id,
        "found": [d.dataset_id == ds.dataset_id for d in found], "tags": tags,
        "experiments": again.experiment_ids == [exp_id],
        "eval_metrics": {k: float(v) for k, v in result.metrics.items()},
        "eval_assessments": sorted(sorted((a.name, str(a.value)) for a in t.info.assessments) for t in evaluated),
    }


if __name__ == "__main__":
    main()
    sys.stdout.flush()
