"""The rules in force: loaded and validated once per process, from settings or the shipped copy."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from broker.classification.engine import classify
from broker.classification.rules import Rules, default_rules_path, load_rules
from broker.classification.schemas import ClassificationResult, PublicationFacts
from broker.config import get_settings

logger = logging.getLogger(__name__)


def rules_path() -> Path:
    return get_settings().categories or default_rules_path()


@functools.lru_cache(maxsize=4)
def _rules(path: str) -> Rules:
    rules = load_rules(Path(path))
    logger.info("categories loaded from %s (digest %s)", path, rules.digest[:12])
    return rules


def current_rules() -> Rules:
    return _rules(str(rules_path()))


def decide(facts: PublicationFacts) -> ClassificationResult:
    return classify(facts, current_rules())
