"""Publishing from a test running on an event loop: the next version of a layer, from its current one."""

from config_registry.asyncdb import db_call
from config_registry.audit import Actor
from config_registry.selectors import layer_get
from config_registry.services import version_publish

TESTER = Actor("admin:tester", may_write_security=True)


async def publish_next(ref: str, values: dict, *, unset=(), secrets=()) -> None:
    """Publish `values` (minus `unset`) on top of the layer's current version, as an admin."""

    def publish():
        layer = layer_get(ref)
        version_publish(
            layer=layer, base_version=layer.current_version, set_=values, unset=unset, secrets=secrets, actor=TESTER
        )

    await db_call(publish)()
