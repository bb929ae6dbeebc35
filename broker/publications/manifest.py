"""Manifests: parse (YAML or JSON), validate against the JSON Schema, explain every error per field."""

from __future__ import annotations

import functools
import json
import logging
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from pydantic import BaseModel, ConfigDict, Field

from broker.errors import InvalidInput

logger = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")


@functools.lru_cache(maxsize=1)
def manifest_schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return data


@functools.lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(manifest_schema(), format_checker=FormatChecker())


class ManifestResource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str | None = None
    url: str | None = None
    title: str | None = None
    description: str | None = None
    format: str | None = None
    sync: Literal["never", "daily", "weekly", "monthly"] | None = None

    @property
    def name(self) -> str:
        if self.file:
            return self.file
        assert self.url is not None
        tail = self.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        return tail or "ressource"


class Temporal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    start: date | None = None
    end: date | None = None


class ContactInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str | None = None
    email: str | None = None


class RestrictedTo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    users: list[str] = Field(default_factory=list)
    organizations: list[str] = Field(default_factory=list)


class Manifest(BaseModel):
    """A validated manifest (the JSON Schema ran first; this only gives it types)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    organization: str
    title: str
    description: str
    license: str | None = None
    keywords: list[str] = Field(default_factory=list)
    frequency: str | None = None
    temporal: Temporal | None = None
    contact: ContactInfo | None = None
    access: Literal["open", "restricted"] = "open"
    restricted_to: RestrictedTo = Field(default_factory=RestrictedTo)
    services: list[str] = Field(default_factory=list)
    portals: list[str] = Field(default_factory=list)
    zones: list[str] = Field(default_factory=list)
    themes: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)
    inspire_theme: str | None = None
    resources: list[ManifestResource]


def _path(error: ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) or "manifest"


def _message(error: ValidationError) -> tuple[str, str]:
    """French message for one schema error, and the field it concerns."""
    path = _path(error)
    v = error.validator
    if v == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        field = f"{path}.{missing}" if path != "manifest" else missing
        return field, "champ obligatoire"
    if v == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        field = ".".join(p for p in (path if path != "manifest" else "", extra[0] if extra else "") if p)
        return field or path, "champ inconnu (vérifiez l'orthographe)"
    if v == "enum":
        allowed = ", ".join(str(x) for x in error.validator_value)
        return path, f"valeur « {error.instance} » non reconnue ; valeurs possibles : {allowed}"
    if v == "type":
        names = {
            "string": "texte",
            "array": "liste",
            "object": "objet",
            "integer": "entier",
            "number": "nombre",
            "boolean": "booléen",
        }
        return path, f"type attendu : {names.get(str(error.validator_value), error.validator_value)}"
    if v == "minLength":
        return path, f"au moins {error.validator_value} caractère(s)"
    if v == "maxLength":
        return path, f"au plus {error.validator_value} caractères"
    if v == "minItems":
        return path, f"au moins {error.validator_value} élément(s)"
    if v == "uniqueItems":
        return path, "les valeurs doivent être uniques"
    if v == "format":
        return path, f"format attendu : {error.validator_value} (ex. 2024-01-31 pour une date)"
    if v == "pattern":
        return path, f"valeur « {error.instance} » mal formée"
    if v == "oneOf":
        return path, "chaque ressource a soit « file », soit « url » (pas les deux)"
    return path, error.message


def parse_manifest_text(text: str | bytes) -> dict[str, Any]:
    """Parse a YAML or JSON manifest (JSON is YAML); errors name the line."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (ligne {mark.line + 1}, colonne {mark.column + 1})" if mark else ""
        raise InvalidInput(
            f"Le manifeste n'est ni du YAML ni du JSON valide{where}.", fields={"manifest": [str(exc)]}
        ) from exc
    if not isinstance(data, dict):
        raise InvalidInput(
            "Le manifeste doit être un objet (clé: valeur).", fields={"manifest": ["objet attendu"]}
        )
    return _jsonable(data)


def _jsonable(value: Any) -> Any:
    """YAML gives dates as ``date`` objects; the schema and storage want ISO strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def validate_manifest(data: dict[str, Any]) -> Manifest:
    """Validate ``data``; raise :class:`InvalidInput` listing every bad field with its path."""
    data = _jsonable(data)
    fields: dict[str, list[str]] = {}
    for error in sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path)):
        field, message = _message(error)
        fields.setdefault(field, []).append(message)
    if not fields:
        _cross_checks(data, fields)
    if fields:
        count = sum(len(v) for v in fields.values())
        raise InvalidInput(
            f"Le manifeste contient {count} erreur(s) ; chaque champ concerné est listé.", fields=fields
        )
    return Manifest.model_validate(data)


def _cross_checks(data: dict[str, Any], fields: dict[str, list[str]]) -> None:
    temporal = data.get("temporal") or {}
    if temporal.get("start") and temporal.get("end") and temporal["end"] < temporal["start"]:
        fields.setdefault("temporal.end", []).append("la fin précède le début")
    if data.get("access") == "restricted":
        restricted = data.get("restricted_to") or {}
        if not (restricted.get("users") or restricted.get("organizations")):
            fields.setdefault("restricted_to", []).append(
                "un accès restreint doit nommer au moins un utilisateur ou une organisation"
            )
    names: dict[str, int] = {}
    for index, resource in enumerate(data.get("resources", [])):
        name = resource.get("file")
        if name is None:
            continue
        if "/" in name or "\\" in name or name in {".", ".."}:
            fields.setdefault(f"resources.{index}.file", []).append(
                "un nom de fichier seul est attendu, sans chemin"
            )
        if name in names:
            fields.setdefault(f"resources.{index}.file", []).append(
                f"fichier déjà cité par la ressource {names[name]}"
            )
        names[name] = index
