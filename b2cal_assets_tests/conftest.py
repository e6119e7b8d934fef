"""Shared fixtures. Service fixtures live in ``fixtures/``, one module per service.

In CI (``CI=true``) a missing service is a failure, never a skip.
"""

import importlib.util

pytest_plugins = [
    name
    for name in (
        "b2cal_assets_tests.fixtures.home",
        "b2cal_assets_tests.fixtures.databases",
        "b2cal_assets_tests.fixtures.services",
        "b2cal_assets_tests.fixtures.rucio",
        "b2cal_assets_tests.fixtures.ldap",
        "b2cal_assets_tests.fixtures.jira",
        "b2cal_assets_tests.fixtures.condb",
        "b2cal_assets_tests.fixtures.disk",
        "b2cal_assets_tests.fixtures.private_db",
    )
    if importlib.util.find_spec(name) is not None
]
