"""The egress enforcement (activities.skills.egress) against real local servers: pinning to
the vetted address (Host and TLS name kept), redirects vetted hop by hop, no cookie kept
between calls, and the worker's own endpoints protected."""

import logging
import ssl

import httpx
import pytest

from activities.skills.egress import (
    DeploymentEndpoints,
    Egress,
    EgressRefused,
    Outbound,
    resolve,
)
from activities.skills.errors import SkillError
from domain.egress import EgressRule
from runtime.settings import Settings
from runtime.worker_factory import step_activities
from tests.security_servers import recording_server, self_signed_tls

pytestmark = pytest.mark.timeout(60)


def outbound(*allow: str, tls: ssl.SSLContext | None = None, ports=(7233, 8233, 8000)) -> Outbound:
    egress = Egress(
        operator_rules=(),
        deployment=DeploymentEndpoints(ports=tuple(ports)),
        tls=tls or httpx.create_ssl_context(),
    )
    return egress.for_tenant("acme", tuple(EgressRule.parse_text(a) for a in allow))


@pytest.fixture
def server():
    with recording_server() as s:
        yield s


@pytest.fixture
def other():
    with recording_server() as s:
        yield s


def test_an_allow_listed_server_is_reached_and_an_unlisted_one_is_not(server):
    response = outbound(server.url).request("GET", f"{server.url}/hello", timeout=5)
    assert response.status_code == 200 and server.paths() == ["/hello"]
    with pytest.raises(EgressRefused) as refused:
        outbound().request("GET", f"{server.url}/again", timeout=5)
    assert refused.value.reason == (
        "127.0.0.1 is in a loopback range (no allow-list entry for tenant acme)"
    )
    assert not refused.value.retryable and server.paths() == ["/hello"]


def test_a_name_is_pinned_to_its_vetted_address_with_host_kept(server):
    assert "127.0.0.1" in resolve("localhost", server.port)
    with pytest.raises(EgressRefused) as refused:
        outbound().request("GET", f"http://localhost:{server.port}/", timeout=5)
    assert refused.value.reason.startswith("localhost resolves to ")
    assert "which is in a loopback range" in refused.value.reason and server.seen == []
    allowed = outbound(f"http://localhost:{server.port}")
    response = allowed.request("GET", f"http://localhost:{server.port}/named", timeout=5)
    assert response.status_code == 200
    assert server.seen[-1].headers["host"] == f"localhost:{server.port}"


def test_tls_keeps_the_name_for_sni_and_certificate_checks(tmp_path):
    server_tls, client_tls = self_signed_tls(tmp_path, "localhost")
    with recording_server(server_tls) as tls_server:
        url = f"https://localhost:{tls_server.port}/secure"
        allowed = outbound(f"https://localhost:{tls_server.port}", tls=client_tls)
        assert allowed.request("GET", url, timeout=5).status_code == 200
        assert tls_server.seen[-1].headers["host"] == f"localhost:{tls_server.port}"
        # By IP, the certificate (issued to "localhost") does not match: verification is on.
        by_ip = outbound(f"https://127.0.0.1:{tls_server.port}", tls=client_tls)
        with pytest.raises(httpx.ConnectError):
            by_ip.request("GET", f"https://127.0.0.1:{tls_server.port}/", timeout=5)


def test_redirect_to_a_denied_address_is_refused_before_connecting(server, other):
    to_other = f"{server.url}/redirect?to={other.url}/stolen"
    with pytest.raises(EgressRefused) as refused:
        outbound(server.url).request("GET", to_other, timeout=5)
    assert "127.0.0.1 is in a loopback range" in refused.value.reason
    assert other.seen == [] and len(server.seen) == 1
    to_metadata = f"{server.url}/redirect?to=http://169.254.169.254/latest/meta-data"
    with pytest.raises(EgressRefused, match="link-local"):
        outbound(server.url).request("GET", to_metadata, timeout=5)
    with pytest.raises(EgressRefused, match="scheme 'file'"):
        outbound(server.url).request("GET", f"{server.url}/redirect?to=file:///etc/passwd",
                                     timeout=5)  # fmt: skip


def test_redirects_followed_hop_by_hop_and_headers_stay_on_their_origin(server, other):
    both = outbound(server.url, other.url)
    secret = {"Authorization": "Bearer s3cr3t"}
    same = both.request("GET", f"{server.url}/redirect?to=/landed", headers=secret, timeout=5)
    assert same.status_code == 200 and server.seen[-1].path == "/landed"
    assert server.seen[-1].headers["authorization"] == "Bearer s3cr3t"
    cross = f"{server.url}/redirect?to={other.url}/elsewhere"
    assert both.request("GET", cross, headers=secret, timeout=5).status_code == 200
    assert other.seen[-1].path == "/elsewhere" and "authorization" not in other.seen[-1].headers
    post = both.request("POST", f"{server.url}/redirect?to=/after&code=303", json={"a": 1},
                        timeout=5)  # fmt: skip
    assert post.status_code == 200 and server.seen[-1].method == "GET"
    kept = both.request("POST", f"{server.url}/redirect?to=/kept&code=307", json={"a": 1},
                        timeout=5)  # fmt: skip
    assert kept.status_code == 200 and server.seen[-1].method == "POST"


def test_too_many_redirects(server):
    with pytest.raises(SkillError, match="more than 5 redirects"):
        outbound(server.url).request("GET", f"{server.url}/redirect", timeout=5)
    assert len(server.seen) == 6


def test_no_cookie_is_kept_between_calls_or_hops(server):
    allowed = outbound(server.url)
    allowed.request("GET", f"{server.url}/set-cookie", timeout=5)
    allowed.request("GET", f"{server.url}/after", timeout=5)
    allowed.request("GET", f"{server.url}/redirect?to=/set-cookie", timeout=5)
    allowed.request("GET", f"{server.url}/last", timeout=5)
    assert [s.path for s in server.seen if "cookie" in s.headers] == []


def test_protected_endpoints_are_refused_even_when_allow_listed(server):
    everything = outbound("*://*:*", ports=(server.port,))
    with pytest.raises(EgressRefused) as refused:
        everything.request("GET", f"{server.url}/api", timeout=5)
    assert (
        refused.value.reason
        == f"127.0.0.1:{server.port} is a protected endpoint of this deployment"
    )
    with pytest.raises(EgressRefused, match="protected endpoint"):
        everything.request("GET", f"http://localhost:{server.port}/api", timeout=5)
    assert server.seen == []


def test_deployment_endpoints_protect_the_configured_hosts(server):
    endpoints = DeploymentEndpoints(ports=(1,), hosts=("localhost",), exact=(("127.0.0.1", 9),))
    protected = {(str(p.network), p.port) for p in endpoints.protected()}
    assert {("127.0.0.0/8", 1), ("127.0.0.1/32", 1), ("127.0.0.1/32", 9)} <= protected


def test_no_request_url_reaches_the_logs(server, caplog, tmp_path):
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    step_activities(Settings(_env_file=None, data_dir=tmp_path), None)  # what the worker builds
    caplog.set_level(logging.DEBUG)
    outbound(server.url).request("GET", f"{server.url}/path-with-token?k=t0k3n", timeout=5)
    assert server.paths() == ["/path-with-token?k=t0k3n"]
    assert not [r for r in caplog.records if "t0k3n" in r.getMessage()]
    assert not [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]
