"""`integration validate`: every error with its YAML path and hint, exit 1; a summary if valid."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from integration.cli.main import main

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EXAMPLES = Path(__file__).resolve().parents[2] / "integration" / "cli" / "examples"
EXAMPLE = EXAMPLES / "config.example.yaml"


def run_validate(tmp_path: Path, text: str, env: dict[str, str]) -> tuple[int, str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(path)], env=env)
    return result.exit_code, result.output.replace(str(path), "config.yaml")


BOTH_SECRETS = {"USAGE_WEBHOOK_SECRET": SECRET, "JOB_CHANGES_WEBHOOK_SECRET": SECRET}


def test_the_shipped_example_is_valid_and_summarised() -> None:
    result = CliRunner().invoke(main, ["validate", "--config", str(EXAMPLE)], env=BOTH_SECRETS)
    assert result.exit_code == 0
    assert result.output.splitlines()[1:] == [
        "  crm: sandbox (accounts matched on product_account_id)",
        "  fields: risk_level -> churn_risk_level, risk_reasons -> churn_risk_reasons, "
        "usage_trend_pct -> usage_trend_pct, license_utilization_pct -> license_utilization_pct, "
        "last_active_date -> last_product_activity_date",
        "  risk rules: usage_drop, login_frequency_drop, slow_decline, champion_left, "
        "inactivity, license_utilization, new_decision_maker, champion_joined, nps_detractor, "
        "support_ticket_spike, long_open_tickets, csat_low, utilization_growth, "
        "key_feature_not_adopted, key_feature_decline, onboarding_stalled, low_stickiness, "
        "renewal",
        "  playbooks (11 on): champion_joined_welcome (1 step), champion_left_multithread "
        "(1 step), inactivity_winback (1 step), key_feature_training (1 step), "
        "low_license_utilization (1 step), new_decision_maker_intro (1 step), onboarding_stalled "
        "(1 step), renewal_risk_escalation (1 step), usage_drop_checkin (2 steps), "
        "utilization_growth_expansion (1 step), voice_of_customer_followup (1 step)",
        "  webhook secrets from: USAGE_WEBHOOK_SECRET, JOB_CHANGES_WEBHOOK_SECRET",
    ]


def test_the_config_is_found_through_the_environment_variable() -> None:
    env = BOTH_SECRETS | {"INTEGRATION_CONFIG": str(EXAMPLE)}
    result = CliRunner().invoke(main, ["validate"], env=env)
    assert (result.exit_code, result.output.splitlines()[0]) == (0, f"{EXAMPLE}: valid")


def test_every_error_is_printed_at_once_with_path_and_hint(tmp_path: Path) -> None:
    text = """
crm: {kind: salesforce}
risk:
  usage_drop: {drop_pc: 40, window_days: seven}
webhooks:
  usage: {secret_env: NOPE_SECRET}
playbooks:
  usage_drop_checkn: {}
fields: {risk_level: 5}
"""
    code, output = run_validate(tmp_path, text, {"JOB_CHANGES_WEBHOOK_SECRET": SECRET})
    assert code == 1
    assert output.splitlines() == [
        "config.yaml: 8 error(s)",
        "  fields.risk_level: input should be a valid string, got 5",
        "      hint: the default is 'churn_risk_level'; leave the key out to use it",
        "  risk.usage_drop.window_days: input should be a valid integer, unable to parse string "
        "as an integer, got 'seven'",
        "      hint: the default is 7; leave the key out to use it",
        "  risk.usage_drop.drop_pc: unknown key 'drop_pc'",
        "      hint: did you mean 'drop_pct'? allowed keys: baseline_days, drop_pct, enabled, "
        "lookback_weeks, min_baseline_daily_users, min_significance_z, recover_days, "
        "recover_pct, seasonal, settled_days, small_account_max_users, "
        "small_account_window_days, window_days",
        "  playbooks.usage_drop_checkn: unknown playbook 'usage_drop_checkn'",
        "      hint: did you mean 'usage_drop_checkin'? a new playbook needs title, trigger and "
        "steps; shipped: champion_joined_welcome, champion_left_multithread, "
        "inactivity_winback, key_feature_training, low_license_utilization, "
        "new_decision_maker_intro, onboarding_stalled, renewal_risk_escalation, "
        "usage_drop_checkin, utilization_growth_expansion, voice_of_customer_followup",
        "  webhooks.usage.secret_env: environment variable NOPE_SECRET is not set",
        "      hint: export NOPE_SECRET=whsec_<base64 secret shared with the sender>",
        "  crm.salesforce.auth.username_env: environment variable SALESFORCE_USERNAME is not set",
        "      hint: export SALESFORCE_USERNAME=...",
        "  crm.salesforce.auth.consumer_key_env: environment variable SALESFORCE_CONSUMER_KEY "
        "is not set",
        "      hint: export SALESFORCE_CONSUMER_KEY=...",
        "  crm.salesforce.auth.private_key_env: environment variable SALESFORCE_PRIVATE_KEY "
        "is not set",
        "      hint: export SALESFORCE_PRIVATE_KEY=...",
    ]


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (
            "risk: {usage_drop: {drop_pct: fifty}}",
            BOTH_SECRETS,
            "  risk.usage_drop.drop_pct: input should be a valid number, unable to parse string as "
            "a number, got 'fifty'",
        ),
        (
            "risk: {usage_drop: {drop_pct: 140}}",
            BOTH_SECRETS,
            "  risk.usage_drop.drop_pct: input should be less than or equal to 100, got 140",
        ),
        (
            "risk: {usage_drop: {window_days: 14, small_account_window_days: 7}}",
            BOTH_SECRETS,
            "  risk.usage_drop: small_account_window_days (7) must be at least window_days (14): "
            "small accounts must stay down longer",
        ),
        (
            "risk: {usage_drop: {window_days: 30, small_account_window_days: 30}}",
            BOTH_SECRETS,
            "  risk.usage_drop: these settings read 450 days of history but 448 are kept: "
            "shorten window_days or lookback_weeks, or set seasonal: no",
        ),
        (
            "risk: {key_feature_not_adopted: {key_features: [reports_creatd]}}",
            BOTH_SECRETS,
            "  risk.key_feature_not_adopted.key_features: 'reports_creatd' is not a counted metric",
        ),
        (
            "risk: {key_feature_decline: {key_features: [reports_creatd]}}",
            BOTH_SECRETS,
            "  risk.key_feature_decline.key_features: 'reports_creatd' is not a counted metric",
        ),
        (
            "risk: {slow_decline: {compare_weeks: 8, lookback_weeks: 13}}",
            BOTH_SECRETS,
            "  risk.slow_decline: these settings read 476 days of history but 448 are kept: "
            "shorten compare_weeks or set seasonal: no",
        ),
        (
            "webhooks: {usage: {secret_env: 5}}",
            BOTH_SECRETS,
            "  webhooks.usage.secret_env: input should be a valid string, got 5",
        ),
        (
            "crm: {sandbox: {seed_file: no/such/seed.yaml}}",
            BOTH_SECRETS,
            "  crm.sandbox.seed_file: no file at 'no/such/seed.yaml'",
        ),
        (
            "crm: {kind: salesforce, salesforce: {auth: {flow: password}, api_version: '65.0'}}",
            BOTH_SECRETS,
            "  crm.salesforce: the password flow logs in with SOAP login(), which API 65.0 no "
            "longer has: use auth.flow jwt or client_credentials, or api_version 64.0",
        ),
        (
            "risk: {segments: {enterprise: {usage_drop: {drop_pc: 30}}}}",
            BOTH_SECRETS,
            "  risk: segments.enterprise.usage_drop.drop_pc: extra inputs are not permitted",
        ),
        (
            "crm: {kind: pipedrive}",
            BOTH_SECRETS,
            "  crm.kind: input should be 'sandbox', 'hubspot' or 'salesforce', got 'pipedrive'",
        ),
        (
            "playbooks: {usage_drop_checkin: {priorty: high}}",
            BOTH_SECRETS,
            "  playbooks.usage_drop_checkin.priorty: unknown key 'priorty'",
        ),
        (
            "budget: {hubspot_time_zone: Europe/Pariss}",
            BOTH_SECRETS,
            "  budget.hubspot_time_zone: unknown time zone 'Europe/Pariss': give an IANA name "
            "such as Europe/Paris or UTC",
        ),
        (
            "playbooks: {usage_drop_checkin: {control_pct: 80}}",
            BOTH_SECRETS,
            "  playbooks.usage_drop_checkin.control_pct: input should be less than or equal to 50, "
            "got 80",
        ),
        (
            "owners: {fallback_owner: ana}",
            {"USAGE_WEBHOOK_SECRET": SECRET, "JOB_CHANGES_WEBHOOK_SECRET": "hunter2"},
            "  webhooks.job_changes.secret_env: environment variable JOB_CHANGES_WEBHOOK_SECRET is "
            "not a Standard Webhooks secret",
        ),
        (
            "crm: [sandbox",
            BOTH_SECRETS,
            "  (file): not valid YAML at line 1, column 14: expected ',' or ']', but got "
            "'<stream end>'",
        ),
        (
            "- just\n- a list",
            BOTH_SECRETS,
            "  (file): expected a mapping of sections at the top, got list",
        ),
    ],
)
def test_each_kind_of_mistake_is_named(
    tmp_path: Path, text: str, env: dict[str, str], expected: str
) -> None:
    code, output = run_validate(tmp_path, text, env)
    assert code == 1
    assert output.splitlines()[1] == expected
    assert "PydanticUndefined" not in output


def test_a_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "nope.yaml")], env=BOTH_SECRETS)
    assert result.exit_code == 1
    assert "hint: pass --config PATH or set INTEGRATION_CONFIG" in result.output


def test_the_secret_value_is_never_printed(tmp_path: Path) -> None:
    env = {"USAGE_WEBHOOK_SECRET": "not-a-secret-format-xyz", "JOB_CHANGES_WEBHOOK_SECRET": SECRET}
    code, output = run_validate(tmp_path, "{}", env)
    assert code == 1
    assert "not-a-secret-format-xyz" not in output
