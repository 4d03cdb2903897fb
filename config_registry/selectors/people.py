"""Users' overlays (their groups' layers by priority, then their own layer) at one revision, read in
one batch for any number of users; and the overlays a process read last, carried to a later
revision for every user whose overlay did not change meanwhile (SPEC §7: after a publish, one
batched read of the overlays that changed)."""

import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Q

from ..memory import forgotten_by_memos_clear
from ..models import Layer, LayerVersion, Level, MembershipRecord, PriorityRecord
from ..resolver import LayerSnapshot
from ..state import Position
from .snapshots import snapshots_at

Accounts = Mapping[int, tuple[str, bool]]  # {user id: (username, is_active)}


@dataclass(frozen=True)
class Person:
    """What resolution knows of a user: whether the account is active, and their overlay (their
    groups' layers by priority, then their own layer) at one revision."""

    active: bool
    overlays: list[LayerSnapshot]


@dataclass(frozen=True)
class Overlay:
    """A user's overlay at one revision, with what it was read from: their username and groups
    ((id, name): with a layer or not, as of that revision)."""

    username: str
    groups: frozenset[tuple[int, str]]
    layers: list[LayerSnapshot]


def accounts_of(usernames: Collection[str]) -> Accounts:
    rows = get_user_model().objects.filter(username__in=list(usernames)).values_list("pk", "username", "is_active")
    return {pk: (username, active) for pk, username, active in rows}


def overlays_read(accounts: Accounts, revision: int) -> dict[int, Overlay]:
    """The overlays of these accounts at `revision`, in five queries whatever their number
    (memberships and group priorities as at `revision`, layers, versions, entries)."""
    if not accounts:
        return {}
    memberships: dict[int, set[tuple[int, str]]] = {}
    held = MembershipRecord.objects.at(revision).filter(user_id__in=list(accounts))
    for user_id, group_id, group in held.values_list("user_id", "group_id", "group__name"):
        memberships.setdefault(user_id, set()).add((group_id, group))
    groups = {name for pairs in memberships.values() for _, name in pairs}
    names = [username for username, _ in accounts.values()]
    layers = list(
        Layer.objects.filter(Q(level=Level.GROUP, name__in=groups) | Q(level=Level.USER, name__in=names)).only(
            "level", "name", "priority"
        )
    )
    priorities = dict(
        PriorityRecord.objects.at(revision)
        .filter(layer_id__in=[layer.pk for layer in layers if layer.level == Level.GROUP])
        .values_list("layer_id", "priority")
    )
    snapshots = dict(zip([(layer.level, layer.name) for layer in layers], snapshots_at(layers, revision), strict=True))
    group_rank = {  # lowest first, by priority as at `revision`
        layer.name: (priorities.get(layer.pk, layer.priority), layer.name)
        for layer in layers
        if layer.level == Level.GROUP
    }
    overlays = {}
    for user_id, (username, _) in accounts.items():
        pairs = frozenset(memberships.get(user_id, ()))
        groups_in = sorted((name for _, name in pairs if name in group_rank), key=group_rank.get)
        own = snapshots.get((Level.USER, username))
        layers_in = [snapshots[(Level.GROUP, name)] for name in groups_in] + ([own] if own else [])
        overlays[user_id] = Overlay(username, pairs, layers_in)
    return overlays


def people_overlays(usernames: Collection[str], revision: int) -> dict[str, Person]:
    """The overlays of many users at `revision`, in six queries whatever their number; users that
    do not exist are absent."""
    accounts = accounts_of(usernames)
    overlays = overlays_read(accounts, revision)
    return {username: Person(active, overlays[pk].layers) for pk, (username, active) in accounts.items()}


def _unchanged(overlays: dict[int, Overlay], since: int, now: int) -> dict[int, Overlay]:
    """Those of `overlays` (read at revision `since`) that are still true at `now`: no version of
    their layers, no change of their memberships or their groups' priorities or names in between."""
    if since == now or not overlays:
        return dict(overlays)
    changed_layers = set(
        LayerVersion.objects.filter(
            revision__gt=since, revision__lte=now, layer__level__in=[Level.GROUP, Level.USER]
        ).values_list("layer__level", "layer__name")
    )
    moved = set(
        MembershipRecord.objects.filter(
            Q(valid_from__gt=since, valid_from__lte=now) | Q(valid_to__gt=since, valid_to__lte=now)
        ).values_list("user_id", flat=True)
    )
    reprioritized = set(
        PriorityRecord.objects.filter(
            Q(valid_from__gt=since, valid_from__lte=now) | Q(valid_to__gt=since, valid_to__lte=now)
        ).values_list("layer__name", flat=True)
    )
    group_ids = {group_id for overlay in overlays.values() for group_id, _ in overlay.groups}
    names = dict(Group.objects.filter(pk__in=group_ids).values_list("pk", "name"))

    def still(user_id: int, overlay: Overlay) -> bool:
        return (
            user_id not in moved
            and (Level.USER, overlay.username) not in changed_layers
            and not any(
                names.get(group_id) != name or (Level.GROUP, name) in changed_layers or name in reprioritized
                for group_id, name in overlay.groups
            )
        )

    return {user_id: overlay for user_id, overlay in overlays.items() if still(user_id, overlay)}


def _username(overlay: Overlay | None) -> str | None:
    return overlay.username if overlay else None


class CarriedOverlays:
    """The overlays this process read last (at most `max_people`, least recently asked for out
    first), at one revision. Thread-safe: each state is read whole and replaced whole."""

    def __init__(self, max_people: int = 50_000):
        self.max_people = max_people
        self._lock = threading.Lock()
        self._state: tuple[tuple | None, int, dict[int, Overlay]] = (None, 0, {})

    def people(self, usernames: Collection[str], position: Position) -> dict[str, Person]:
        """people_overlays() at `position` (inside consistent_read(), read inside it): only the
        overlays that changed since the last call are read."""
        accounts = accounts_of(usernames)
        epoch, since, known = self._state
        if epoch == position.epoch and since <= position.revision:
            known = _unchanged(known, since, position.revision)
        else:
            known = {}
        missing = {
            pk: account for pk, account in accounts.items() if getattr(known.get(pk), "username", None) != account[0]
        }
        known.update(overlays_read(missing, position.revision))
        for pk in accounts:  # the most recently asked for last
            known[pk] = known.pop(pk)
        people = {username: Person(active, known[pk].layers) for pk, (username, active) in accounts.items()}
        self._keep(position, known)
        return people

    def _keep(self, position: Position, known: dict[int, Overlay]) -> None:
        with self._lock:
            epoch, since, current = self._state
            if epoch == position.epoch and since > position.revision:
                return  # another thread has read a later revision
            if epoch == position.epoch and since == position.revision:
                known = {**current, **known}
            while len(known) > self.max_people:
                del known[next(iter(known))]
            self._state = (position.epoch, position.revision, known)

    def __len__(self) -> int:
        return len(self._state[2])

    def clear(self) -> None:
        with self._lock:
            self._state = (None, 0, {})


CARRIED = forgotten_by_memos_clear(CarriedOverlays())
