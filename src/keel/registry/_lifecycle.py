"""Lifecycle states of a model version and the semantic-version rule."""

from __future__ import annotations

from keel._packaging import Signature

CANDIDATE, APPROVED, ARCHIVED = "candidate", "approved", "archived"
STATUSES = (CANDIDATE, APPROVED, ARCHIVED)

# candidate → approved → archived is the normal path; an approved version can be sent back to
# candidate for another review, and an archived one restored to candidate (never straight back
# to approved: it has to be approved again).
TRANSITIONS: dict[str, frozenset[str]] = {
    CANDIDATE: frozenset({APPROVED, ARCHIVED}),
    APPROVED: frozenset({ARCHIVED, CANDIDATE}),
    ARCHIVED: frozenset({CANDIDATE}),
}


def next_semver(
    previous: tuple[str, Signature, str] | None, signature: Signature, digest: str
) -> tuple[str, str]:
    """The semantic version of a new version, given ``(semver, signature, digest)`` of the one
    before it, and why: major when the signature changed incompatibly, minor when the model was
    retrained (other bytes) with a compatible signature, patch when only metadata changed."""
    if previous is None:
        return "1.0.0", "first version"
    semver, old_signature, old_digest = previous
    major, minor, patch = (int(part) for part in semver.split("."))
    breaking = old_signature.breaking_changes(signature)
    if breaking:
        return f"{major + 1}.0.0", "incompatible signature: " + "; ".join(breaking)
    if digest != old_digest:
        return f"{major}.{minor + 1}.0", "retrained with a compatible signature"
    return f"{major}.{minor}.{patch + 1}", "same model artifact, metadata changed"
