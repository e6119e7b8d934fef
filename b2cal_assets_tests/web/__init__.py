"""Tests of the served UI: LDAP login, roles, per-calibration permissions, the browser flow."""
