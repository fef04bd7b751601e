"""Attacks on access tokens: each one must be a 401, never a 500 and never access."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from conftest import AuthHarness
from joserfc import jwt
from joserfc.jwk import OctKey, OKPKey

from meshfs_server.auth.tokens import AUDIENCE


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(head))),
            json.loads(base64.urlsafe_b64decode(pad(body))))  # fmt: skip


async def status_with(auth: AuthHarness, token: str) -> int:
    async with auth.client_for(token) as client:
        reply = await client.get("/files/list", params={"path": "/"})
    if reply.status_code == 401:
        assert reply.json()["error"] == "unauthenticated"
    return reply.status_code


def sign(auth: AuthHarness, header: dict[str, Any], claims: dict[str, Any], key: Any = None,
         alg: str | None = None) -> str:  # fmt: skip
    ring = auth.services.identity.signer.ring
    algorithm = alg or ring.algorithm
    return jwt.encode({"alg": algorithm, "kid": ring.current_kid, **header}, claims,
                      key or ring.current, algorithms=[algorithm])  # fmt: skip


async def valid_claims(auth: AuthHarness) -> tuple[str, dict[str, Any]]:
    tokens = await auth.login("alice")
    assert await status_with(auth, tokens.access_token) == 200
    return tokens.access_token, parts(tokens.access_token)[1]


async def test_alg_none_is_refused(auth: AuthHarness) -> None:
    token, claims = await valid_claims(auth)
    header = {"alg": "none", "typ": "JWT", "kid": parts(token)[0]["kid"]}
    for forged in (f"{b64(header)}.{b64(claims)}.", f"{b64(header)}.{b64(claims)}"):
        assert await status_with(auth, forged) == 401


async def test_wrong_key_with_the_right_kid_is_refused(auth: AuthHarness) -> None:
    _, claims = await valid_claims(auth)
    stranger = OKPKey.generate_key("Ed25519")
    assert await status_with(auth, sign(auth, {}, claims, stranger)) == 401


async def test_algorithm_confusion_hs256_with_public_key_is_refused(auth: AuthHarness) -> None:
    _, claims = await valid_claims(auth)
    public = auth.services.identity.signer.ring.current.as_dict(private=False)["x"]
    forged = sign(auth, {}, claims, OctKey.import_key(public.encode()), alg="HS256")
    assert await status_with(auth, forged) == 401


async def test_expired_token_is_refused(auth: AuthHarness) -> None:
    _, claims = await valid_claims(auth)
    now = int(time.time())
    expired = sign(auth, {}, {**claims, "iat": now - 7200, "exp": now - 3600})
    assert await status_with(auth, expired) == 401


async def test_tampered_payload_is_refused(auth: AuthHarness) -> None:
    token, claims = await valid_claims(auth)
    head, _, signature = token.split(".")
    for change in ({"tid": "0" * 26}, {"sub": "0" * 26}, {"exp": claims["exp"] + 10**6},
                   {"scope": "admin"}):  # fmt: skip
        forged = f"{head}.{b64({**claims, **change})}.{signature}"
        assert await status_with(auth, forged) == 401


@pytest.mark.parametrize(
    "change",
    [{"aud": "someone-else"}, {"aud": "meshfs-device-approval"}, {"iss": "https://evil.example"},
     {"exp": None}, {"sid": None}],
)  # fmt: skip
async def test_wrong_audience_issuer_or_missing_claims(
    auth: AuthHarness, change: dict[str, Any]
) -> None:
    _, claims = await valid_claims(auth)
    forged_claims = {k: v for k, v in {**claims, **change}.items() if v is not None}
    assert await status_with(auth, sign(auth, {}, forged_claims)) == 401


async def test_token_must_match_its_session(auth: AuthHarness) -> None:
    # Correctly signed, but naming another tenant than the session it cites.
    _, claims = await valid_claims(auth)
    bob = await auth.login("bob")
    forged = sign(auth, {}, {**claims, "tid": bob.tenant_id})
    assert await status_with(auth, forged) == 401


async def test_revoked_session_is_refused_on_the_next_request(auth: AuthHarness) -> None:
    token, _ = await valid_claims(auth)
    async with auth.client_for(token) as client:
        assert (await client.post("/auth/logout")).status_code == 204
    assert await status_with(auth, token) == 401


async def test_disabled_user_is_refused_on_the_next_request(auth: AuthHarness) -> None:
    token, claims = await valid_claims(auth)
    async with auth.services.identity.db.write() as conn:
        await conn.execute("UPDATE users SET disabled = 1 WHERE user_id = ?", (claims["sub"],))
    assert await status_with(auth, token) == 401


async def test_garbage_and_odd_headers(auth: AuthHarness) -> None:
    for token in ("", "a.b.c", "eyJ.eyJ.sig", "mfa_unknown", "mfr_refresh-is-not-a-bearer"):
        assert await status_with(auth, token) in (401,)
    async with auth.client_for(None, Authorization="Basic YWxpY2U6cHc=") as client:
        assert (await client.get("/files/list", params={"path": "/"})).status_code == 401


async def test_approval_ticket_is_not_an_access_token(auth: AuthHarness) -> None:
    _, claims = await valid_claims(auth)
    ticket = auth.services.identity.signer.issue_ticket(
        {"sub": claims["sub"], "tid": claims["tid"], "sid": claims["sid"]},
        audience="meshfs-device-approval", ttl=60,
    )  # fmt: skip
    assert await status_with(auth, ticket) == 401


async def test_token_signed_before_rotation_still_works(auth: AuthHarness) -> None:
    token, _ = await valid_claims(auth)
    signer = auth.services.identity.signer
    await signer.source.rotate()  # the key file, or the signing_keys table on Postgres
    await signer.refresh_keys(force=True)
    assert await status_with(auth, token) == 200
    fresh = await auth.login("alice")
    assert parts(fresh.access_token)[0]["kid"] != parts(token)[0]["kid"]
    assert parts(fresh.access_token)[1]["aud"] == AUDIENCE
    assert await status_with(auth, fresh.access_token) == 200
