"""The reindex's quality-gate figures and rule (router/quality_gate.py), its options' checks, and the write gate
that keeps a backfill step from interleaving with a user's write (router/reindex.py)."""

from __future__ import annotations

import asyncio

import pytest

from simsearch import InvalidArgument
from simsearch.router.quality_gate import GateRule, labelled_metrics, overlap, ranked_labels
from simsearch.router.reindex import ReindexOptions, WriteGate

pytestmark = pytest.mark.unit


def test_metrics_by_hand():
    # query q1 (label a, 2 others share it): hits a, b, a -> P@1 1, AP = (1/1 + 2/3) / 2
    # query q2 (label b, 1 other): hits a, b -> P@1 0, R@2 1, AP = (0) / 1 over rank <= R=1
    label_of = {"q1": "a", "x": "a", "y": "b", "z": "a", "q2": "b"}
    ranked = ranked_labels([["q1", "x", "y", "z"], ["x", "y", "q2"]], ["q1", "q2"], label_of)
    assert ranked == [["a", "b", "a"], ["a", "b"]]
    m = labelled_metrics(ranked, ["a", "b"], [2, 1], k=2)
    assert m["p_at_1"] == 0.5 and m["r_at_2"] == 1.0 and m["queries"] == 2
    assert m["map_at_r"] == pytest.approx(((1 + 0) / 2 + 0) / 2)  # q1: ranks 1..2 = a, b -> (1/1)/2


def test_overlap_and_rule():
    assert overlap([["a", "b"], ["c", "d"]], [["b", "a"], ["c", "x"]], 2) == pytest.approx(0.75)
    cur = {"p_at_1": 0.80, "map_at_r": 0.50}
    assert GateRule().decide(cur, {"p_at_1": 0.80, "map_at_r": 0.50}, float("nan"))[0]  # as good: passes
    ok, why = GateRule(min_gain=0.02).decide(cur, {"p_at_1": 0.81, "map_at_r": 0.60}, 0.9)
    assert not ok and "p_at_1 0.8100 < 0.8000 + 0.02" in why
    assert GateRule(min_gain=-0.05).decide(cur, {"p_at_1": 0.77, "map_at_r": 0.46}, 0.9)[0]  # a tolerated loss
    ok, why = GateRule(min_overlap=0.5).decide(cur, {"p_at_1": 0.9, "map_at_r": 0.6}, 0.3)
    assert not ok and "overlap 0.300 < 0.5" in why


@pytest.mark.parametrize("options, field", [
    (dict(), "label_field"), (dict(label_field="y", k=0), "k"), (dict(label_field="y", eval_size=5), "eval_size"),
    (dict(label_field="y", canary_fraction=0.6), "canary_fraction"),
    (dict(label_field="y", min_gain=float("nan")), "min_gain"),
    (dict(label_field="y", eval_filter={"$bogus": 1}), "eval_filter"),
])
def test_options_are_checked_by_name(options, field):
    with pytest.raises(InvalidArgument) as e:
        ReindexOptions(**options).checked()
    assert e.value.field.startswith(field)


def test_skip_gate_needs_no_labels():
    assert ReindexOptions(skip_gate=True).checked().skip_gate


def test_the_exclusive_step_waits_for_writes_in_flight_and_holds_new_ones():
    async def run() -> list[str]:
        gate, order = WriteGate(), []

        async def write(name: str, hold: float) -> None:
            async with gate.shared():
                order.append(f"{name} starts")
                await asyncio.sleep(hold)
                order.append(f"{name} ends")

        async def step() -> None:
            async with gate.exclusive():
                order.append("step")
                await asyncio.sleep(0.02)
                order.append("step ends")

        first = asyncio.ensure_future(write("w1", 0.05))
        await asyncio.sleep(0.01)
        s = asyncio.ensure_future(step())
        await asyncio.sleep(0.01)
        late = asyncio.ensure_future(write("w2", 0.0))  # arrives while the step waits: goes after it
        await asyncio.gather(first, s, late)
        return order

    assert asyncio.run(run()) == ["w1 starts", "w1 ends", "step", "step ends", "w2 starts", "w2 ends"]


def test_map_at_r_caps_r_at_the_depth_the_serving_path_answers():
    from simsearch.router.quality_gate import MAX_DEPTH

    full = [["a"] * MAX_DEPTH]  # a class of 500: every one of the first 100 hits relevant
    assert labelled_metrics(full, ["a"], [500], k=10)["map_at_r"] == 1.0
    half = [["a", "b"] * (MAX_DEPTH // 2)]
    assert labelled_metrics(half, ["a"], [500], k=10)["map_at_r"] == pytest.approx(
        sum((i + 1) / (2 * i + 1) for i in range(MAX_DEPTH // 2)) / MAX_DEPTH)


@pytest.mark.parametrize("canary, current, passed", [
    ((100, 0.0, 5.0), (100, 0.0, 4.0), True),
    ((100, 0.05, 5.0), (100, 0.0, 4.0), False),  # errors
    ((100, 0.0, 12.0), (100, 0.0, 4.0), False),  # slower than 2x + 1 ms
    ((5, 0.0, 50.0), (100, 0.0, 4.0), True),  # too few canary searches to judge latency
])
def test_canary_verdict(canary, current, passed):
    from simsearch.router.quality_gate import canary_verdict

    f = {"canary_searches": canary[0], "canary_error_rate": canary[1], "canary_p50_ms": canary[2],
         "current_searches": current[0], "current_error_rate": current[1], "current_p50_ms": current[2]}
    ok, reason = canary_verdict(f, 2.0)
    assert ok == passed and (reason == "no regression") == passed


def test_filter_shape_names_fields_and_operators_not_values():
    from simsearch.contract.filters import parse
    from simsearch.router.recall_monitor import filter_shape

    assert filter_shape(None) == ""
    a = filter_shape(parse({"color": "red", "price": {"$lt": 10}}))
    b = filter_shape(parse({"price": {"$lt": 99}, "color": "blue"}))
    assert a == b and "color" in a and "price" in a and "red" not in a
    assert filter_shape(parse({"$not": {"color": "red"}})) == filter_shape(parse({"color": "green"}))
