"""The rules in force: ``categories.yaml`` (loaded and validated once per process) with the gap register
laid over it (``broker.classification.overlay``), and the decision they give for a revision's facts."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from broker.classification.overlay import GapState, classify_with_overlay, overlay_rules
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
    """What ``categories.yaml`` says, without the gap register (the file's digest)."""
    return _rules(str(rules_path()))


def register_states() -> tuple[GapState, ...]:
    """The gap register as it is committed now, read through a session of its own.

    ``decide`` is called from inside other units of work (intake, derived revisions) that do not hand it
    their session; the register is a few dozen rows, so reading it each time is cheaper than any cache
    that another process could make stale (a gap marked delivered must move the very next decision).
    """
    from sqlmodel import Session

    from broker.db import get_engine
    from broker.gaps import repository as gaps_repository

    try:
        with Session(get_engine()) as session:
            return gaps_repository.states(session)
    except SQLAlchemyError:
        # A database without the gap table (migrations not applied yet): the file alone decides.
        logger.warning("gap register unreadable; classifying with categories.yaml alone", exc_info=True)
        return ()


def rules_in_force(gaps: Sequence[GapState] | None = None) -> Rules:
    """``categories.yaml`` with the register over it; ``gaps`` None reads the committed register."""
    return overlay_rules(current_rules(), register_states() if gaps is None else gaps)


def decide(facts: PublicationFacts, gaps: Sequence[GapState] | None = None) -> ClassificationResult:
    """Classify with the rules in force (``gaps``: a register to assume instead of the committed one)."""
    return classify_with_overlay(facts, rules_in_force(gaps))
