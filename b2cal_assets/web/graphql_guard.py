"""Permission checks on the webserver's GraphQL mutations, wrapped around each mutation's resolver.

Only the Mutation type's resolvers are wrapped, so queries pay nothing. A wrapped resolver reads the
logged-in user from the request, works out what the mutation touches (assets, processings), asks the
``Authorizer``, and either refuses (an ``UnauthorizedError`` result the UI shows, or a GraphQL error)
or stamps the run tags with the user, writes the audit entry and runs the original resolver.
A mutation this module does not know is for admins only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml
from dagster_graphql.schema.errors import GrapheneUnauthorizedError
from graphql import GraphQLError, GraphQLSchema, GraphQLUnionType, get_named_type

from b2cal_assets.web.permissions import Authorizer, Decision, Target, asset_keys_from_paths
from b2cal_assets.web.roles import Role
from b2cal_assets.web.sessions import SessionUser

log = logging.getLogger(__name__)

USER_TAG = "b2cal/user"
ROLE_TAG = "b2cal/role"  # the role of the user who launched, for the loop's own check (loop/authority.py)
RESERVED_TAG_PREFIXES = ("dagster/", "b2cal/")  # set by Dagster and b2cal only, never by a client
UI_TAGS = frozenset({"dagster/from_ui"})  # the Dagster UI marks its launches; it decides nothing
# what the launchpad writes next to a launch's own selection (informational; the guard decides on the
# selector and the partition tags themselves)
LAUNCH_UI_TAGS = frozenset(
    {"dagster/partition_set", "dagster/solid_selection", "dagster/step_selection", "dagster/op_selection"}
)
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
USER_SCOPE_KEY = "b2cal.user"

# (user, action, processing, calibration, details) -> None; raises when it cannot record
AuditSink = Callable[[str, str, str, str, dict[str, Any]], None]

OPEN_TO_ALL = frozenset({"logTelemetry", "setNuxSeen"})  # the UI's own bookkeeping
LAUNCHES = frozenset({"launchPipelineExecution", "launchRun"})
REEXECUTIONS = frozenset({"launchPipelineReexecution", "launchRunReexecution"})
TERMINATIONS = frozenset({"terminatePipelineExecution", "terminateRun"})
# every other mutation of the schema, named so a new one Dagster adds is noticed (test_guard_schema)
ADMIN_ONLY = frozenset(
    {
        "deleteAppManagedComponent",
        "deleteConcurrencyLimit",
        "deletePipelineRun",
        "deleteRun",
        "freeConcurrencySlots",
        "freeConcurrencySlotsForRun",
        "refreshComponentState",
        "reloadRepositoryLocation",
        "reloadWorkspace",
        "resetSchedule",
        "resetSensor",
        "scheduleDryRun",
        "sensorDryRun",
        "setAppManagedComponent",
        "setAutoMaterializePaused",
        "setConcurrencyLimit",
        "setSensorCursor",
        "shutdownRepositoryLocation",
        "startSchedule",
        "startSensor",
        "stopRunningSchedule",
        "stopSensor",
        "wipeAssets",
    }
)
MANAGER_ONLY = frozenset(
    {
        "cancelPartitionBackfill",
        "resumePartitionBackfill",
        "reexecutePartitionBackfill",
        "addDynamicPartition",
        "deleteDynamicPartitions",
        "reportAssetCheckEvaluations",
    }
)


def _tags(tag_list: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    return {str(t["key"]): str(t["value"]) for t in tag_list or ()}


def _processings_from_tags(tags: Mapping[str, str]) -> tuple[str, ...] | None:
    if PARTITION_TAG in tags:
        return (tags[PARTITION_TAG],)
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start is not None or end is not None:
        # a range of dynamic partitions cannot be told
        return (start,) if start is not None and start == end else None
    return ()


def _with_user_tag(tag_list: list[Mapping[str, Any]] | None, user: SessionUser) -> list[dict[str, str]]:
    """The tags with ``b2cal/user`` and ``b2cal/role`` set to the logged-in user (after ``_tag_refusal``)."""
    kept = [dict(t) for t in tag_list or () if t.get("key") not in (USER_TAG, ROLE_TAG)]
    return [*kept, {"key": USER_TAG, "value": user.username}, {"key": ROLE_TAG, "value": user.role.label}]


def _tag_refusal(tag_list: Iterable[Mapping[str, Any]] | None, allowed: Iterable[str] = ()) -> str:
    """Why these client tags are refused: ``dagster/*`` and ``b2cal/*`` decide what runs and who ran it.

    ``allowed`` names the few a launch uses to choose its partition (the guard decides on those).
    """
    allowed = set(allowed) | UI_TAGS
    for tag in tag_list or ():
        key = str(tag.get("key", ""))
        if key.startswith(RESERVED_TAG_PREFIXES) and key not in allowed:
            return f"the tag {key} may not be set by a client (dagster/* and b2cal/* are set by the system)"
    return ""


def _run_config_refusal(user: SessionUser, run_config: Any) -> str:
    """Below admin, a launch configures only the assets (``ops``), never resources or the executor."""
    if user.role >= Role.ADMIN or not run_config:
        return ""
    if isinstance(run_config, str):
        try:
            run_config = yaml.safe_load(run_config)
        except yaml.YAMLError:
            return "the run config is not valid YAML"
    if not run_config:
        return ""
    if not isinstance(run_config, Mapping):
        return "the run config must be a mapping"
    others = sorted(str(k) for k in run_config if k != "ops")
    if others:
        return (
            f"the run config may set only ops (the calibration's settings), not {', '.join(others)}; "
            "resources and the executor are the site's configuration"
        )
    return ""


# () -> the processings the calibration database knows (the only names the processing partition may hold)
KnownProcessings = Callable[[], Iterable[str]]
PROCESSING_PARTITIONS = "processing"


class MutationGuard:
    def __init__(
        self,
        authorizer: Authorizer,
        audit: AuditSink | None = None,
        processings: KnownProcessings | None = None,
    ):
        self.authorizer = authorizer
        self.audit = audit
        self.processings = processings

    # wiring

    def install(self, schema: GraphQLSchema) -> None:
        """Wrap every resolver of the Mutation type of this (webserver-private) schema."""
        mutation_type = schema.mutation_type
        assert mutation_type is not None
        for name, gql_field in mutation_type.fields.items():
            named = get_named_type(gql_field.type)
            can_return_unauthorized = isinstance(named, GraphQLUnionType) and any(
                t.name == "UnauthorizedError" for t in named.types
            )
            gql_field.resolve = self._wrap(name, gql_field.resolve, can_return_unauthorized)

    def _wrap(self, name: str, resolve: Callable | None, can_return_unauthorized: bool) -> Callable:
        def guarded(root: Any, info: Any, **args: Any) -> Any:
            user = self._user(info)
            try:
                refused_transport = _transport_refusal(info)
                if refused_transport:
                    decision = Decision(False, refused_transport)
                else:
                    decision, args = self.decide(user, name, args, info)
            except Exception as exc:  # fail closed: a check that cannot be made refuses
                log.exception("permission check for %s failed", name)
                decision = Decision(False, f"could not check permissions for {name}: {exc}")
            if decision.allowed:
                try:
                    self._record(user, name, decision, args, allowed=True)
                except Exception as exc:
                    log.exception("audit log write failed for %s by %s", name, user.username)
                    decision = Decision(
                        False, f"the audit log could not be written, so nothing was changed: {exc}"
                    )
            else:
                self._record_refusal(user, name, decision)
            if not decision.allowed:
                if can_return_unauthorized:
                    return GrapheneUnauthorizedError(message=decision.reason)
                raise GraphQLError(f"Not allowed: {decision.reason}")
            if resolve is None:
                return getattr(root, name, None) if root is not None else None
            return resolve(root, info, **args)

        guarded.__name__ = f"guarded_{name}"
        return guarded

    @staticmethod
    def _user(info: Any) -> SessionUser:
        source = getattr(info.context, "source", None)
        scope = getattr(source, "scope", None) or {}
        user = scope.get(USER_SCOPE_KEY)
        if not isinstance(user, SessionUser):
            raise GraphQLError("Not logged in")
        return user

    # the rules per mutation

    def decide(
        self, user: SessionUser, name: str, args: dict[str, Any], info: Any
    ) -> tuple[Decision, dict[str, Any]]:
        """The decision, and the arguments to run the mutation with (run tags stamped with the user)."""
        az = self.authorizer
        if name in OPEN_TO_ALL:
            return Decision(True), args
        refusal = self._client_input_refusal(user, name, args)
        if refusal:
            return Decision(False, refusal), args
        if name in LAUNCHES:
            params = dict(args["executionParams"])
            decision = az.calibration_action(user, "launch", self._launch_target(params))
            args = {**args, "executionParams": self._stamp_execution_params(params, user)}
            return decision, args
        if name == "launchMultipleRuns":
            params_list = [dict(p) for p in args["executionParamsList"]]
            for params in params_list:
                decision = az.calibration_action(user, "launch", self._launch_target(params))
                if not decision.allowed:
                    return decision, args
            stamped = [self._stamp_execution_params(p, user) for p in params_list]
            pairs = tuple(
                p for params in params_list for p in _launch_pairs(az, user, self._launch_target(params))
            )
            return Decision(True, "", pairs), {**args, "executionParamsList": stamped}
        if name in REEXECUTIONS:
            return self._reexecution(user, args, info)
        if name == "launchPartitionBackfill":
            params = dict(args["backfillParams"])
            decision = az.calibration_action(user, "launch", self._backfill_target(params))
            params["tags"] = _with_user_tag(params.get("tags"), user)
            return decision, {**args, "backfillParams": params}
        if name in TERMINATIONS:
            return az.calibration_action(user, "stop", self._runs_target(info, [args["runId"]])), args
        if name == "terminateRuns":
            return az.calibration_action(user, "stop", self._runs_target(info, args["runIds"])), args
        if name == "reportRunlessAssetEvents":
            params = args["eventParams"]
            target = Target(
                asset_keys=asset_keys_from_paths([params["assetKey"]["path"]]),
                processings=tuple(str(k) for k in params.get("partitionKeys") or () if k is not None),
            )
            return az.calibration_action(user, "report events on", target), args
        if name in MANAGER_ONLY:
            decision = az.manager_action(user, name)
            if decision.allowed and name == "addDynamicPartition":
                decision = self._partition_refusal(args) or decision
            return decision, args
        return az.admin_only(user, name), args  # ADMIN_ONLY, and whatever Dagster adds next

    def _partition_refusal(self, args: Mapping[str, Any]) -> Decision | None:
        """A processing partition is added by the loop for a processing it knows, never by hand."""
        if args.get("partitionsDefName") != PROCESSING_PARTITIONS:
            return None
        key = str(args.get("partitionKey", ""))
        known = set(self.processings()) if self.processings is not None else set()
        if key in known:
            return None
        return Decision(
            False,
            f"{key!r} is not a processing: a processing partition is added by the loop once the processing "
            "is registered (b2cal processing create NAME ...); nothing was added",
        )

    @staticmethod
    def _client_input_refusal(user: SessionUser, name: str, args: Mapping[str, Any]) -> str:
        """Tags and run config a client may not send, whatever else the mutation asks for."""
        partition_tags = (PARTITION_TAG, RANGE_START_TAG, RANGE_END_TAG, *LAUNCH_UI_TAGS)
        if name in LAUNCHES or name in REEXECUTIONS or name == "launchMultipleRuns":
            params_list = (
                list(args.get("executionParamsList") or ())
                if name == "launchMultipleRuns"
                else [args.get("executionParams") or {}]
            )
            for params in params_list:
                tags = (params.get("executionMetadata") or {}).get("tags")
                refusal = _tag_refusal(tags, partition_tags) or _run_config_refusal(
                    user, params.get("runConfigData")
                )
                if refusal:
                    return refusal
            if name in REEXECUTIONS and args.get("reexecutionParams"):
                return _tag_refusal(args["reexecutionParams"].get("extraTags"))
            return ""
        if name == "launchPartitionBackfill":
            params = args.get("backfillParams") or {}
            return _tag_refusal(params.get("tags")) or _run_config_refusal(user, params.get("runConfigData"))
        return ""

    @staticmethod
    def _launch_target(params: Mapping[str, Any]) -> Target:
        selector = params.get("selector") or {}
        paths = [a["path"] for a in selector.get("assetSelection") or ()]
        paths += [c["assetKey"]["path"] for c in selector.get("assetCheckSelection") or ()]
        tags = _tags((params.get("executionMetadata") or {}).get("tags"))
        return Target(asset_keys=asset_keys_from_paths(paths), processings=_processings_from_tags(tags))

    @staticmethod
    def _stamp_execution_params(params: dict[str, Any], user: SessionUser) -> dict[str, Any]:
        metadata = dict(params.get("executionMetadata") or {})
        metadata["tags"] = _with_user_tag(metadata.get("tags"), user)
        return {**params, "executionMetadata": metadata}

    @staticmethod
    def _backfill_target(params: Mapping[str, Any]) -> Target:
        paths = [a["path"] for a in params.get("assetSelection") or ()]
        processings: tuple[str, ...] | None = tuple(params.get("partitionNames") or ())
        for by_asset in params.get("partitionsByAssets") or ():
            paths.append(by_asset["assetKey"]["path"])
            ranges = (by_asset.get("partitions") or {}).get("ranges") or []
            single = (by_asset.get("partitions") or {}).get("range")
            ranges = [*ranges, *([single] if single else [])]
            if not ranges or any(r["start"] != r["end"] for r in ranges):
                processings = None
            elif processings is not None:
                processings = tuple(dict.fromkeys([*processings, *(r["start"] for r in ranges)]))
        if params.get("allPartitions") or params.get("selector"):
            processings = None  # every partition, or a job's partition set: not one expert's business
        return Target(asset_keys=asset_keys_from_paths(paths), processings=processings)

    @staticmethod
    def _runs_target(info: Any, run_ids: Iterable[str]) -> Target:
        """What existing runs touch: their assets (a job run counts as a non-calibration asset)."""
        instance = info.context.instance
        paths: list[tuple[str, ...]] = []
        processings: list[str] | None = []
        for run_id in run_ids:
            run = instance.get_run_by_id(run_id)
            if run is None:
                continue  # Dagster answers "run not found" itself
            run_paths = [tuple(k.path) for k in run.asset_selection or ()]
            run_paths += [tuple(c.asset_key.path) for c in run.asset_check_selection or ()]
            paths += run_paths or [("job", run.job_name)]
            found = _processings_from_tags(run.tags)
            if found is None:
                processings = None
            elif processings is not None:
                processings += found
        return Target(
            asset_keys=asset_keys_from_paths(paths),
            processings=None if processings is None else tuple(dict.fromkeys(processings)),
        )

    def _reexecution(
        self, user: SessionUser, args: dict[str, Any], info: Any
    ) -> tuple[Decision, dict[str, Any]]:
        az = self.authorizer
        if args.get("reexecutionParams"):
            params = dict(args["reexecutionParams"])
            target = self._runs_target(info, [params["parentRunId"]])
            params["extraTags"] = _with_user_tag(params.get("extraTags"), user)
            return az.calibration_action(user, "re-execute", target), {**args, "reexecutionParams": params}
        params = dict(args.get("executionParams") or {})
        target = self._launch_target(params)
        parent = (params.get("executionMetadata") or {}).get("parentRunId")
        if parent:
            parent_target = self._runs_target(info, [parent])
            keys = asset_keys_from_paths([*target.asset_keys, *parent_target.asset_keys])
            processings = (
                None
                if target.processings is None or parent_target.processings is None
                else tuple(dict.fromkeys([*target.processings, *parent_target.processings]))
            )
            target = Target(asset_keys=keys, processings=processings)
        decision = az.calibration_action(user, "re-execute", target)
        return decision, {**args, "executionParams": self._stamp_execution_params(params, user)}

    # audit

    def _record(
        self, user: SessionUser, name: str, decision: Decision, args: Mapping[str, Any], *, allowed: bool
    ) -> None:
        if self.audit is None or name in OPEN_TO_ALL:
            return
        details = {"mutation": name, "role": user.role.label, "allowed": allowed}
        if decision.reason:
            details["reason"] = decision.reason
        for processing, calibration in decision.pairs or (("", ""),):
            self.audit(user.username, f"ui.{name}", processing, calibration, details)

    def _record_refusal(self, user: SessionUser, name: str, decision: Decision) -> None:
        log.warning("refused %s for %s (%s): %s", name, user.username, user.role.label, decision.reason)
        try:
            self._record(user, name, decision, {}, allowed=False)
        except Exception:
            log.exception("audit log write failed for a refused %s by %s", name, user.username)


def _launch_pairs(az: Authorizer, user: SessionUser, target: Target) -> tuple[tuple[str, str], ...]:
    return az.calibration_action(user, "launch", target).pairs


def _transport_refusal(info: Any) -> str:
    """Mutations only as a JSON POST: a GET link or a cross-site form can then never change anything."""
    request = getattr(info.context, "source", None)
    method = getattr(request, "method", None)
    if request is None or method is None:
        return ""  # not HTTP (the websocket only carries subscriptions, see middleware)
    content_type = request.headers.get("content-type", "")
    if method != "POST" or "application/json" not in content_type:
        return "mutations must be sent as a JSON POST request"
    return ""
