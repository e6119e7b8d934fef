"""The issue's "done when", as one processing driven through Dagster the way the daemon would.

One calibration submitted by its expert with changed settings (story_alpha), one auto-submitted at the
deadline (story_beta), one excluded by a manager (story_gamma), one failed and restarted (story_delta),
one payload replaced by upload (story_beta's Beta): every step in the tickets and the audit log.
"""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from b2cal_assets import home
from b2cal_assets.caf.payload_io import read_payload, write_payload
from b2cal_assets.cli import main
from b2cal_assets.db.engine import database_url, ensure_schema
from b2cal_assets.db.models import utcnow
from b2cal_assets.defs.definitions import build_definitions
from b2cal_assets.defs.keys import payloads_key
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.defs.tickets import JiraResource
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.outputdb import PayloadEntry, format_database_txt, parse_database_txt
from b2cal_assets.domain.processing import ProcessingSpec
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets.loop.staging import staging_dir
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import make_site
from b2cal_assets_tests.loop.conftest import Clock
from b2cal_assets_tests.loop.daemon_like import Daemon
from b2cal_assets_tests.loop.helpers import audit_actions, messages
from b2cal_assets_tests.loop.test_uploads import tar_gz

STORY = Path(__file__).parent / "story_scripts"
P = "prompt_story"


@pytest.fixture
def story(b2cal_home, monkeypatch, fake_jira):
    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", str(STORY))
    monkeypatch.setenv("B2CAL_LOCAL_MAX_PROCESSES", "2")
    ensure_schema(database_url())
    make_site("story_site")
    admin.write_global_tag("story_base", {"Gamma": {"value": [1.0]}})
    admin.register_files(toy.generate(b2cal_home / "data", range(1, 3), events=200), site_name="story_site")
    admin.create_processing(
        ProcessingSpec(
            name=P,
            kind="prompt",
            site="story_site",
            iov=IoV(1, 1, 1, 2),
            global_tags=("story_base",),
            window_hours=48,
        ),
        created_by="mgr",
    )
    fake_jira.users.add("dave")
    jira = JiraResource(
        url=fake_jira.url, user=fake_jira.user, token=fake_jira.token, project=fake_jira.project
    )
    defs = build_definitions(str(STORY), loop=CalibrationLoopResource(calibrations_dir=str(STORY)), jira=jira)
    service = loop_service(database_url(), str(STORY))
    clock = Clock(utcnow())
    monkeypatch.setattr(service, "clock", clock)
    return defs, service, clock


def ok(results):
    assert results and all(r.success for _req, r in results), [
        (req.run_key, [e.message for e in r.get_step_failure_events()]) for req, r in results if not r.success
    ]


def test_a_processing_with_every_kind_of_step(story, fake_jira, tmp_path, capsys):
    defs, service, clock = story
    (broken_node := home.b2cal_home() / "story_delta.fail").write_text("broken node\n")
    with dg.instance_for_test() as instance:
        daemon = Daemon(defs, instance)
        assert daemon.settle() == []  # windows of alpha and gamma open; nothing runs before the deadline
        assert service.step_states(P) == {
            "story_alpha": "window_open",
            "story_beta": "waiting",
            "story_gamma": "window_open",
            "story_delta": "waiting",
        }

        # a manager excludes gamma: delta's window opens, with the global tag's Gamma in its chain
        assert main(["manage", "exclude", P, "story_gamma", "--user", "mgr", "--reason", "detector off"]) == 0
        # the expert submits alpha from the launchpad with changed settings
        run = daemon.launch(
            [payloads_key("story_alpha")], P, user="alice", config={"expert_config": {"scale": 1.1}}
        )
        assert run.success
        ok(daemon.settle())  # checks + automatic sign-off of alpha's payloads
        assert service.step_states(P)["story_alpha"] == "signed_off"
        (alpha,) = service.current_payloads(P, "story_alpha")
        assert read_payload(alpha.file)["mean"][0] == pytest.approx(1.1 * toy.TRUE_MEAN, rel=0.05)
        assert service.database_chain(P, "story_delta") == [home.globaltag_dir("story_base")]

        # the deadline passes: beta and delta run with their defaults; delta fails
        clock.now += timedelta(hours=49)
        made = daemon.settle()
        by_step = {req.run_key.split("|")[1]: r for req, r in made}
        assert by_step["story_beta"].success and not by_step["story_delta"].success
        assert service.step_states(P)["story_beta"] == "signed_off"
        assert service.step_states(P)["story_delta"] == "failed"
        failed_workdir = home.attempt_work_dir(P, "story_delta", 1)
        assert failed_workdir.exists()

        # a manager restarts delta once the node is fixed: same settings, attempt 2, old logs kept
        broken_node.unlink()
        assert main(["manage", "restart", P, "story_delta", "--user", "mgr"]) == 0
        ok(daemon.settle())
        assert service.step_states(P)["story_delta"] == "signed_off"
        assert failed_workdir.exists()
        assert service.step_states(P)["story_gamma"] == "excluded"
        assert (staging_dir(P) / "database.txt").exists()  # the processing finished: staging tag exported

        # bob replaces Beta by an upload: a new revision, the checks and sign-off run again
        fixed = write_payload(tmp_path / "dbstore_Beta_rev_1.root", {"shift": [0.5]})
        archive = tar_gz(
            tmp_path / "beta_fix.tar.gz",
            {
                "database.txt": format_database_txt([PayloadEntry("Beta", 1, IoV(1, 1, 1, 2))]).encode(),
                "dbstore_Beta_rev_1.root": fixed.read_bytes(),
            },
        )
        assert main(["payloads", "upload", P, "story_beta", str(archive), "--user", "bob"]) == 0
        ok(daemon.settle())
        assert service.step_states(P)["story_beta"] == "signed_off"
        (beta,) = service.current_payloads(P, "story_beta")
        assert (beta.revision, beta.source) == (2, "upload")
        staged = {
            e.name: e.revision for e in parse_database_txt((staging_dir(P) / "database.txt").read_text())
        }
        assert staged == {"Alpha": 1, "Beta": 2, "Delta": 1}

        assert main(["status", "--processing", P, "--jobs"]) == 0
        status = capsys.readouterr().out
        assert (
            "excluded: dependents use the global-tag payloads" in status
            and "story_delta/iteration_" in status
        )

        daemon.tick_tickets()

    kinds = {name: [m.kind for m in messages(service, P, name)] for name in service.scripts.calibrations}
    assert {"window_open", "submitted", "finished", "signed_off"} <= set(kinds["story_alpha"])
    assert {"submitted", "signed_off", "uploaded"} <= set(kinds["story_beta"])
    assert "excluded" in kinds["story_gamma"]
    assert {"failed", "restarted", "signed_off"} <= set(kinds["story_delta"])
    bodies = {name: "\n".join(m.body for m in messages(service, P, name)) for name in kinds}
    assert "by alice" in bodies["story_alpha"] and '"scale": 1.1' in bodies["story_alpha"]
    assert "automatically with the default settings" in bodies["story_beta"]
    assert "lost its scratch disk" in bodies["story_delta"]
    assert all(m.sent_at is not None for name in kinds for m in messages(service, P, name))

    issues = {i.fields["summary"]: i for i in fake_jira.created_issues()}
    assert set(issues) == {f"[{P}] {n}" for n in kinds}
    for name, sent in kinds.items():
        comments = "\n".join(c["body"] for c in issues[f"[{P}] {name}"].comments)
        for kind in set(sent) - {"created"}:
            assert f"b2cal message {P}/{name}/{kind}" in comments, (name, kind)

    actions = [(u, a) for u, a, _d in audit_actions(service, P)]
    for step in [
        ("alice", "submit"),
        ("mgr", "exclude"),
        ("mgr", "restart"),
        ("bob", "upload_payloads"),
        ("auto", "staging_export"),
    ]:
        assert step in actions, step
