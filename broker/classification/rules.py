"""Load ``categories.yaml``, validate it (JSON Schema, then cross-references) and compile its rules."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from broker.classification.schemas import PublicationFacts

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
SHIPPED_RULES_PATH = HERE / "categories.yaml"
SCHEMA_PATH = HERE / "categories.schema.json"

NATIONAL_PLATFORMS = ("datagouv", "geoplateforme")
TARGETS = ("datagouv", "geoplateforme", "regional")
CATEGORY_RANK = {"A": 0, "B": 1, "C": 2}


class RulesError(ValueError):
    """``categories.yaml`` is unreadable or invalid; ``errors`` lists every problem with its path."""

    def __init__(self, errors: list[str], source: Path | None = None) -> None:
        self.errors = errors
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{len(errors)} problem(s) in the categories file:\n- " + "\n- ".join(errors))


# --- Typed view of the file ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Platform:
    id: str
    title: str
    sentence_name: str  # how a French sentence names it: "la Géoplateforme"
    url: str
    national: bool


@dataclass(frozen=True, slots=True)
class PlatformEntry:
    """One cell of the matrix: what one national platform does for one need, and why we think so."""

    platform: str
    category: str  # A | B | C
    source: str
    note: str | None = None
    upstream: str | None = None
    target_date: str | None = None  # ISO date, category B only
    target_date_set_by: str | None = None
    interim: str | None = None  # regional | hold | degrade, category B only
    mirror: bool = False


@dataclass(frozen=True, slots=True)
class Need:
    id: str
    title: str
    group: str
    description: str
    regional: bool  # the regional store can answer it
    platforms: Mapping[str, PlatformEntry]  # national platform id -> entry, in the platforms' order
    note: str | None = None


@dataclass(frozen=True, slots=True)
class FactsView:
    """The facts as sets, built once per classification so each compiled condition is a set test."""

    access: str
    channel: str
    services: frozenset[str]
    has_portals: bool
    has_resources: bool
    formats: frozenset[str]
    kinds: frozenset[str]
    syncs: frozenset[str]
    any_remote: bool
    themes: frozenset[str]
    keywords: frozenset[str]
    features: frozenset[str]
    harvested_from: str | None


Predicate = Callable[[FactsView], bool]


@dataclass(frozen=True, slots=True)
class DerivationRule:
    id: str
    description: str
    when: Mapping[str, Any]  # the condition as written in the file
    needs: tuple[str, ...]
    matches: Predicate = field(compare=False, repr=False)


@dataclass(frozen=True, eq=False)
class Rules:
    """The loaded catalogue: platforms, needs (in file order), compiled rules and the file's digest."""

    version: int
    digest: str  # sha256 hex of the canonical JSON of the loaded data
    platforms: Mapping[str, Platform]
    groups: Mapping[str, str]
    needs: Mapping[str, Need]
    rules: tuple[DerivationRule, ...]
    need_index: Mapping[str, int]  # need id -> position in the file, for a stable output order
    raw: Mapping[str, Any] = field(repr=False)
    source: Path | None = None

    def public_view(self) -> dict[str, Any]:
        """The catalogue as plain JSON (what the file says), for ``GET /api/v1/categories``."""
        view: dict[str, Any] = json.loads(json.dumps(dict(self.raw), ensure_ascii=False))
        view["version"] = self.version
        # JSON objects lose order in some clients: give the needs' order explicitly.
        view["need_order"] = list(self.needs)
        return view


# --- Paths --------------------------------------------------------------------------------------


def default_rules_path() -> Path:
    """``./categories.yaml`` when it exists, else the copy shipped in the package."""
    local = Path.cwd() / "categories.yaml"
    return local if local.is_file() else SHIPPED_RULES_PATH


# --- Loading ------------------------------------------------------------------------------------


def load_rules(path: Path | None = None) -> Rules:
    """Read, validate and compile a categories file; raise :class:`RulesError` listing every problem."""
    source = path if path is not None else default_rules_path()
    data = _read(source)
    errors = validate_data(data)
    if errors:
        raise RulesError(errors, source)
    rules = rules_from_data(data, source)
    for need_id in sorted(set(rules.needs) - {n for r in rules.rules for n in r.needs}):
        logger.warning("categories: no rule derives need %r (%s)", need_id, source)
    return rules


def check_file(path: Path | None = None) -> list[str]:
    """Every problem of a categories file, each with its path; an empty list means the file is valid."""
    source = path if path is not None else default_rules_path()
    try:
        data = _read(source)
    except RulesError as exc:
        return exc.errors
    return validate_data(data)


def _read(source: Path) -> Any:
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError([f"{source}: file not found"], source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([f"{source}: unreadable ({exc})"], source) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RulesError([f"(yaml): {exc}".replace("\n", " ")], source) from None


try:  # libyaml parses the catalogue ten times faster than the pure-Python parser
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _StrictLoader(_SafeLoader):
    """Safe loader that refuses duplicate keys and keeps dates as strings, as JSON would see them."""


# A duplicate need id would silently replace the first one: refuse it instead.
def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in result
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "unhashable key", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)
# Unquoted 2027-06-30 would become a datetime.date; the schema checks ISO strings.
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


# --- Validation ---------------------------------------------------------------------------------


@functools.cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def validate_data(data: Any) -> list[str]:
    """Schema errors, then cross-reference errors; each message starts with the path it concerns."""
    # One jsonschema error per missing key repeats the whole list: the set removes the repeats.
    errors = sorted({message for e in _validator().iter_errors(data) for message in _describe(e)})
    if isinstance(data, dict):
        errors.extend(_cross_reference_errors(data))
    return errors


def _dotted(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts) or "(root)"


def _describe(error: ValidationError) -> list[str]:
    where = _dotted(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [name for name in error.validator_value if name not in instance]
        suffix = ""
        if "then" in error.schema_path and "category" in instance:
            suffix = f" for category {instance['category']}"
        return [f"{_dotted([*error.absolute_path, name])}: required{suffix}" for name in missing]
    if error.validator == "not" and "propertyNames" in error.schema_path and "else" in error.schema_path:
        # The "else" branch of a platform entry refuses the keys that only a category-B entry has.
        return [f"{_dotted([*error.absolute_path, instance])}: only allowed for category B"]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = set(error.schema.get("properties", {}))
        extra = ", ".join(sorted(str(k) for k in instance if k not in known))
        return [f"{where}: unknown key(s): {extra}"]
    if error.validator == "maxProperties" and error.schema.get("maxProperties") == 1:
        return [f"{where}: a condition has exactly one key (combine tests with all/any)"]
    if error.validator == "format":
        return [f"{where}: {instance!r} is not a valid {error.validator_value}"]
    return [f"{where}: {error.message}"]


def _cross_reference_errors(data: Mapping[str, Any]) -> list[str]:
    """What JSON Schema cannot say: rule needs exist, unique rule ids, someone answers every need."""
    errors: list[str] = []
    needs = data.get("needs") if isinstance(data.get("needs"), dict) else {}
    assert isinstance(needs, dict)
    for need_id, need in needs.items():
        if not isinstance(need, dict) or not isinstance(need.get("platforms"), dict):
            continue
        entries = {p: e for p, e in need["platforms"].items() if isinstance(e, dict)}
        categories = {e.get("category") for e in entries.values()}
        regional = need.get("regional")
        known = categories <= set(CATEGORY_RANK)  # else the schema already complained
        if known and not categories & {"A", "B"} and regional is not True:
            errors.append(
                f"needs.{need_id}.regional: must be true, no national platform answers this need "
                "(category C is served regionally)"
            )
        for platform, entry in entries.items():
            where = f"needs.{need_id}.platforms.{platform}"
            if entry.get("category") != "B":
                continue
            if entry.get("interim") == "regional" and regional is not True:
                errors.append(f"{where}.interim: 'regional' needs the regional store (regional: true)")
            if entry.get("mirror") is True and entry.get("interim") != "regional":
                errors.append(f"{where}.mirror: only meaningful with interim: regional")
    rules = data.get("rules") if isinstance(data.get("rules"), list) else []
    assert isinstance(rules, list)
    first_seen: dict[str, int] = {}
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        rule_id = rule.get("id")
        if isinstance(rule_id, str):
            if rule_id in first_seen:
                errors.append(
                    f"rules.{index}.id: duplicate rule id {rule_id!r} (first at rules.{first_seen[rule_id]})"
                )
            else:
                first_seen[rule_id] = index
        for position, need_id in enumerate(rule.get("needs") or []):
            if isinstance(need_id, str) and need_id not in needs:
                errors.append(f"rules.{index}.needs.{position}: unknown need {need_id!r} (rule {rule_id})")
    return errors


# --- Building and compiling ---------------------------------------------------------------------


def _canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def rules_from_data(data: Mapping[str, Any], source: Path | None = None) -> Rules:
    """Build :class:`Rules` from data that :func:`validate_data` accepted."""
    digest = hashlib.sha256(_canonical_json(data).encode("utf-8")).hexdigest()
    platforms = {
        pid: Platform(pid, p["title"], p["sentence_name"], p["url"], p["national"])
        for pid, p in data["platforms"].items()
    }
    order = [pid for pid in platforms if pid in NATIONAL_PLATFORMS]
    needs: dict[str, Need] = {}
    for need_id, n in data["needs"].items():
        entries = {pid: _entry(pid, n["platforms"][pid]) for pid in order}
        needs[need_id] = Need(
            id=need_id,
            title=n["title"],
            group=n["group"],
            description=n["description"],
            regional=n["regional"],
            platforms=MappingProxyType(entries),
            note=n.get("note"),
        )
    rules = tuple(
        DerivationRule(r["id"], r["description"], r["when"], tuple(r["needs"]), compile_condition(r["when"]))
        for r in data["rules"]
    )
    return Rules(
        version=data["version"],
        digest=digest,
        platforms=MappingProxyType(platforms),
        groups=MappingProxyType(dict(data["groups"])),
        needs=MappingProxyType(needs),
        rules=rules,
        need_index=MappingProxyType({need_id: i for i, need_id in enumerate(needs)}),
        raw=MappingProxyType(json.loads(json.dumps(data, ensure_ascii=False))),
        source=source,
    )


def _entry(platform: str, e: Mapping[str, Any]) -> PlatformEntry:
    return PlatformEntry(
        platform=platform,
        category=e["category"],
        source=e["source"],
        note=e.get("note"),
        upstream=e.get("upstream"),
        target_date=e.get("target_date"),
        target_date_set_by=e.get("target_date_set_by"),
        interim=e.get("interim"),
        mirror=bool(e.get("mirror", False)),
    )


_SEPARATORS = re.compile(r"[^0-9a-z]+")


@functools.lru_cache(maxsize=4096)
def normalize_word(word: str) -> str:
    """Lower case, no accents, separators folded to one space: "Carte-Communale" == "carte communale"."""
    folded = unicodedata.normalize("NFKD", word.casefold())
    bare = "".join(c for c in folded if not unicodedata.combining(c))
    return _SEPARATORS.sub(" ", bare).strip()


def view_facts(facts: PublicationFacts) -> FactsView:
    """Turn the facts into the sets the compiled conditions test."""
    resources = facts.resources
    return FactsView(
        access=facts.access,
        channel=facts.channel,
        services=frozenset(facts.services),
        has_portals=bool(facts.portals),
        has_resources=bool(resources),
        formats=frozenset(r.format.lower() for r in resources if r.format),
        kinds=frozenset(r.kind for r in resources if r.kind),
        syncs=frozenset(r.sync for r in resources if r.sync),
        any_remote=any(r.remote for r in resources),
        themes=frozenset(normalize_word(t) for t in facts.themes),
        keywords=frozenset(normalize_word(k) for k in facts.keywords),
        features=frozenset(normalize_word(f) for f in facts.features),
        harvested_from=facts.harvested_from,
    )


def compile_condition(condition: Mapping[str, Any]) -> Predicate:
    """Turn one condition of the file into a predicate over :class:`FactsView` (done once, at load)."""
    ((key, value),) = condition.items()
    if key == "always":
        return _always
    if key == "access":
        return lambda v: v.access == value
    if key == "channel_in":
        channels = frozenset(value)
        return lambda v: v.channel in channels
    if key == "harvested_from_in":
        sources = frozenset(value)
        return lambda v: v.harvested_from in sources
    if key == "portals":
        wanted = value == "nonempty"
        return lambda v: v.has_portals is wanted
    if key == "resources":
        wanted = value == "nonempty"
        return lambda v: v.has_resources is wanted
    if key == "resource_remote":
        remote = bool(value)
        return lambda v: v.any_remote is remote
    if key in _SET_FIELDS:
        return _intersects(_SET_FIELDS[key], frozenset(_normalizer(key)(x) for x in value))
    if key == "all":
        return _all(tuple(compile_condition(c) for c in value))
    if key == "any":
        return _any(tuple(compile_condition(c) for c in value))
    if key == "not":
        inner = compile_condition(value)
        return lambda v: not inner(v)
    raise ValueError(f"unknown condition {key!r}")  # the schema refuses it before we get here


# condition key -> the FactsView set it tests
_SET_FIELDS: dict[str, str] = {
    "service_in": "services",
    "resource_format_in": "formats",
    "resource_kind_in": "kinds",
    "resource_sync_in": "syncs",
    "theme_in": "themes",
    "keyword_in": "keywords",
    "feature_in": "features",
}


def _normalizer(key: str) -> Callable[[str], str]:
    if key in ("theme_in", "keyword_in", "feature_in"):
        return normalize_word
    return str.lower


def _always(view: FactsView) -> bool:
    return True


def _intersects(attribute: str, wanted: frozenset[str]) -> Predicate:
    read = operator.attrgetter(attribute)

    def test(view: FactsView) -> bool:
        return not wanted.isdisjoint(read(view))

    return test


# Plain loops rather than all()/any() over a generator: no generator object per call, and these
# run for every rule of every classification.
def _all(predicates: tuple[Predicate, ...]) -> Predicate:
    def test(view: FactsView) -> bool:
        for predicate in predicates:  # noqa: SIM110
            if not predicate(view):
                return False
        return True

    return test


def _any(predicates: tuple[Predicate, ...]) -> Predicate:
    def test(view: FactsView) -> bool:
        for predicate in predicates:  # noqa: SIM110
            if predicate(view):
                return True
        return False

    return test
