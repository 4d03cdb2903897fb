"""Several run_scheduler processes at once on PostgreSQL (SPEC §11): each due request applied once,
and none waits for a request another scheduler is applying (row locks with SKIP LOCKED)."""

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from config_registry import changes
from config_registry.audit import Actor
from config_registry.models import AuditEvent, ChangeRequest, LayerVersion
from config_registry.services import layer_create, version_publish

pytestmark = pytest.mark.django_db(transaction=True)

ALICE, BOB = Actor("admin:alice"), Actor("admin:bob")


def _due_requests(count: int) -> list[ChangeRequest]:
    """`count` gated layers, each with an approved request whose time has just come."""
    made = []
    for index in range(count):
        layer = layer_create(ref=f"service:svc{index}", actor=ALICE)
        version_publish(layer=layer, base_version=0, set_={"n": 0}, actor=ALICE)
        layer.required_approvals = 1
        layer.save(update_fields=["required_approvals"])
        later = timezone.now() + timedelta(days=1)
        change = changes.version_submit(
            layer=layer, base_version=1, set_={"n": index + 1}, publish_at=later, actor=ALICE
        )
        changes.change_approve(change=change.change, actor=BOB)
        made.append(change.change)
    ChangeRequest.objects.update(publish_at=timezone.now() - timedelta(seconds=1))
    return made


def _in_thread(work, results: dict, name: str) -> threading.Thread:
    def run():
        try:
            results[name] = work()
        except Exception as error:  # asserted on by the test
            results[name] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def test_schedulers__one_holds_a_request__the_other_skips_it_and_applies_the_rest(postgres_only):
    made = _due_requests(5)
    holding, release, results = threading.Event(), threading.Event(), {}

    def hold_first(change):
        if not holding.is_set():
            holding.set()
            assert release.wait(timeout=30), "the test never released the first scheduler"

    first = _in_thread(lambda: changes.changes_apply_due(on_locked=hold_first), results, "first")
    assert holding.wait(timeout=30)
    second = _in_thread(lambda: changes.changes_apply_due(), results, "second")
    second.join(timeout=30)
    assert not second.is_alive(), "the second scheduler waited for the row the first one holds"
    release.set()
    first.join(timeout=30)
    assert not first.is_alive()
    first_applied = [change.pk for change in results["first"]]
    second_applied = [change.pk for change in results["second"]]
    assert first_applied == [made[0].pk] and sorted(second_applied) == [change.pk for change in made[1:]]
    for change in made:
        assert LayerVersion.objects.filter(change_request=change.pk).count() == 1
    assert AuditEvent.objects.filter(action="change.apply").count() == 5


def test_schedulers__four_racing_over_twenty_due_requests__each_applied_once(postgres_only):
    made = _due_requests(20)
    barrier, results = threading.Barrier(4), {}

    def scheduler():
        barrier.wait(timeout=30)
        return changes.changes_apply_due()

    threads = [_in_thread(scheduler, results, f"s{i}") for i in range(4)]
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    applied = [change.pk for name in results for change in results[name]]
    assert sorted(applied) == sorted(change.pk for change in made)  # every one, none twice
    assert LayerVersion.objects.filter(change_request__isnull=False).count() == 20
    assert set(ChangeRequest.objects.values_list("state", flat=True)) == {"applied"}
