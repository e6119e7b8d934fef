import dagster as dg

from b2cal_assets.caf.payload_io import read_payload
from b2cal_assets.db.engine import database_url
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS
from b2cal_assets_tests.defs.driver import drive


def test_two_processings_are_calibrated_and_signed_off(toy_loop, toy_defs):
    with dg.instance_for_test() as instance:
        results = drive(toy_defs, instance)
        assert results, "the loop sensor requested no runs"
        assert all(r.success for _, r in results), [r for _, r in results if not r.success]
        service = loop_service(database_url(), str(TOY_SCRIPTS))
        for p in ("p1", "p2"):
            assert service.step_states(p) == {
                "toy_a": "signed_off",
                "toy_b": "signed_off",
                "cdst": "signed_off",
                "toy_c": "signed_off",
            }
            (toy_c,) = service.current_payloads(p, "toy_c")
            shift = float(read_payload(toy_c.file)["shift"].ravel()[0])
            assert abs(shift - toy.TRUE_SHIFT) < 0.05
        assert set(instance.get_dynamic_partitions("processing")) == {"p1", "p2"}
