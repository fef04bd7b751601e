"""Administration wire models (meshfs_common.admin, re-exported by meshfs_common.models)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from meshfs_common import admin, models
from meshfs_common.models import decode, encode

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
POLICY = models.RetentionPolicy(max_versions=20, max_days=7, grace_days=7)
AUDIT = models.AuditEntry(audit_id=7, at=T0, action="auth.agent_create", outcome="ok", target="x")
SESSION = models.SessionInfo(
    session_id="s1", kind="agent", name="bot", user_id="u1", username="ann", created_at=T0
)
EXAMPLES: dict[type[models.AdminModel], models.AdminModel] = {
    models.RetentionPolicy: POLICY,
    models.StorageInfo: models.StorageInfo(quota=100, used=10, reserved=0),
    models.PlanInfo: models.PlanInfo(
        tenant_id="t1",
        tenant_name="acme",
        plan="free",
        retention=POLICY,
        plan_retention=POLICY,
        rate_limit_per_minute=600,
        storage=models.StorageInfo(quota=100),
    ),
    models.RetentionReport: models.RetentionReport(
        pruned_versions=1, purged_nodes=2, deleted_chunks=3
    ),
    models.AuditEntry: AUDIT,
    models.AuditPage: models.AuditPage(entries=[AUDIT], has_more=True, next_before=7),
    models.SessionInfo: SESSION,
    models.SessionList: models.SessionList(sessions=[SESSION]),
    models.AgentTokenRequest: models.AgentTokenRequest(name="bot", access="write"),
    models.AgentToken: models.AgentToken(
        token="mfa_x", session_id="s1", name="bot", path_prefix="/p", access="read", expires_at=T0
    ),
    models.DeviceActivateResponse: models.DeviceActivateResponse(status="approved"),
}


def test_every_admin_model_has_an_example_and_is_in_models() -> None:
    defined = {
        value
        for value in vars(admin).values()
        if isinstance(value, type)
        and issubclass(value, models.AdminModel)
        and value is not models.AdminModel
    }
    assert defined == set(EXAMPLES)
    assert all(getattr(models, model.__name__) is model for model in defined)


@pytest.mark.parametrize("model", list(EXAMPLES), ids=lambda m: m.__name__)
def test_round_trip_ignoring_unknown_fields(model: type[models.AdminModel]) -> None:
    body = json.loads(encode(EXAMPLES[model]))
    body["field_from_the_future"] = 1
    assert decode(json.dumps(body), model) == EXAMPLES[model]


def test_usage_a_prefix_token_is_not_told_stays_absent() -> None:
    assert json.loads(encode(models.StorageInfo(quota=100))) == {"quota": 100}


def test_fields_read_like_the_dicts_they_replace() -> None:
    page = EXAMPLES[models.AuditPage]
    assert isinstance(page, models.AuditPage)
    assert page["entries"][0]["action"] == "auth.agent_create"
    assert page["entries"][0].get("agent_name", "-") == "-"
    assert page.get("no_such_field") is None
    with pytest.raises(KeyError):
        page["no_such_field"]
