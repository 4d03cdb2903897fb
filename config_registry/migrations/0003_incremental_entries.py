"""Versions store what they changed: each entry row holds from the version that wrote it
(`valid_from`) until the version that replaced or removed it (`valid_to`).

Until now every version copied every entry of its layer. This migration keeps, of each run of equal
copies of a key, the first row (so a secret keeps the ciphertext bound to the version that wrote
it), gives it the range those copies covered and deletes the other copies. Secrets are compared by
their plaintext (opened with CONFIG_REGISTRY_KEYS); one that no key opens is never merged with
another row, so nothing unreadable is lost or made to stand for something else.

Self-contained on purpose: later changes to config_registry.crypto must not change what it did.
Reversible: going back writes every version's complete copy again (secrets sealed for each version).
"""

import django.db.models.deletion
from django.db import migrations, models


def _ranges_from_copies(apps, schema_editor):
    import json

    from cryptography.fernet import Fernet, InvalidToken, MultiFernet
    from django.conf import settings

    Entry = apps.get_model("config_registry", "Entry")
    Layer = apps.get_model("config_registry", "Layer")
    LayerVersion = apps.get_model("config_registry", "LayerVersion")
    ring = MultiFernet([Fernet(key) for key in settings.CONFIG_REGISTRY_KEYS])

    def canonical(value) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def content(row, ref: str):
        if not row["secret"]:
            return ("plain", canonical(row["value"]))
        try:
            envelope = json.loads(ring.decrypt(row["ciphertext"].encode("ascii")))
        except (InvalidToken, ValueError, UnicodeEncodeError):
            return ("unreadable", row["id"])
        if (envelope.get("l"), envelope.get("k")) != (ref, row["key"]):
            return ("unreadable", row["id"])
        return ("secret", canonical(envelope.get("v")))

    def size(row) -> int:
        return len(row["ciphertext"]) if row["secret"] else len(json.dumps(row["value"], separators=(",", ":")))

    for layer in Layer.objects.order_by("pk").iterator():
        ref = layer.level if layer.level == "global" else f"{layer.level}:{layer.name}"
        current: dict[str, tuple[tuple, dict]] = {}  # key -> (content, row) of the open row
        closing: dict[int, list[int]] = {}  # valid_to -> row ids
        copies: list[int] = []
        for version in LayerVersion.objects.filter(layer=layer).order_by("number"):
            number = version.number
            rows = list(Entry.objects.filter(version=version).values("id", "key", "value", "ciphertext", "secret"))
            Entry.objects.filter(version=version).update(layer_id=layer.pk, valid_from=number)
            present = set()
            for row in rows:
                present.add(row["key"])
                seen = content(row, ref)
                held = current.get(row["key"])
                if held is not None and held[0] == seen and seen[0] != "unreadable":
                    copies.append(row["id"])
                    continue
                if held is not None:
                    closing.setdefault(number, []).append(held[1]["id"])
                current[row["key"]] = (seen, row)
            for key in [key for key in current if key not in present]:
                closing.setdefault(number, []).append(current.pop(key)[1]["id"])
        for start in range(0, len(copies), 500):
            Entry.objects.filter(pk__in=copies[start : start + 500]).delete()
        for valid_to, ids in closing.items():
            for start in range(0, len(ids), 500):
                Entry.objects.filter(pk__in=ids[start : start + 500]).update(valid_to=valid_to)
        Layer.objects.filter(pk=layer.pk).update(current_bytes=sum(size(row) for _, row in current.values()))
    _checks_now(schema_editor)


def _checks_now(schema_editor) -> None:
    # PostgreSQL defers foreign-key checks to the commit, and refuses to ALTER a table with checks
    # pending: run them now, before the constraints below are added in the same transaction.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _copies_from_ranges(apps, schema_editor):
    """Back to the previous schema: every version holds a copy of each entry valid at it."""
    import json

    from cryptography.fernet import Fernet, InvalidToken, MultiFernet
    from django.conf import settings

    Entry = apps.get_model("config_registry", "Entry")
    LayerVersion = apps.get_model("config_registry", "LayerVersion")
    ring = MultiFernet([Fernet(key) for key in settings.CONFIG_REGISTRY_KEYS])

    def resealed(ciphertext: str, number: int) -> str:
        try:
            envelope = json.loads(ring.decrypt(ciphertext.encode("ascii")))
        except (InvalidToken, ValueError, UnicodeEncodeError):
            return ciphertext  # unreadable stays unreadable
        envelope["n"] = number
        return ring.encrypt(json.dumps(envelope, separators=(",", ":")).encode()).decode("ascii")

    for version in LayerVersion.objects.order_by("pk").iterator():
        carried = Entry.objects.filter(layer_id=version.layer_id, valid_from__lt=version.number).filter(
            models.Q(valid_to__isnull=True) | models.Q(valid_to__gt=version.number)
        )
        Entry.objects.bulk_create(
            [
                Entry(
                    version=version,
                    layer_id=version.layer_id,
                    valid_from=version.number,
                    valid_to=version.number + 1,
                    key=row.key,
                    value=row.value,
                    secret=row.secret,
                    ciphertext=resealed(row.ciphertext, version.number) if row.secret else "",
                )
                for row in carried
            ]
        )
    _checks_now(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("config_registry", "0002_security_hardening")]

    operations = [
        migrations.AddField(
            model_name="layer",
            name="current_bytes",
            field=models.PositiveBigIntegerField(
                default=0,
                editable=False,
                help_text="Size of the current entries (the layer size limit), kept by each publish.",
            ),
        ),
        migrations.AddField(
            model_name="entry",
            name="layer",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="entry_rows",
                to="config_registry.layer",
            ),
        ),
        migrations.AddField(
            model_name="entry",
            name="valid_from",
            field=models.PositiveIntegerField(default=0, help_text="The version that wrote this entry."),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="entry",
            name="valid_to",
            field=models.PositiveIntegerField(
                blank=True,
                null=True,
                help_text="The version that replaced or removed it; empty while it is current.",
            ),
        ),
        migrations.RunPython(_ranges_from_copies, _copies_from_ranges, elidable=False),
        migrations.AlterField(
            model_name="entry",
            name="layer",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="entry_rows",
                to="config_registry.layer",
            ),
        ),
        migrations.AddConstraint(
            model_name="entry",
            constraint=models.UniqueConstraint(
                condition=models.Q(valid_to__isnull=True),
                fields=("layer", "key"),
                name="entry_one_current_per_key",
            ),
        ),
        migrations.AddConstraint(
            model_name="entry",
            constraint=models.CheckConstraint(
                condition=models.Q(valid_to__isnull=True) | models.Q(valid_to__gt=models.F("valid_from")),
                name="entry_valid_range",
            ),
        ),
        migrations.AddIndex(
            model_name="entry",
            index=models.Index(fields=["layer", "valid_from"], name="entry_layer_from"),
        ),
    ]
