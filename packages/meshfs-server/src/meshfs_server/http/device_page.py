"""The device approval page at ``/device`` (the RFC 8628 verification URI).

Step 1 (``GET /device``): the person types the user code (prefilled from
``verification_uri_complete``), their username and password. Step 2 (``POST /device``): with
valid credentials and a live code the page shows which client asks (its name, the address it
started from and when) and in which tenant, with Approve and Deny. Step 3
(``POST /device/decide``) records the decision.

Protections: every form carries a CSRF token that must equal the ``meshfs_csrf`` cookie
(double submit; the cookie is HttpOnly, SameSite=Strict, scoped to ``/device``) and a
cross-origin ``Origin`` is refused; the sign-in between steps 2 and 3 is a short-lived ticket
signed with the server's key (audience ``meshfs-device-approval``, useless as an access token);
failed sign-ins and unknown codes spend the address's and the account's guess budget (the
rules are :mod:`meshfs_server.auth.approval`; this module renders); responses are
``no-store`` with a strict Content-Security-Policy and may not be framed.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from html import escape

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from meshfs_common.errors import (
    ForbiddenError,
    MeshFSError,
)
from meshfs_server.auth import approval
from meshfs_server.auth.service import Identity
from meshfs_server.http.authn import client_address
from meshfs_server.http.codec import Endpoint, Param, endpoint
from meshfs_server.http.errors import retry_after
from meshfs_server.http.state import identity as identity_of

CSRF_COOKIE = "meshfs_csrf"
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;"
    "color:#222}label{display:block;margin:.8rem 0 .2rem}input,select{width:100%;padding:.45rem;"
    "box-sizing:border-box;font-size:1rem}button{margin:1rem .5rem 0 0;padding:.5rem 1.2rem;"
    "font-size:1rem}.error{color:#a00}.client{background:#f3f3f3;padding:.8rem;border-radius:6px}"
    "code{font-size:1.1rem;letter-spacing:.1em}"
)


def _identity(request: Request) -> Identity:
    return identity_of(request)


def _page(request: Request, title: str, body: str, csrf: str, status: int = 200,
          headers: dict[str, str] | None = None) -> HTMLResponse:  # fmt: skip
    html = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width'><title>{escape(title)} - MeshFS"
        f"</title><style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}"
        f"</body></html>"
    )
    response = HTMLResponse(html, status_code=status, headers={**_SECURITY_HEADERS,
                                                              **(headers or {})})  # fmt: skip
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=3600, path="/device", httponly=True, samesite="strict",
        secure=_identity(request).settings.base_url.startswith("https://"),
    )  # fmt: skip
    return response


def _csrf_field(csrf: str) -> str:
    return f"<input type='hidden' name='csrf' value='{escape(csrf)}'>"


def _signin_form(csrf: str, user_code: str = "", username: str = "", error: str = "") -> str:
    message = f"<p class='error' id='error'>{escape(error)}</p>" if error else ""
    return (
        f"{message}<p>Sign in to let a device or program use your MeshFS account.</p>"
        f"<form method='post' action='/device'>{_csrf_field(csrf)}"
        f"<label for='user_code'>Code shown on the device</label>"
        f"<input id='user_code' name='user_code' value='{escape(user_code)}' required "
        f"autocomplete='off' autocapitalize='characters'>"
        f"<label for='username'>Username</label>"
        f"<input id='username' name='username' value='{escape(username)}' required "
        f"autocomplete='username'>"
        f"<label for='password'>Password</label>"
        f"<input id='password' name='password' type='password' required "
        f"autocomplete='current-password'>"
        f"<button id='signin' type='submit'>Continue</button></form>"
    )


def _csrf_of(request: Request) -> str:
    current = request.cookies.get(CSRF_COOKIE, "")
    return current if len(current) >= 32 else secrets.token_urlsafe(32)


def _check_csrf(request: Request, form: FormData) -> None:
    origin = request.headers.get("origin")
    if origin not in (None, "null"):
        host = request.headers.get("host", "")
        base = _identity(request).settings.base_url
        if origin.rstrip("/") != base and origin.split("://", 1)[-1] != host:
            raise ForbiddenError("cross-origin form submission refused")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = str(form.get("csrf", ""))
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise ForbiddenError("the form expired or was not sent from this page; reload it")


def _error_page(request: Request, exc: MeshFSError) -> HTMLResponse:
    csrf = _csrf_of(request)
    headers: dict[str, str] = {}
    wait = retry_after(exc)
    if wait is not None:
        headers["Retry-After"] = wait
    body = (
        f"<p class='error' id='error'>{escape(exc.message)}</p>"
        "<p><a href='/device'>Start over</a></p>"
    )
    return _page(request, "Cannot continue", body, csrf, exc.status, headers)


#: What the approval page's forms can answer besides the next page: 400 a malformed form or
#: no decision; 401 a wrong password or an expired sign-in; 403 a cross-origin or expired form
#: (CSRF) or no membership; 404 an unknown or expired code; 429 too many guesses.
_FORM_ERRORS = ("bad_request", "unauthenticated", "forbidden", "not_found", "rate_limited")


@endpoint(Endpoint(
    "The device approval page (HTML; the RFC 8628 verification URI)", response=str,
    response_media="text/html", auth=False, tags=("auth",),
    params=(Param("user_code", description="prefilled code"),), error_media="text/html",
))  # fmt: skip
async def device_page(request: Request) -> Response:
    """Step 1: the sign-in form."""
    csrf = _csrf_of(request)
    code = request.query_params.get("user_code", "")[:20]
    return _page(request, "Approve a device", _signin_form(csrf, code), csrf)


@endpoint(Endpoint(
    "Approval page sign-in (HTML form: csrf, user_code, username, password)", request=str,
    request_media="application/x-www-form-urlencoded", response=str, response_media="text/html",
    auth=False, tags=("auth",), errors=_FORM_ERRORS, error_media="text/html",
))  # fmt: skip
async def device_signin(request: Request) -> Response:
    """Step 2: check the password and the code, then show who asks."""
    try:
        return await _signin(request)
    except MeshFSError as exc:
        return _error_page(request, exc)


async def _signin(request: Request) -> Response:
    identity = _identity(request)
    form = await request.form()
    _check_csrf(request, form)
    csrf = _csrf_of(request)
    address = client_address(request)
    user_code = str(form.get("user_code", ""))[:20]
    username = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[:1024]
    outcome = await approval.sign_in(identity, username, password, user_code, address)
    if isinstance(outcome, approval.SignInRefused):
        form_html = _signin_form(csrf, user_code, username, outcome.problem)
        return _page(request, "Approve a device", form_html, csrf, outcome.status)
    user, code, tenants, ticket = outcome.user, outcome.code, outcome.tenants, outcome.ticket
    started = datetime.fromtimestamp(code.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    options = "".join(
        f"<option value='{escape(m.tenant_id)}'>{escape(m.tenant_name)} ({m.role})</option>"
        for m in tenants
    )
    body = (
        f"<div class='client' id='client'><p><strong id='client-name'>"
        f"{escape(code.client_name)}</strong> asks to sign in as <strong>"
        f"{escape(user.username)}</strong>.</p><p>Code <code>{escape(code.user_code)}</code>,"
        f" started {escape(started)} from {escape(code.client_address or 'an unknown address')}"
        f".</p></div><p>Only approve if you started this login yourself.</p>"
        f"<form method='post' action='/device/decide'>{_csrf_field(csrf)}"
        f"<input type='hidden' name='ticket' value='{escape(ticket)}'>"
        f"<label for='tenant'>Tenant</label><select id='tenant' name='tenant'>{options}"
        f"</select><button id='approve' name='decision' value='approve' type='submit'>Approve"
        f"</button><button id='deny' name='decision' value='deny' type='submit'>Deny</button>"
        f"</form>"
    )
    return _page(request, "Approve this device?", body, csrf)


@endpoint(Endpoint(
    "Approval page decision (HTML form: csrf, ticket, tenant, decision=approve|deny)",
    request=str, request_media="application/x-www-form-urlencoded", response=str,
    response_media="text/html", auth=False, tags=("auth",), errors=_FORM_ERRORS,
    error_media="text/html",
))  # fmt: skip
async def device_decide(request: Request) -> Response:
    """Step 3: record the decision."""
    try:
        return await _decide(request)
    except MeshFSError as exc:
        return _error_page(request, exc)


async def _decide(request: Request) -> Response:
    identity = _identity(request)
    form = await request.form()
    _check_csrf(request, form)
    csrf = _csrf_of(request)
    code = await approval.decide(
        identity, str(form.get("ticket", "")), str(form.get("decision", "")),
        str(form.get("tenant", "")), client_address(request),
    )  # fmt: skip
    if code.status == "approved":
        body = (f"<p id='result'>Approved. <strong>{escape(code.client_name)}</strong> is now "
                "signed in; you can close this page and return to it.</p>")  # fmt: skip
        return _page(request, "Device approved", body, csrf)
    body = f"<p id='result'>Denied. {escape(code.client_name)} was not signed in.</p>"
    return _page(request, "Device denied", body, csrf)


routes: list[BaseRoute] = [
    Route("/device", device_page, methods=["GET"]),
    Route("/device", device_signin, methods=["POST"]),
    Route("/device/decide", device_decide, methods=["POST"]),
]
