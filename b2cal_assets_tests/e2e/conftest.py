from b2cal_assets_tests.defs.conftest import toy_home, toy_loop  # noqa: F401  (shared toy processing)
