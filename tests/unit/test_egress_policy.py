"""The pure egress policy (domain.egress), secret references (domain.secret_refs) and the
optional secrets field of the hash chain (domain.hashchain)."""

import pytest

from domain.egress import (
    EgressPolicy,
    EgressRule,
    EgressRuleError,
    Target,
    denied_range,
    deployment_endpoints,
    parse_address,
    parse_rules,
)
from domain.hashchain import (
    SECRETS_PROOF_KEY,
    first_broken_link,
    step_content,
    step_hash,
    with_secrets_proof,
)
from domain.secret_refs import (
    placeholder,
    redact,
    referenced_names,
    secrets_digest,
    substitute,
)

PROTECTED = deployment_endpoints([7233, 8233, 8000])
POLICY = EgressPolicy("acme", protected=PROTECTED)


def target(host: str, *addresses: str, port: int = 80, scheme: str = "http") -> Target:
    return Target(scheme, host, port, addresses or (host,))


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
        ("10.0.0.5", "private"), ("172.16.1.1", "private"), ("192.168.1.1", "private"),
        ("fd00::1", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"),
        ("::", "unspecified"), ("240.0.0.1", "reserved"), ("100.64.0.1", "special-purpose"),
        ("::ffff:10.1.1.1", "private"), ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::a00:1", "private"), ("8.8.8.8", None), ("2606:4700:4700::1111", None),
        ("64:ff9b::808:808", None),
    ],
)  # fmt: skip
def test_default_denied_ranges(address, expected):
    assert denied_range(parse_address(address)) == expected


def test_refusal_names_the_address_the_range_and_the_tenant():
    assert POLICY.refusal(target("10.0.0.5")) == (
        "10.0.0.5 is in a private range (no allow-list entry for tenant acme)"
    )
    assert POLICY.refusal(target("localhost", "127.0.0.1")) == (
        "localhost resolves to 127.0.0.1, which is in a loopback range "
        "(no allow-list entry for tenant acme)"
    )
    assert POLICY.refusal(target("example.com", "93.184.216.34")) is None


def test_any_denied_address_refuses_the_target():
    mixed = target("mixed.example", "93.184.216.34", "10.1.2.3")
    assert "resolves to 10.1.2.3, which is in a private range" in POLICY.refusal(mixed)


def test_protected_endpoints_win_over_every_allow_list_entry():
    everything = POLICY.allowing(EgressRule.parse({"scheme": "*", "host": "*", "port": "*"}))
    assert everything.refusal(target("127.0.0.1", port=8233)) == (
        "127.0.0.1:8233 is a protected endpoint of this deployment"
    )
    for address in ("127.0.0.2", "::1", "0.0.0.0", "::ffff:127.0.0.1"):
        assert "protected endpoint" in everything.refusal(target(address, port=7233))
    assert everything.refusal(target("127.0.0.1", port=18080)) is None
    assert everything.refusal(target("10.0.0.5", port=8000)) is None  # not this deployment's


def test_exact_protected_endpoint():
    protected = deployment_endpoints([7233], exact=[("10.9.8.7", 7234)])
    policy = EgressPolicy("acme", protected=protected).allowing(EgressRule.parse_text("*://*:*"))
    assert "protected endpoint" in policy.refusal(target("10.9.8.7", port=7234))
    assert policy.refusal(target("10.9.8.7", port=7235)) is None


@pytest.mark.parametrize(
    ("rule", "reached", "refused"),
    [
        ("http://127.0.0.1:18080", target("127.0.0.1", port=18080),
         target("127.0.0.1", port=18081)),
        ("http://127.0.0.1:*", target("127.0.0.1", port=18081),
         target("127.0.0.1", port=18081, scheme="https")),
        ("*://10.0.0.0/8:*", target("10.2.3.4", port=443, scheme="https"),
         target("192.168.0.1")),
        ("http://internal.corp:80", target("internal.corp", "10.0.0.7"),
         target("other.corp", "10.0.0.7")),
        ("http://*.corp:80", target("api.internal.corp", "10.0.0.7"),
         target("corp", "10.0.0.7")),
        ('{"scheme": "http", "host": "::1", "port": null}', target("::1", port=5),
         target("127.0.0.1", port=5)),
    ],
)  # fmt: skip
def test_allow_list_entries(rule, reached, refused):
    policy = POLICY.allowing(EgressRule.parse_text(rule))
    assert policy.refusal(reached) is None
    assert policy.refusal(refused) is not None


def test_public_hosts_stay_reachable_unless_the_policy_is_exclusive():
    rules = (EgressRule.parse_text("https://api.example.com"),)
    open_policy = EgressPolicy("acme", rules=rules, protected=PROTECTED)
    exclusive = EgressPolicy("acme", rules=rules, protected=PROTECTED, exclusive=True)
    public = target("other.example", "93.184.216.34", port=443, scheme="https")
    assert open_policy.refusal(public) is None
    assert "exclusive" in exclusive.refusal(public)
    allowed = target("api.example.com", "93.184.216.35", port=443, scheme="https")
    assert exclusive.refusal(allowed) is None


def test_scheme_and_empty_resolution_are_refused():
    assert "scheme 'ftp'" in POLICY.refusal(Target("ftp", "example.com", 21, ("93.184.216.34",)))
    assert "resolves to no address" in POLICY.refusal(Target("http", "x.example", 80, ()))


@pytest.mark.parametrize(
    "raw",
    [{"host": "x", "extra": 1}, {"host": ""}, {"host": "x", "port": 0},
     {"host": "x", "port": "eighty"}, {"host": "x", "scheme": "ftp"}, {"host": "a b"},
     {"host": "x", "port": True}, "http://x"],
)  # fmt: skip
def test_bad_rules_are_refused_naming_the_field(raw):
    with pytest.raises(EgressRuleError):
        parse_rules([raw], "EGRESS_ALLOW")


def test_rule_text_forms_and_round_trip():
    assert EgressRule.parse_text("https://api.example.com").to_dict() == {
        "scheme": "https", "host": "api.example.com", "port": 443}  # fmt: skip
    assert EgressRule.parse_text("*://[fd00::/8]:*").to_dict() == {
        "scheme": "*", "host": "fd00::/8", "port": "*"}  # fmt: skip
    assert EgressRule.for_url("http://u:p@LOCALHOST:8081/v1").to_dict() == {
        "scheme": "http", "host": "localhost", "port": 8081}  # fmt: skip
    rule = EgressRule.parse_text("http://127.0.0.1:18080")
    assert EgressRule.parse(rule.to_dict()) == rule
    with pytest.raises(EgressRuleError):
        EgressRule.parse_text("127.0.0.1:18080")


def test_secret_references_substitution_and_redaction():
    data = {"url": "https://x/?k=${secret:key}", "headers": {"A": "Bearer ${secret:api-token}"},
            "list": ["${secret:key}", 3], "plain": "$notasecret ${secret:}"}  # fmt: skip
    assert referenced_names(data) == ["api-token", "key"]
    values = {"api-token": 'tok"en-123', "key": "k-1"}
    sent = substitute(data, values)
    assert sent["headers"]["A"] == 'Bearer tok"en-123' and sent["list"] == ["k-1", 3]
    assert sent["plain"] == data["plain"]
    echoed = {"body": '{"a": "Bearer tok\\"en-123"} k-1 tok"en-123', "n": 1}
    hidden = redact(echoed, values)
    assert "en-123" not in hidden["body"] and "k-1" not in hidden["body"]
    assert hidden["body"].count(placeholder("api-token")) == 2 and hidden["n"] == 1
    assert redact(echoed, {}) == echoed


def test_secrets_digest_depends_on_values_and_step():
    a = secrets_digest("r1", 0, {"k": "v"})
    assert a == secrets_digest("r1", 0, {"k": "v"})
    assert a != secrets_digest("r1", 0, {"k": "w"})
    assert a != secrets_digest("r1", 1, {"k": "v"})


def test_hash_chain_without_secrets_is_unchanged_and_with_secrets_covers_the_digest():
    plain = dict(run_id="r", step_index=0, skill="http", input={"url": "u"}, output={},
                 cost="0", status="OK", error=None)  # fmt: skip
    assert "secrets_sha256" not in step_content(**plain)
    assert with_secrets_proof({"url": "u"}, None) == {"url": "u"}
    stored = with_secrets_proof({"url": "u"}, "d" * 64)
    assert stored[SECRETS_PROOF_KEY] == "d" * 64
    content = step_content(**{**plain, "input": stored})
    assert content["input"] == {"url": "u"} and content["secrets_sha256"] == "d" * 64
    good = step_hash("0" * 64, content)
    assert first_broken_link([(0, "0" * 64, good, content)]) is None
    tampered = step_content(**{**plain, "input": with_secrets_proof({"url": "u"}, "e" * 64)})
    assert first_broken_link([(0, "0" * 64, good, tampered)]) == 0
