"""A worker killed in the middle of a publish leaves the layer at the old version or the new one,
never in between, and nothing locked behind it."""

import os
import signal
import subprocess
import sys

import pytest
from django.conf import settings

from config_registry.audit import audit_verify
from config_registry.models import AuditEvent, Entry, LayerVersion
from config_registry.selectors import version_states
from config_registry.services import version_publish

pytestmark = pytest.mark.django_db(transaction=True)

DOOMED_PUBLISH = """
import sys
import django
django.setup()
from config_registry import services
from config_registry.audit import Actor
from config_registry.models import Layer

write_event = services.audit_record

def pause_inside_the_transaction(**kwargs):
    event = write_event(**kwargs)
    print("inside", flush=True)  # the version and its entries are written, nothing is committed
    sys.stdin.readline()          # and here the process is killed
    return event

services.audit_record = pause_inside_the_transaction
layer = Layer.objects.get(level="global")
services.version_publish(layer=layer, base_version=1, set_={"a": 2, "b": [1, 2]}, unset=["c"], actor=Actor("doomed"))
"""


def test_publish__worker_killed_mid_transaction__old_version_intact_and_layer_usable(make_layer, actor):
    from tests.conftest import _database_url

    layer = make_layer("global", {"a": 1, "c": "keep"})
    before = (LayerVersion.objects.count(), Entry.objects.count(), AuditEvent.objects.count())
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DATABASE_URL": _database_url(),
        "CONFIG_REGISTRY_KEYS": ",".join(settings.CONFIG_REGISTRY_KEYS),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_SETTINGS_MODULE": "project.settings",
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", DOOMED_PUBLISH],
        cwd=settings.BASE_DIR,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout.readline().strip() == "inside"
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    worker.stdout.close()
    worker.stdin.close()

    layer.refresh_from_db()
    assert layer.current_version == 1
    assert (LayerVersion.objects.count(), Entry.objects.count(), AuditEvent.objects.count()) == before
    assert {k: s.value for k, s in version_states(layer, 1).items()} == {"a": 1, "c": "keep"}
    assert audit_verify()[1] is None
    version = version_publish(layer=layer, base_version=1, set_={"a": 3}, actor=actor)  # nothing left locked
    assert version.number == 2
