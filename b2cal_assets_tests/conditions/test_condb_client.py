"""The conditions-database client against the test server, over real HTTP: tags, states, payloads, IoVs."""

import hashlib

import pytest

from b2cal_assets.conditions.condb_client import (
    CondbRefused,
    CondbUnavailable,
    ConditionsDbClient,
    TagState,
)
from b2cal_assets.domain.iov import IoV


@pytest.fixture
def client(condb_server):
    with ConditionsDbClient(condb_server.url, token=condb_server.token, attempts=2, backoff_s=0.01) as c:
        yield c


def payload_file(tmp_path, name, content):
    path = tmp_path / f"dbstore_{name}_rev_1.root"
    path.write_bytes(content)
    return path, hashlib.md5(content).hexdigest()


def test_a_tag_is_created_open_and_moves_only_along_the_allowed_states(client):
    assert client.global_tag("staging_p1") is None
    tag = client.create_global_tag("staging_p1", "prompt p1", "b2cal")
    assert tag.state is TagState.OPEN and client.global_tag("staging_p1") == tag
    assert [t.name for t in client.global_tags()] == ["staging_p1"]
    with pytest.raises(CondbRefused, match="cannot go from OPEN to PUBLISHED"):
        client.set_global_tag_state("staging_p1", "PUBLISHED")
    for state in ("TESTING", "VALIDATED", "PUBLISHED"):
        client.set_global_tag_state("staging_p1", state)
    assert client.global_tag("staging_p1").state is TagState.PUBLISHED
    with pytest.raises(CondbRefused, match="cannot go from PUBLISHED to OPEN"):
        client.set_global_tag_state("staging_p1", "OPEN")
    with pytest.raises(CondbRefused, match="already exists"):
        client.create_global_tag("staging_p1", "again", "b2cal")


def test_payloads_are_found_by_name_and_checksum_and_a_wrong_checksum_is_refused(client, tmp_path):
    file, md5 = payload_file(tmp_path, "ToyA", b"content A")
    assert client.check_payloads([("ToyA", md5)]) == {}
    created = client.create_payload("ToyA", file, md5)
    assert created.revision == 1
    assert client.check_payloads([("ToyA", md5), ("ToyA", "0" * 32)]) == {("ToyA", md5): created}
    with pytest.raises(CondbRefused, match="already exists"):  # immutable, stored once
        client.create_payload("ToyA", file, md5)
    with pytest.raises(CondbRefused, match="checksum mismatch for ToyA"):
        client.create_payload("ToyA", file, "f" * 32)
    other, md5_b = payload_file(tmp_path, "ToyB", b"content B")
    assert client.create_payload("ToyA", other, md5_b).revision == 2  # new content: a new revision


def test_iovs_are_added_to_an_open_tag_only_and_never_overlap(client, condb_server, tmp_path):
    tag = client.create_global_tag("staging_p2", "", "b2cal")
    file, md5 = payload_file(tmp_path, "ToyA", b"A")
    payload = client.create_payload("ToyA", file, md5)
    client.create_iov(tag.id, payload.id, IoV(1, 1, 1, 5))
    with pytest.raises(CondbRefused, match="overlaps 1,1,1,5"):
        client.create_iov(tag.id, payload.id, IoV(1, 5, 1, 9))
    client.create_iov(tag.id, payload.id, IoV(1, 6, -1, -1))
    assert [(r.payload.name, tuple(r.iov)) for r in client.tag_iovs("staging_p2")] == [
        ("ToyA", (1, 1, 1, 5)),
        ("ToyA", (1, 6, -1, -1)),
    ]
    client.set_global_tag_state("staging_p2", TagState.TESTING)
    with pytest.raises(CondbRefused, match="is TESTING: it takes no new IoVs"):
        client.create_iov(tag.id, payload.id, IoV(2, 0, 2, 1))
    assert len(condb_server.tag_content("staging_p2")) == 2


def test_a_wrong_token_is_refused_and_an_unreachable_server_is_unavailable(condb_server):
    with ConditionsDbClient(condb_server.url, token="wrong", attempts=1) as c, pytest.raises(CondbRefused):
        c.global_tags()
    condb_server.down("refuse")
    with (
        ConditionsDbClient(condb_server.url, token=condb_server.token, attempts=3, backoff_s=0.01) as c,
        pytest.raises(CondbUnavailable, match="unreachable"),
    ):
        c.ping()
    condb_server.up()
    condb_server.down("503")
    with ConditionsDbClient(condb_server.url, token=condb_server.token, attempts=2, backoff_s=0.01) as c:
        with pytest.raises(CondbUnavailable, match="answered 503"):
            c.global_tags()
        condb_server.up()
        assert c.global_tags() == []


def test_a_stored_payload_cannot_be_changed_or_deleted(client, tmp_path):
    file, md5 = payload_file(tmp_path, "ToyA", b"A")
    client.create_payload("ToyA", file, md5)
    for method in ("PUT", "DELETE"):
        with pytest.raises(CondbRefused, match="payloads are immutable"):
            client.request(method, "package/dbstore/module/ToyA/payload")
    assert client.check_payloads([("ToyA", md5)])[("ToyA", md5)].revision == 1


def test_a_published_tag_takes_nothing_and_can_only_be_invalidated(client, tmp_path):
    tag = client.create_global_tag("staging_p3", "", "b2cal")
    for state in ("TESTING", "VALIDATED", "PUBLISHED"):
        client.set_global_tag_state("staging_p3", state)
    file, md5 = payload_file(tmp_path, "ToyA", b"A")
    payload = client.create_payload("ToyA", file, md5)
    with pytest.raises(CondbRefused, match="is PUBLISHED: it takes no new IoVs"):
        client.create_iov(tag.id, payload.id, IoV(1, 1, -1, -1))
    for state in ("OPEN", "TESTING", "VALIDATED"):
        with pytest.raises(CondbRefused, match=f"cannot go from PUBLISHED to {state}"):
            client.set_global_tag_state("staging_p3", state)
    client.set_global_tag_state("staging_p3", "INVALID")
    assert client.global_tag("staging_p3").state is TagState.INVALID
    assert client.tag_iovs("staging_p3") == []
