"""Real concurrency on PostgreSQL: threads with their own connections race to publish and read."""

import threading
from collections.abc import Callable

import pytest
from django.db import connections

from config_registry.audit import Actor, audit_verify
from config_registry.exceptions import VersionConflict
from config_registry.models import AuditEvent, LayerVersion
from config_registry.selectors import config_resolve, version_states
from config_registry.services import layer_create, version_publish

pytestmark = pytest.mark.django_db(transaction=True)


def _race(count: int, work: Callable[[int], object]) -> list[object]:
    """Run work(0..count-1) in threads released together; return each result or exception."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except Exception as error:  # collected and asserted on by the test
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a publishing thread hung"
    return results


def test_version_publish__20_threads_same_base__one_wins_per_base_versions_contiguous(postgres_only):
    actor = Actor("admin:race", "test")
    layer = layer_create(ref="global", actor=actor)
    version_publish(layer=layer, base_version=0, set_={"counter": -1}, actor=actor)
    winners = []
    for base in (1, 2, 3):
        results = _race(
            20,
            lambda i, base=base: version_publish(
                layer=layer, base_version=base, set_={"counter": i, f"round{base}.winner": i}, actor=Actor(f"w{i}")
            ),
        )
        won = [r for r in results if isinstance(r, LayerVersion)]
        lost = [r for r in results if isinstance(r, VersionConflict)]
        assert (len(won), len(lost)) == (1, 19), results
        assert all(conflict.current == base + 1 for conflict in lost)
        winners.append(results.index(won[0]))

    versions = list(LayerVersion.objects.filter(layer=layer).order_by("number"))
    assert [v.number for v in versions] == [1, 2, 3, 4]
    revisions = [v.revision for v in versions]
    assert revisions == sorted(set(revisions))
    for number, winner in zip((2, 3, 4), winners, strict=True):
        values = {k: s.value for k, s in version_states(layer, number).items()}
        assert values["counter"] == winner and versions[number - 1].author == f"w{winner}"
        # The base's keys plus this round's: nothing lost, nothing from a losing writer.
        assert values == {"counter": winner, **{f"round{r}.winner": winners[r - 1] for r in range(1, number)}}
    assert AuditEvent.objects.filter(action="version.publish").count() == 4
    assert audit_verify() == (AuditEvent.objects.count(), None)


def test_version_publish__20_threads_20_layers__all_win_with_distinct_revisions(postgres_only):
    actor = Actor("admin:race", "test")
    layers = [layer_create(ref=f"service:s{i}", actor=actor) for i in range(20)]
    results = _race(20, lambda i: version_publish(layer=layers[i], base_version=0, set_={"i": i}, actor=actor))
    assert all(isinstance(r, LayerVersion) for r in results), results
    revisions = sorted(r.revision for r in results)
    assert revisions == list(range(revisions[0], revisions[0] + 20))
    verified, broken = audit_verify()
    assert broken is None and verified == 40


def test_config_resolve__while_publishing__every_answer_matches_its_revision(postgres_only):
    """Each resolution is one snapshot: the values it returns are exactly those at its revision."""
    actor = Actor("admin:race", "test")
    low = layer_create(ref="global", actor=actor)
    high = layer_create(ref="service:chat", actor=actor)
    version_publish(layer=low, base_version=0, set_={"step": 0, "low": 0}, actor=actor)
    rounds = 25
    writer_done = threading.Event()

    def work(index: int):
        if index == 0:  # the writer: alternately moves the low and the high layer
            bases = {low.pk: 1, high.pk: 0}
            try:
                for step in range(1, rounds + 1):
                    layer = low if step % 2 else high
                    version_publish(
                        layer=layer,
                        base_version=bases[layer.pk],
                        actor=actor,
                        set_={"step": step, "low" if layer is low else "high": step},
                    )
                    bases[layer.pk] += 1
            finally:
                writer_done.set()
            return None
        answers = []
        while not writer_done.is_set() and len(answers) < 10_000:
            answers.append(config_resolve(environment="dev", service="chat", user=None))
        return answers

    results = _race(3, work)
    assert results[0] is None, results[0]
    seen = [answer for reader in results[1:] for answer in reader]
    for answer in seen:
        latest_step = LayerVersion.objects.filter(revision__lte=answer.revision).count() - 1
        low_step = max((s for s in range(latest_step + 1) if s % 2), default=0)
        high_step = max((s for s in range(2, latest_step + 1) if s % 2 == 0), default=None)
        expected = {"low": low_step, "step": low_step if high_step is None else high_step}
        if high_step is not None:
            expected["high"] = high_step
        assert answer.values == expected, (answer.revision, answer.values)
