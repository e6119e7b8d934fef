"""What the login layer costs on a UI GraphQL query, against the bare Dagster webserver app.

    .venv/bin/python benchmarks/bench_login_layer.py                 # 20 clients, 3 rounds of 400 queries
    .venv/bin/python benchmarks/bench_login_layer.py --clients 20 --requests 1000 --rounds 5

One child process serves both apps with uvicorn on loopback, from the same workspace (the tiny
Definitions of ``b2cal_assets_tests.web.defs_for_web``) and the same Dagster instance:

- bare: ``dagster_webserver.app.create_app_from_workspace_process_context`` (what dagster-webserver serves);
- login: ``b2cal_assets.web.app.build_app`` with the LDAP login layer (session cookie check, mutation
  guard installed, per-request user context), queried with a valid session cookie.

The parent runs ``--clients`` concurrent httpx clients (asyncio) that send the asset catalog query the
UI sends on its start page, alternating bare and login rounds so that drift hits both alike. It prints
requests/s and latency percentiles per app and the login/bare ratios. LDAP itself is not in the path of
a query (only of the login), so no directory server is needed.

Times depend on the machine (2 shared cores here); compare the ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUERY = """
query AssetCatalogTableQuery {
  assetNodes { id assetKey { path } groupName opName isPartitioned
    partitionDefinition { description } repository { name location { name } } }
}
"""
DEFS_MODULE = "b2cal_assets_tests.web.defs_for_web"


def serve(bare_port: int, login_port: int, cookie_file: Path) -> None:
    """Child: both apps in one event loop until killed; writes a session cookie for the login app."""
    import uvicorn
    from dagster_webserver.app import create_app_from_workspace_process_context

    from b2cal_assets.web.app import build_app
    from b2cal_assets.web.config import AuthConfig, LdapSettings
    from b2cal_assets.web.login import LoginService
    from b2cal_assets.web.roles import Role
    from b2cal_assets.web.serve import workspace_context

    config = AuthConfig(
        ldap=LdapSettings(
            url="ldap://127.0.0.1:1", user_dn_template="uid={username},dc=bench", group_base="dc=bench"
        ),
        secret_key="bench-secret-key-bench-secret-key-bench",
    )
    with workspace_context(DEFS_MODULE) as context:
        bare = create_app_from_workspace_process_context(context)
        login = LoginService(config)
        guarded = build_app(context, login=login, assigned_expert=lambda _p, _c: None)
        cookie, _user = login.codec.issue("bench", Role.EXPERT)
        cookie_file.write_text(cookie)
        servers = [
            uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
            for app, port in ((bare, bare_port), (guarded, login_port))
        ]

        async def run_both() -> None:
            await asyncio.gather(*(s.serve() for s in servers))

        asyncio.run(run_both())


async def hammer(url: str, cookies: dict[str, str], clients: int, requests: int) -> tuple[float, list[float]]:
    import httpx

    latencies: list[float] = []
    per_client = max(1, requests // clients)

    async def one_client(client: httpx.AsyncClient) -> None:
        for _ in range(per_client):
            start = time.perf_counter()
            response = await client.post("/graphql", json={"query": QUERY})
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200 or "errors" in response.json():
                raise SystemExit(f"{url}: query failed: {response.status_code} {response.text[:300]}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, cookies=cookies, limits=limits, timeout=120) as client:
        started = time.perf_counter()
        await asyncio.gather(*(one_client(client) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_up(url: str, deadline: float) -> None:
    import httpx

    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code in (200, 401):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not come up")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=400, help="queries per round and app")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--serve", nargs=3, metavar=("BARE_PORT", "LOGIN_PORT", "COOKIE_FILE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), int(args.serve[1]), Path(args.serve[2]))
        return 0

    from b2cal_assets.web.serve import DAGSTER_YAML
    from b2cal_assets.web.sessions import SESSION_COOKIE

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "dagster"
        home.mkdir()
        (home / "dagster.yaml").write_text(DAGSTER_YAML)
        env = {**os.environ, "DAGSTER_HOME": str(home)}
        bare_port, login_port = _free_port(), _free_port()
        cookie_file = Path(tmp) / "cookie"
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(bare_port), str(login_port), str(cookie_file)],
            env=env,
            cwd=REPO,
        )
        try:
            deadline = time.monotonic() + 120
            bare_url, login_url = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{login_port}"
            for url in (bare_url, login_url):
                _wait_up(url, deadline)
            while not cookie_file.exists():
                time.sleep(0.1)
            cookies = {SESSION_COOKIE: cookie_file.read_text()}

            asyncio.run(hammer(bare_url, {}, args.clients, args.clients * 2))  # warm-up
            asyncio.run(hammer(login_url, cookies, args.clients, args.clients * 2))
            results: dict[str, list] = {"bare": [], "login": []}
            for _ in range(args.rounds):
                results["bare"].append(asyncio.run(hammer(bare_url, {}, args.clients, args.requests)))
                results["login"].append(asyncio.run(hammer(login_url, cookies, args.clients, args.requests)))
        finally:
            child.terminate()
            child.wait(timeout=60)

    summary = {}
    print(f"{args.clients} concurrent clients, {args.rounds} rounds x {args.requests} queries per app")
    for name, rounds in results.items():
        rps = statistics.median(r for r, _ in rounds)
        latencies = [lat for _, lats in rounds for lat in lats]
        summary[name] = (rps, pct(latencies, 0.5), pct(latencies, 0.95))
        print(
            f"  {name:5s}: {rps:8.1f} req/s   p50 {summary[name][1] * 1000:7.1f} ms   p95 {summary[name][2] * 1000:7.1f} ms"
        )
    bare, login = summary["bare"], summary["login"]
    print(
        f"login layer / bare webserver: throughput x{login[0] / bare[0]:.3f}, "
        f"p50 latency x{login[1] / bare[1]:.3f}, p95 latency x{login[2] / bare[2]:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
