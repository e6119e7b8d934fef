"""Ticking the sensors the way the daemon does: run keys are launched once, check-only runs included.

Extends ``defs/driver.py`` (whose ``execute`` runs asset selections) with the asset-check selections
the loop sensor requests after an expert's run or an upload.
"""

from __future__ import annotations

import dagster as dg

from b2cal_assets_tests.defs.driver import evaluate, execute, sensor_tags


def run(defs: dg.Definitions, request: dg.RunRequest, instance: dg.DagsterInstance):
    if request.asset_check_keys is None:
        return execute(defs, request, instance)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(request.asset_selection or []),
        asset_check_selection=set(request.asset_check_keys),
    )
    return job.execute_in_process(
        run_config=request.run_config,
        instance=instance,
        partition_key=request.partition_key,
        tags=sensor_tags(request),
        raise_on_error=False,
    )


class Daemon:
    """Remembers the data-arrival cursor and the run keys already launched, like the real daemon."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance = defs, instance
        self.cursor: str | None = None
        self.launched: set[str] = set()
        self.results: list[tuple[dg.RunRequest, dg.ExecuteInProcessResult]] = []

    def settle(self, max_rounds: int = 10) -> list[tuple[dg.RunRequest, dg.ExecuteInProcessResult]]:
        """Tick until the loop sensor requests nothing new; returns the runs made."""
        made = []
        for _ in range(max_rounds):
            self.cursor = evaluate(self.defs, "data_arrival_sensor", self.instance, self.cursor).cursor
            requests = [
                r
                for r in evaluate(self.defs, "calibration_loop_sensor", self.instance).run_requests
                if r.run_key not in self.launched
            ]
            evaluate(self.defs, "staging_sensor", self.instance)
            if not requests:
                break
            for request in requests:
                self.launched.add(request.run_key)
                made.append((request, run(self.defs, request, self.instance)))
        self.results += made
        return made

    def launch(self, selection, partition: str, *, user: str, config: dict | None = None):
        """What the UI launchpad does for a logged-in user."""
        from b2cal_assets.defs.keys import USER_TAG

        ops = {key.to_python_identifier(): {"config": config or {}} for key in selection}
        request = dg.RunRequest(
            partition_key=partition,
            asset_selection=list(selection),
            run_config={"ops": ops},
            tags={USER_TAG: user},
        )
        return execute(self.defs, request, self.instance)

    def tick_tickets(self):
        return evaluate(self.defs, "ticket_sensor", self.instance)
