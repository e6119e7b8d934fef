"""Check a user name and password against the lab's LDAP with a simple bind, and read the user's groups.

Every piece of user input that reaches the directory is escaped: ``escape_rdn`` where it goes into a
DN, ``escape_filter_chars`` where it goes into a search filter. The session keeps the user name the
directory stores, never the string that was typed.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPInvalidDnError, LDAPInvalidFilterError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from b2cal_assets.web.config import LdapSettings

log = logging.getLogger(__name__)

MAX_USERNAME_LENGTH = 128
MAX_PASSWORD_LENGTH = 1024


class AuthFailed(Exception):
    """Wrong user name or password (deliberately not saying which)."""


class DirectoryUnavailable(Exception):
    """The LDAP server could not be reached or answered with an error that is not the user's fault."""


@dataclass(frozen=True)
class DirectoryUser:
    username: str
    dn: str
    groups: tuple[str, ...]


def username_is_acceptable(username: str) -> bool:
    """Refuse before contacting LDAP what can never be a user name (empty, overlong, control chars)."""
    return (
        0 < len(username) <= MAX_USERNAME_LENGTH and username.isprintable() and username == username.strip()
    )


class LdapAuthenticator:
    """Simple bind by DN template or search-then-bind; groups from a search under ``group_base``."""

    def __init__(self, settings: LdapSettings):
        self.settings = settings

    def _server(self) -> ldap3.Server:
        s = self.settings
        tls = None
        if s.url.startswith("ldaps://") or s.start_tls:
            tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED if s.tls_verify else ssl.CERT_NONE,
                ca_certs_file=s.ca_file or None,
                version=ssl.PROTOCOL_TLS_CLIENT,
            )
        return ldap3.Server(
            s.url,
            use_ssl=s.url.startswith("ldaps://"),
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=s.timeout_seconds,
        )

    def _connection(self, server: ldap3.Server, user: str | None, password: str | None) -> ldap3.Connection:
        conn = ldap3.Connection(
            server,
            user=user,
            password=password,
            authentication=ldap3.SIMPLE if user else ldap3.ANONYMOUS,
            read_only=True,
            raise_exceptions=False,
            receive_timeout=max(1, round(self.settings.timeout_seconds)),  # ldap3 packs an int
        )
        conn.open()
        if self.settings.start_tls and not conn.start_tls():
            raise DirectoryUnavailable(f"StartTLS with {self.settings.url} failed: {conn.result}")
        return conn

    def _find_user_dn(self, server: ldap3.Server, username: str) -> str:
        s = self.settings
        service = self._connection(server, s.bind_dn or None, s.bind_password or None)
        try:
            if s.bind_dn and not service.bind():
                raise DirectoryUnavailable(
                    f"the service account {s.bind_dn} could not bind: {service.result.get('description')}"
                )
            search_filter = s.user_search_filter.format(username=escape_filter_chars(username))
            service.search(
                s.user_search_base, search_filter, search_scope=ldap3.SUBTREE, attributes=[], size_limit=2
            )
            if service.result.get("result") not in (0, 4):  # success, sizeLimitExceeded
                raise DirectoryUnavailable(f"user search failed: {service.result.get('description')}")
            if len(service.entries) != 1:
                raise AuthFailed(username)
            return service.entries[0].entry_dn
        finally:
            service.unbind()

    def authenticate(self, username: str, password: str) -> DirectoryUser:
        """The directory's user for these credentials; raises ``AuthFailed`` or ``DirectoryUnavailable``."""
        if not username_is_acceptable(username) or not password or len(password) > MAX_PASSWORD_LENGTH:
            # An empty password would be an unauthenticated bind, which LDAP "accepts".
            raise AuthFailed(username)
        s = self.settings
        try:
            server = self._server()
            if s.user_dn_template:
                user_dn = s.user_dn_template.format(username=escape_rdn(username))
            else:
                user_dn = self._find_user_dn(server, username)
            conn = self._connection(server, user_dn, password)
            try:
                if not conn.bind():
                    raise AuthFailed(username)
                canonical = self._canonical_username(conn, user_dn, username)
                groups = self._groups(conn, user_dn, canonical)
            finally:
                conn.unbind()
        except (LDAPInvalidDnError, LDAPInvalidFilterError):
            raise AuthFailed(username) from None
        except LDAPException as exc:
            raise DirectoryUnavailable(f"LDAP server {s.url}: {exc}") from None
        return DirectoryUser(username=canonical, dn=user_dn, groups=groups)

    def groups_of(self, username: str) -> tuple[str, ...]:
        """The user's groups now, read with the service account (or anonymously): the session's role
        is re-read with it. A user the directory no longer has is in no group."""
        s = self.settings
        try:
            server = self._server()
            if s.user_dn_template:
                user_dn = s.user_dn_template.format(username=escape_rdn(username))
            else:
                user_dn = self._find_user_dn(server, username)
            conn = self._connection(server, s.bind_dn or None, s.bind_password or None)
            try:
                if s.bind_dn and not conn.bind():
                    raise DirectoryUnavailable(f"the service account {s.bind_dn} could not bind")
                return self._groups(conn, user_dn, username)
            finally:
                conn.unbind()
        except AuthFailed:
            return ()
        except (LDAPInvalidDnError, LDAPInvalidFilterError):
            return ()
        except LDAPException as exc:
            raise DirectoryUnavailable(f"LDAP server {s.url}: {exc}") from None

    def find_user(self, username: str) -> str | None:
        """The directory's spelling of ``username``, or None when it has no such user: a reassignment
        names someone who can log in. Read with the service account (or anonymously)."""
        if not username_is_acceptable(username):
            return None
        s = self.settings
        try:
            server = self._server()
            user_dn = (
                s.user_dn_template.format(username=escape_rdn(username))
                if s.user_dn_template
                else self._find_user_dn(server, username)
            )
            conn = self._connection(server, s.bind_dn or None, s.bind_password or None)
            try:
                if s.bind_dn and not conn.bind():
                    raise DirectoryUnavailable(f"the service account {s.bind_dn} could not bind")
                conn.search(user_dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[])
                if conn.result.get("result") == 32 or not conn.entries:  # noSuchObject
                    return None
                if conn.result.get("result") != 0:
                    raise DirectoryUnavailable(f"user lookup failed: {conn.result.get('description')}")
                return self._canonical_username(conn, user_dn, username)
            finally:
                conn.unbind()
        except (AuthFailed, LDAPInvalidDnError, LDAPInvalidFilterError):
            return None
        except LDAPException as exc:
            raise DirectoryUnavailable(f"LDAP server {s.url}: {exc}") from None

    def _canonical_username(self, conn: ldap3.Connection, user_dn: str, typed: str) -> str:
        attr = self.settings.username_attribute
        conn.search(user_dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[attr])
        if conn.entries and attr in conn.entries[0].entry_attributes:
            values = conn.entries[0][attr].values
            for value in values:  # prefer the stored spelling of what was typed
                if str(value).casefold() == typed.casefold():
                    return str(value)
            if values:
                return str(values[0])
        return typed

    def _groups(self, conn: ldap3.Connection, user_dn: str, username: str) -> tuple[str, ...]:
        s = self.settings
        group_filter = s.group_filter.format(
            user_dn=escape_filter_chars(user_dn), username=escape_filter_chars(username)
        )
        conn.search(
            s.group_base, group_filter, search_scope=ldap3.SUBTREE, attributes=[s.group_name_attribute]
        )
        if conn.result.get("result") not in (0, 32):  # success, noSuchObject
            raise DirectoryUnavailable(f"group search failed: {conn.result.get('description')}")
        names: list[str] = []
        for entry in conn.entries:
            if s.group_name_attribute in entry.entry_attributes:
                names.extend(str(v) for v in entry[s.group_name_attribute].values)
        return tuple(sorted(set(names)))
