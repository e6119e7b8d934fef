"""The data-arrival sensor with a catalog larger than one tick reads: nothing is missed or counted twice,
and a processing registered after its data arrived is told of all of it at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets.loop.step_states import StepStates
from b2cal_assets_tests.defs.conftest import make_processing, make_site
from b2cal_assets_tests.defs.driver import evaluate

TAGS = ("hadron_calib", "bhabha_all_calib")


@dataclass(frozen=True)
class CatalogEntry:
    """What ``admin.register_files`` reads of a file."""

    path: str
    data_tag: str
    exp: int
    run: int
    n_events: int
    size_bytes: int = 1000
    data_format: str = "raw"
    run_info: dict[str, Any] = field(default_factory=dict)


def entries(first: int, count: int, runs: range) -> list[CatalogEntry]:
    return [
        CatalogEntry(
            path=f"/data/{TAGS[(i // len(runs)) % 2]}/r{runs[i % len(runs)]}/f{i}.root",
            data_tag=TAGS[(i // len(runs)) % 2],
            exp=1,
            run=runs[i % len(runs)],
            n_events=10,
        )
        for i in range(first, first + count)
    ]


def reported(events: list[dg.AssetMaterialization]) -> dict[tuple[str, str], tuple[int, int]]:
    """(processing, tag) -> (files, events) summed over the materialisations."""
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for event in events:
        key = (str(event.partition), event.asset_key.path[-1])
        files, n = totals.get(key, (0, 0))
        meta = event.metadata
        totals[key] = (files + meta["new_files"].value, n + meta["events"].value)
    return totals


def drain(defs, instance, cursor):
    """Tick until a tick reports nothing; every tick's materialisations, and the last cursor."""
    events: list[dg.AssetMaterialization] = []
    for _ in range(20):
        result = evaluate(defs, "data_arrival_sensor", instance, cursor)
        cursor = result.cursor
        if not result.asset_events:
            return events, cursor
        events += list(result.asset_events)
    raise AssertionError("the data-arrival sensor never caught up")


def test_a_late_processing_is_told_of_every_file_that_arrived_before_it(toy_home, toy_defs):
    make_site()
    runs = range(1, 11)
    admin.register_files(entries(0, 6000, runs), site_name="toy_site")  # more than one tick reads (5000)
    make_processing("early", range(1, 6))
    with dg.instance_for_test() as instance:
        events, cursor = drain(toy_defs, instance, None)
        # 6000 files over runs 1-10, half per tag; "early" holds runs 1-5: 3000 files, 1500 per tag
        assert reported(events) == {("early", t): (1500, 15000) for t in TAGS}

        make_processing("late", range(6, 11))  # registered after all its data arrived
        admin.register_files(entries(6000, 400, runs), site_name="toy_site")  # and some more arrive
        events, cursor = drain(toy_defs, instance, cursor)
        totals = reported(events)
        assert totals[("late", TAGS[0])] == (1500 + 100, 16000)
        assert totals[("late", TAGS[1])] == (1500 + 100, 16000)
        assert totals[("early", TAGS[0])] == (100, 1000)  # only what is new for the early one
        assert totals[("early", TAGS[1])] == (100, 1000)
        runs_late = {r for e in events if e.partition == "late" for r in e.metadata["runs"].value.split(", ")}
        assert runs_late == {f"1/{r}" for r in range(6, 11)}


def test_the_loop_sees_a_tag_only_inside_the_processing_iov(toy_home):
    make_site()
    admin.register_files(entries(0, 20, range(1, 3)), site_name="toy_site")
    admin.register_files(
        [CatalogEntry(path="/data/cosmic/r9.root", data_tag="cosmic_calib", exp=1, run=9, n_events=1)],
        site_name="toy_site",
    )
    make_processing("p1", range(1, 3))
    make_processing("p9", range(9, 10))
    service = loop_service()
    states = StepStates(service.ctx)
    with service.ctx.session() as s:
        assert states.available_tags(s, "p1") == set(TAGS) & _needed(service)
        assert states.available_tags(s, "p9") == set()  # cosmics are read by no toy script


def _needed(service) -> set[str]:
    return {tag for step in service.ctx.steps.values() for tag in step.raw_data_names}
