"""Resolution is a pure function: properties that hold for any layers (hypothesis)."""

import ast
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from config_registry.resolver import LayerSnapshot, Origin, Provenance, resolve

keys = st.sampled_from(["a", "b", "c", "chat.enabled", "chat.max_message_length", "x.y.z"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
)


@st.composite
def layer_stacks(draw):
    count = draw(st.integers(min_value=0, max_value=6))
    layers = []
    for position in range(count):
        entries = draw(st.dictionaries(keys, json_values, max_size=5))
        secrets = draw(st.frozensets(st.sampled_from(sorted(entries)) if entries else st.nothing()))
        layers.append(LayerSnapshot(f"layer{position}", position + 1, entries, secrets))
    return layers


@given(layer_stacks())
def test_resolve__any_layers__highest_layer_defining_a_key_wins(layers):
    resolution = resolve(layers)
    for key, value in resolution.values.items():
        winner = [layer for layer in layers if key in layer.entries][-1]
        assert value == winner.entries[key]
        assert resolution.provenance[key].layer == winner.ref
        assert resolution.provenance[key].version == winner.version
        assert (key in resolution.secrets) == (key in winner.secrets)
    assert set(resolution.values) == {key for layer in layers for key in layer.entries}


@given(layer_stacks(), st.integers(min_value=0, max_value=6), st.dictionaries(keys, json_values))
def test_resolve__inserted_layer_without_those_keys__changes_no_value(layers, position, extra):
    defined = {key for layer in layers for key in layer.entries}
    unrelated = {f"other.{key.replace('.', '_')}": value for key, value in extra.items()}
    inserted = LayerSnapshot("inserted", 99, unrelated)
    position = min(position, len(layers))
    before, after = resolve(layers), resolve([*layers[:position], inserted, *layers[position:]])
    assert {k: v for k, v in after.values.items() if k in defined} == before.values
    assert before.secrets == after.secrets


@given(layer_stacks())
def test_resolve__same_input__same_result(layers):
    assert resolve(layers) == resolve(list(layers))
    assert list(resolve(layers).values) == sorted(resolve(layers).values)


@given(layer_stacks())
def test_resolve__overrides__list_lower_definitions_highest_first(layers):
    resolution = resolve(layers)
    for key, provenance in resolution.provenance.items():
        defining = [Origin(layer.ref, layer.version) for layer in layers if key in layer.entries]
        assert provenance.overrides == tuple(reversed(defining[:-1]))


def test_resolve__higher_plain_value__replaces_lower_secret():
    lower = LayerSnapshot("global", 1, {"db.password": "sealed"}, frozenset({"db.password"}))
    higher = LayerSnapshot("user:alice", 2, {"db.password": "plain"})
    resolution = resolve([lower, higher])
    assert resolution.values == {"db.password": "plain"}
    assert resolution.secrets == frozenset()
    assert resolution.provenance["db.password"] == Provenance("user:alice", 2, (Origin("global", 1),))


def test_resolver_module__imports_only_the_standard_library():
    source = Path(sys.modules[resolve.__module__].__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0] if node.level == 0 else "<relative>")
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


# Composition (SPEC §7): the shared part resolved once, each user's overlay applied on top ---------


@given(layer_stacks(), st.integers(min_value=0, max_value=6))
def test_compose__shared_part_then_overlays__equals_resolving_all_at_once(layers, split):
    from config_registry.resolver import compose

    split = min(split, len(layers))
    shared, overlays = layers[:split], layers[split:]
    composed, whole = compose(resolve(shared), overlays), resolve(layers)
    assert composed.values == whole.values
    assert list(composed.values) == list(whole.values)  # the same order too (answers are byte-equal)
    assert list(composed.provenance) == list(whole.provenance)
    assert composed.secrets == whole.secrets
    assert composed.provenance == whole.provenance


@given(layer_stacks(), st.integers(min_value=0, max_value=6), keys)
def test_compose__restricted_to_a_prefix__equals_the_whole_restricted(layers, split, prefix):
    from config_registry.resolver import compose, layer_restrict, restrict

    split = min(split, len(layers))
    prefix = prefix.split(".")[0]
    restricted = compose(
        restrict(resolve(layers[:split]), prefix), [layer_restrict(layer, prefix) for layer in layers[split:]]
    )
    assert restricted == restrict(resolve(layers), prefix)
