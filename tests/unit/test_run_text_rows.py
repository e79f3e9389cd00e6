"""search_runs_text writes each run straight from its rows: byte for byte what
Run.to_json_text (and so json.dumps(Run.to_json())) writes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator

import pytest

from labtrack.entities import DatasetInput, Metric
from labtrack.store import loading, run_query
from labtrack.store.tracking import TrackingStore


# Finite floats at the edges of the format each metric takes: the largest doubles, signed
# zero, exponent notation, the smallest subnormal.
_EDGES = (sys.float_info.max, -sys.float_info.max, -0.0, 1e16, 1.5e-7, 5e-324, 123456789012345678.0)


def _fill(store: TrackingStore) -> str:
    exp = store.create_experiment("text")
    odd = "r\u00e9sum\u00e9 \"q\" \\ \t\n \x7f \U0001f600"  # a value: escaped, \u-escaped, surrogates
    key = "r\u00e9sum\u00e9 \u6f22.k/1:x"  # a key may hold letters of any script
    for i in range(7):
        run = store.create_run(exp, start_time=1_700_000_000_000 + i, run_name=f"{odd} {i}" if i % 2 else f"r{i}",
                               user_id=odd if i == 3 else "u").info.run_id
        store.log_batch(run, metrics=[Metric("loss", 0.1 * i + 1e-17, 17 + i, i), Metric(key, -5e-324, 0, 2**62),
                                      Metric("nan", math.nan if i % 2 else 1.0, 1, 0),
                                      Metric("inf", math.inf if i % 3 else -math.inf, 1, -2),
                                      Metric("edge", _EDGES[i % len(_EDGES)], 3, 1)],
                        params=[("lr", "0.001"), (key, odd), ("\u6f22", "\u5b57"), ("empty", "")],
                        tags=[("mlflow.note.content", odd), (f"t{i}", "v")])
        if i == 5:  # a run with inputs goes through the Run object
            store.log_inputs(run, datasets=[DatasetInput(name="ds", digest="1", source_type="local", source="/x",
                                                          tags={"mlflow.data.context": "train"})])
    store.create_run(exp, run_name="bare")  # no params, metrics or tags of its own
    return exp


@pytest.mark.parametrize("filt", ["", "params.lr = '0.001' and metrics.loss > 0.2"])
def test_text_is_each_runs_to_json_text(store: TrackingStore, filt: str) -> None:
    exp = _fill(store)
    runs, token = store.search_runs([exp], filt)
    texts, text_token = store.search_runs_text([exp], filt)
    assert token is None and text_token is None
    assert texts == [r.to_json_text() for r in runs]
    assert [json.loads(t) for t in texts] == json.loads(json.dumps([r.to_json() for r in runs]))
    assert len(texts) == (8 if not filt else 4)


def test_pages_and_order_match_search_runs(store: TrackingStore) -> None:
    exp = _fill(store)
    order = ["metrics.loss DESC"]
    runs, token = store.search_runs([exp], "", max_results=3, order_by=order)
    texts, text_token = store.search_runs_text([exp], "", max_results=3, order_by=order)
    assert texts == [r.to_json_text() for r in runs] and text_token == token and token is not None
    runs2, _ = store.search_runs([exp], "", max_results=3, order_by=order, page_token=token)
    texts2, _ = store.search_runs_text([exp], "", max_results=3, order_by=order, page_token=token)
    assert texts2 == [r.to_json_text() for r in runs2]


def test_a_row_field_of_the_wrong_type_takes_the_general_path(store: TrackingStore) -> None:
    exp = _fill(store)

    def op(conn: object) -> None:
        rows = run_query.page_rows(conn, [int(exp)], "", [], "ACTIVE_ONLY", 0, 100)  # type: ignore[arg-type]
        bent = [(*rows[0][:3], None, *rows[0][4:]), *rows[1:]]  # user_id NULL: not what the schema allows
        texts = loading.runs_text_from_rows(conn, bent)  # type: ignore[arg-type]
        assert texts == [r.to_json_text() for r in loading.runs_from_rows(conn, bent)]  # type: ignore[arg-type]
        assert json.loads(texts[0])["info"]["user_id"] is None
    store.read(op)
