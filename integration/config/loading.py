"""Loading the admin's YAML: read it, validate it, resolve secrets, and say what is wrong where.

Every problem is collected before raising, each with its YAML path and a hint, so `integration
validate` can list them all in one pass.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from integration.config.channels import EmailChannel, SlackChannel
from integration.config.schema import (
    AVAILABLE_CRMS,
    SECRET_PREFIX,
    Config,
    CrmKind,
    HubSpotCrm,
    HubSpotOAuth,
    HubSpotWebhook,
    SalesforceAuth,
    SandboxCrm,
    Webhooks,
    WebhookSource,
)
from integration.errors import ConfigError, InvalidConfigError


def load_config(
    path: Path,
    lookup_env: Callable[[str], str | None],
    shipped_playbooks: Iterable[str] = (),
    check: Callable[[Config], list[ConfigError]] | None = None,
) -> Config:
    """Load and resolve a config file; raise all its problems in one InvalidConfigError.
    `check` looks further at a config whose shape is right (the playbooks' meaning)."""
    raw = _read_yaml(path)
    errors: list[ConfigError] = []
    config = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        errors.extend(_config_error(error) for error in exc.errors())
    reported = {error.yaml_path for error in errors}
    secrets, secret_errors = _resolve_secrets(raw, lookup_env)
    errors.extend(
        error
        for error in (
            *_check_crm(raw),
            *_check_playbook_names(raw, frozenset(shipped_playbooks)),
            *secret_errors,
            *(_check_sandbox_files(config.crm.sandbox) if config else []),
            *(_check_metric_names(config) if config else []),
        )
        if error.yaml_path not in reported
    )
    checked = config if config is not None else _playbook_sections(raw)
    if checked is not None and check is not None:
        reported = {error.yaml_path for error in errors}
        errors.extend(error for error in check(checked) if error.yaml_path not in reported)
    if errors or config is None:
        raise InvalidConfigError(errors)
    config._secrets.update(secrets)  # noqa: SLF001 - filling our own private store
    return config


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read config file {str(path)!r}: {exc.strerror}"
        hint = (
            "pass --config PATH or set INTEGRATION_CONFIG; "
            "integration/cli/examples/config.example.yaml is a start"
        )
        raise InvalidConfigError([ConfigError("", msg, hint)]) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
        msg = f"not valid YAML at {where}: {getattr(exc, 'problem', exc)}"
        raise InvalidConfigError([ConfigError("", msg)]) from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        msg = f"expected a mapping of sections at the top, got {type(raw).__name__}"
        raise InvalidConfigError([ConfigError("", msg)])
    return raw


def _yaml_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _config_error(error: Mapping[str, Any]) -> ConfigError:
    loc = tuple(error["loc"])
    path = _yaml_path(loc)
    model = _model_at(loc[:-1])
    fields = model.model_fields if model is not None else {}
    key = str(loc[-1]) if loc else ""
    if error["type"] == "extra_forbidden":
        allowed = sorted(fields)
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        hint += f"allowed keys: {', '.join(allowed)}" if allowed else ""
        return ConfigError(path, f"unknown key {key!r}", hint)
    if error["type"] == "missing":
        return ConfigError(path, "required key is missing")
    if error["type"] == "value_error":
        return ConfigError(path, str(error["msg"]).removeprefix("Value error, "))
    message = f"{error['msg'][0].lower()}{error['msg'][1:]}, got {error.get('input')!r}"
    field = fields.get(key)
    default = None
    if field is not None and not field.is_required():
        default = field.get_default(call_default_factory=True)
    hint = f"the default is {default!r}; leave the key out to use it" if default is not None else ""
    return ConfigError(path, message, hint)


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config model that holds the key at `loc`, for hints naming its keys and defaults."""
    model: type[BaseModel] | None = Config
    keyed = False  # the part after a dict field is a key of the admin's, not a field
    for part in loc:
        if isinstance(part, int) or keyed:
            keyed = False
            continue  # an item of a list or a dict: its model is already in hand
        field = model.model_fields.get(part) if model is not None else None
        annotation = field.annotation if field else None
        keyed = get_origin(annotation) is dict
        model = _model_in(annotation)
    return model


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The model a field holds: itself, or inside `X | None`, `tuple[X, ...]`, `dict[str, X]`
    (e.g. playbooks: {name: PlaybookEntry})."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is dict:
        return _model_in(get_args(annotation)[1])
    for inner in get_args(annotation):
        found = _model_in(inner)
        if found is not None:
            return found
    return None


def _section(raw: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    """A nested mapping of the raw YAML, or {} where the file has something else there."""
    node: Any = raw
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _check_crm(raw: Mapping[str, Any]) -> list[ConfigError]:
    kind = _section(raw, "crm").get("kind", "sandbox")
    if not isinstance(kind, str) or kind in AVAILABLE_CRMS or kind not in get_args(CrmKind):
        return []
    msg = f"the {kind} adapter is not part of this build yet"
    return [ConfigError("crm.kind", msg, f"use one of: {', '.join(sorted(AVAILABLE_CRMS))}")]


def _check_sandbox_files(sandbox: SandboxCrm) -> list[ConfigError]:
    errors = []
    if sandbox.seed_file is not None and not sandbox.seed_file.is_file():
        msg = f"no file at {str(sandbox.seed_file)!r}"
        hint = "paths are relative to the directory the service starts in"
        errors.append(ConfigError("crm.sandbox.seed_file", msg, hint))
    folder = next(
        (p for p in (sandbox.path.resolve(), *sandbox.path.resolve().parents) if p.exists()), None
    )
    if folder is None or not os.access(folder if folder.is_dir() else folder.parent, os.W_OK):
        msg = f"cannot create or write {str(sandbox.path)!r} (no write access to {folder})"
        errors.append(ConfigError("crm.sandbox.path", msg))
    return errors


def _check_metric_names(config: Config) -> list[ConfigError]:
    """Rules that name metrics must name ones that are counted, or they flag every account."""
    known = config.metrics.names()
    risk = config.risk
    named = {
        "risk.key_feature_not_adopted.key_features": risk.key_feature_not_adopted.key_features,
        "risk.key_feature_decline.key_features": risk.key_feature_decline.key_features,
        "risk.onboarding_stalled.milestones": risk.onboarding_stalled.milestones,
    }
    errors = []
    for path, names in named.items():
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                errors.append(
                    ConfigError(
                        path,
                        f"{name!r} is not a counted metric",
                        f"{hint}name it under metrics.counted first",
                    )
                )
    return errors


def _secret_refs(raw: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """(YAML path, environment variable, is a Standard Webhooks secret) for every secret named."""
    refs = []
    for name, field in Webhooks.model_fields.items():
        if isinstance(field.default, WebhookSource):
            default = field.default.secret_env
            refs.append(
                (
                    f"webhooks.{name}.secret_env",
                    _section(raw, "webhooks", name).get("secret_env", default),
                    True,
                )
            )
    refs += _channel_refs(raw)
    segment_secret = _section(raw, "webhooks", "segment").get("shared_secret_env")
    if segment_secret:
        refs.append(("webhooks.segment.shared_secret_env", segment_secret, False))
    if _section(raw, "crm").get("kind") == "hubspot":
        hubspot = _section(raw, "crm", "hubspot")
        if "oauth" in hubspot:
            for key, default in HubSpotOAuth().model_dump().items():
                refs.append(
                    (
                        f"crm.hubspot.oauth.{key}",
                        _section(hubspot, "oauth").get(key, default),
                        False,
                    )
                )
        else:
            token_env = hubspot.get("access_token_env", HubSpotCrm().access_token_env)
            refs.append(("crm.hubspot.access_token_env", token_env, False))
        if "webhook" in hubspot:
            secret_env = _section(hubspot, "webhook").get(
                "client_secret_env", HubSpotWebhook().client_secret_env
            )
            refs.append(("crm.hubspot.webhook.client_secret_env", secret_env, False))
    if _section(raw, "crm").get("kind") == "salesforce":
        auth = _section(raw, "crm", "salesforce", "auth")
        try:
            flow = SalesforceAuth.model_validate(auth)
        except ValidationError:
            return refs  # the schema error is reported already
        for key, env_name in flow.secret_envs().items():
            refs.append((f"crm.salesforce.auth.{key}", env_name, False))
        token_env = _section(raw, "crm", "salesforce", "outbound").get("token_env")
        if token_env:
            refs.append(("crm.salesforce.outbound.token_env", token_env, False))
    return refs


# What the playbooks' meaning depends on: checked even when another section has errors.
PLAYBOOK_SECTIONS = ("playbooks", "account_facts", "fields", "channels", "owners", "work")


def _playbook_sections(raw: Mapping[str, Any]) -> Config | None:
    """The config with only the sections playbooks read, if those are valid on their own."""
    try:
        return Config.model_validate({k: raw[k] for k in PLAYBOOK_SECTIONS if k in raw})
    except ValidationError:
        return None


def _check_playbook_names(raw: Mapping[str, Any], shipped: frozenset[str]) -> list[ConfigError]:
    """An entry for no shipped playbook must be a whole new one, or it is a misspelt name."""
    errors = []
    for name, entry in _section(raw, "playbooks").items():
        if name in shipped or (isinstance(entry, Mapping) and {"trigger", "steps"} <= set(entry)):
            continue
        close = difflib.get_close_matches(str(name), shipped, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        hint += "a new playbook needs title, trigger and steps; shipped: " + ", ".join(
            sorted(shipped)
        )
        errors.append(ConfigError(f"playbooks.{name}", f"unknown playbook {name!r}", hint))
    return errors


def _channel_refs(raw: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """The Slack token and the SMTP login, where those channels are configured."""
    refs = []
    for name, model in (("slack", SlackChannel), ("email", EmailChannel)):
        section = _section(raw, "channels", name)
        if not section:
            continue
        try:
            channel = model.model_validate(section)
        except ValidationError:
            continue  # the schema error is reported already
        for key, env_name in channel.secret_envs().items():
            refs.append((f"channels.{name}.{key}", env_name, False))
    return refs


def _resolve_secrets(
    raw: Mapping[str, Any], lookup_env: Callable[[str], str | None]
) -> tuple[dict[str, str], list[ConfigError]]:
    secrets, errors = {}, []
    for path, env_name, standard_webhooks in _secret_refs(raw):
        if not isinstance(env_name, str) or not env_name:
            if path == "crm.hubspot.access_token_env":
                msg = "needs a token: name its environment variable, or configure crm.hubspot.oauth"
                errors.append(ConfigError(path, msg))
            continue
        value = lookup_env(env_name)
        if not value:
            example = "whsec_<base64 secret shared with the sender>" if standard_webhooks else "..."
            msg = f"environment variable {env_name} is not set"
            errors.append(ConfigError(path, msg, f"export {env_name}={example}"))
        elif standard_webhooks and not _is_standard_webhooks_secret(value):
            msg = f"environment variable {env_name} is not a Standard Webhooks secret"
            hint = "expected 'whsec_' followed by base64, as Standard Webhooks libraries generate"
            errors.append(ConfigError(path, msg, hint))
        else:
            secrets[env_name] = value
    return secrets, errors


def _is_standard_webhooks_secret(value: str) -> bool:
    if not value.startswith(SECRET_PREFIX):
        return False
    try:
        return bool(base64.b64decode(value[len(SECRET_PREFIX) :] + "==", validate=False))
    except (binascii.Error, ValueError):
        return False
