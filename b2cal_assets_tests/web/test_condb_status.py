"""The status page shows each processing's staging tag in the conditions database (read-only)."""

from __future__ import annotations

import pytest

from b2cal_assets.conditions.condb_client import ConditionsDbClient
from b2cal_assets.loop.service import AUTO_USER
from b2cal_assets_tests.web.conftest import auth_config, make_pages_app

pytestmark = pytest.mark.ldap


@pytest.fixture
def web_app(web_workspace, ldap_server, audit_log, toy_service):
    config = auth_config(
        ldap_server, bind_dn=ldap_server.service_dn, bind_password=ldap_server.service_password
    )
    return make_pages_app(web_workspace, config, audit_log, toy_service)


def test_the_status_page_shows_what_was_uploaded_and_what_was_refused(login_as, toy_service, condb_server):
    toy_service.sign_off("p2", "toy_a", decision="accept", by=AUTO_USER, automatic=True)
    with ConditionsDbClient(condb_server.url, token=condb_server.token, attempts=1) as client:
        uploaded = toy_service.upload_condb("p2", client, by="mgr")
    assert uploaded.ok
    html = login_as("victor").get("/b2cal/status").text
    p1, p2 = html.split("<h2>Processing p2</h2>")
    assert "Conditions database" not in p1  # nothing due for p1: nothing shown
    section = p2.split('<section class=condb id="condb-p2">')[1].split("</section>")[0]
    assert "staging tag staging_p2" in section and "ready for merging" in section and "(tag OPEN)" in section
    (row,) = [r for r in section.split("<tr>") if "<td>ToyA</td>" in r]
    payload_id = str(uploaded.rows[0].payload_id)
    assert "<span class=state>done</span>" in row and f"<td>{payload_id}</td>" in row
    assert '<form method=post action="/b2cal' not in html
