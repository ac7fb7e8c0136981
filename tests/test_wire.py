"""The wire types follow the interface file: the msgspec Structs, the error classes, their sentences.

The ``.varlink`` file is the single source of truth for names; it is parsed here
with the independent ``varlink`` package and compared, field by field, with
``wire`` (parameters and replies) and ``protocol`` (errors).
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
import varlink
from varlink import scanner

from paragon_licensed.daemon.control.methods import METHODS
from paragon_licensed.interface import errors as protocol
from paragon_licensed.interface import wire

INTERFACE = varlink.Interface(Path(protocol.INTERFACE_FILE).read_text(encoding="utf-8"))
TYPES = {name: m for name, m in INTERFACE.members.items() if isinstance(m, scanner._Alias)}
METHOD_DEFS = {name: m for name, m in INTERFACE.members.items() if isinstance(m, scanner._Method)}
ERROR_DEFS = {name: m for name, m in INTERFACE.members.items() if isinstance(m, scanner._Error)}

Shape = tuple[Any, ...]


def varlink_shape(t: Any) -> Shape:
    """A comparable description of a varlink type; named types by name, anonymous structs by fields."""
    if isinstance(t, scanner._Maybe):
        return ("maybe", varlink_shape(t.element_type))
    if isinstance(t, scanner._Array):
        return ("array", varlink_shape(t.element_type))
    if isinstance(t, scanner._Dict):
        return ("dict", varlink_shape(t.element_type))
    if isinstance(t, scanner._Enum):
        return ("enum", frozenset(t.fields))
    if isinstance(t, scanner._CustomType):
        return ("type", t.name)
    if isinstance(t, scanner._Struct):
        return ("struct", tuple((name, varlink_shape(ft)) for name, ft in t.fields.items()))
    if isinstance(t, scanner._Object):
        return ("object",)
    if isinstance(t, set):  # [string]()
        return ("set",)
    for python_type, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "string")):
        if type(t) is python_type:
            return (name,)
    raise AssertionError(f"unknown varlink type {t!r}")


def msgspec_shape(t: mi.Type) -> Shape:
    if isinstance(t, mi.UnionType):
        others = [x for x in t.types if not isinstance(x, mi.NoneType)]
        assert len(others) == 1, f"only X | None maps to varlink: {t}"
        assert len(t.types) == 2, f"only X | None maps to varlink: {t}"
        return ("maybe", msgspec_shape(others[0]))
    if isinstance(t, mi.ListType):
        return ("array", msgspec_shape(t.item_type))
    if isinstance(t, mi.DictType):
        assert isinstance(t.key_type, mi.StrType), "varlink maps have string keys"
        return ("dict", msgspec_shape(t.value_type))
    if isinstance(t, mi.LiteralType):
        assert all(isinstance(v, str) for v in t.values)
        return ("enum", frozenset(t.values))
    if isinstance(t, mi.StructType):
        return ("type", t.cls.__name__)
    if isinstance(t, mi.AnyType):
        return ("object",)
    for info, name in (
        (mi.BoolType, "bool"),
        (mi.IntType, "int"),
        (mi.FloatType, "float"),
        (mi.StrType, "string"),
    ):
        if isinstance(t, info):
            return (name,)
    raise AssertionError(f"no varlink equivalent for {t!r}")


def compare_struct(where: str, varlink_struct: Any, cls: type[msgspec.Struct]) -> None:
    assert isinstance(varlink_struct, scanner._Struct), f"{where} is not a struct in the interface file"
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    assert info.forbid_unknown_fields, f"{cls.__name__} must refuse unknown fields"
    ours = {f.encode_name: f for f in info.fields}
    theirs = dict(varlink_struct.fields)
    assert sorted(ours) == sorted(theirs), f"{where}: fields differ from wire.{cls.__name__}"
    for name, vtype in theirs.items():
        field = ours[name]
        expected = varlink_shape(vtype)
        assert msgspec_shape(field.type) == expected, f"{where}.{name}: wire.{cls.__name__} differs"
        if expected[0] == "maybe":
            assert not field.required, f"{where}.{name}: optional needs a default"
            assert field.default is None, f"{where}.{name}: optional needs default None"
        else:
            assert field.required, f"{where}.{name} is not optional in the interface file"


# -- types


def test_interface_file_parses_and_names_the_interface() -> None:
    assert INTERFACE.name == protocol.INTERFACE == "io.paragon.License"
    assert TYPES
    assert METHOD_DEFS
    assert ERROR_DEFS


@pytest.mark.parametrize("name", sorted(TYPES))
def test_every_type_has_a_wire_struct(name: str) -> None:
    cls = getattr(wire, name, None)
    assert isinstance(cls, type), f"wire.{name} is missing"
    assert issubclass(cls, msgspec.Struct), f"wire.{name} is not a Struct"
    compare_struct(f"type {name}", TYPES[name].type, cls)


def test_every_named_struct_reference_exists() -> None:
    """Any type a field refers to by name is declared in the file, so the comparisons above cover it."""

    def walk(shape: Shape) -> list[str]:
        if shape[0] == "type":
            return [shape[1]]
        if shape[0] in ("maybe", "array", "dict"):
            return walk(shape[1])
        if shape[0] == "struct":
            return [n for _, s in shape[1] for n in walk(s)]
        return []

    members = [*(t.type for t in TYPES.values())]
    members += [m.in_type for m in METHOD_DEFS.values()] + [m.out_type for m in METHOD_DEFS.values()]
    members += [e.type for e in ERROR_DEFS.values()]
    referenced = {n for m in members for n in walk(varlink_shape(m))}
    assert referenced <= set(TYPES)


# -- methods


def in_struct(name: str) -> type[msgspec.Struct]:
    if name in METHODS:
        return METHODS[name].params
    if not METHOD_DEFS[name].in_type.fields:
        return wire.Empty
    cls: type[msgspec.Struct] = getattr(wire, f"{name}In")
    return cls


def out_struct(name: str) -> type[msgspec.Struct]:
    if name in METHODS:
        declared = METHODS[name].reply
        if declared is not None:
            return declared
        hints = typing.get_type_hints(METHODS[name].handler)
        returned: type[msgspec.Struct] = hints["return"]
        return returned
    if not METHOD_DEFS[name].out_type.fields:
        return wire.Empty
    cls: type[msgspec.Struct] = getattr(wire, f"{name}Out")
    return cls


@pytest.mark.parametrize("name", sorted(METHOD_DEFS))
def test_method_parameters_match(name: str) -> None:
    compare_struct(f"method {name} parameters", METHOD_DEFS[name].in_type, in_struct(name))


@pytest.mark.parametrize("name", sorted(METHOD_DEFS))
def test_method_replies_match(name: str) -> None:
    compare_struct(f"method {name} reply", METHOD_DEFS[name].out_type, out_struct(name))


def test_every_handled_method_is_declared() -> None:
    assert set(METHODS) <= set(METHOD_DEFS), "a handler for a method the interface file does not declare"


def test_every_declared_method_has_a_handler() -> None:
    assert set(METHOD_DEFS) <= set(METHODS), "a method of the interface file without a handler"


def test_secrets_are_hidden_in_parameter_reprs() -> None:
    key = "AK-SECRET-123"
    assert key not in repr(wire.ActivateIn(activation_key=key, tenant="acme"))
    assert key not in repr(wire.CreateOfflineRequestIn(kind="activation", activation_key=key))


def test_a_wire_struct_round_trips_through_json() -> None:
    node = wire.Node(
        name="mgmt-1",
        computer_id="d9508b5d-404b-f4ab-0d42-7a258d7986f4",
        build="3.2.1",
        version="0.1.0",
        online=True,
        last_seen="2025-01-01T00:00:00Z",
        seconds_since_seen=0.5,
        coordinator=True,
        this_node=True,
    )
    data = msgspec.json.encode(wire.ListNodesOut(nodes=[node]))
    assert msgspec.json.decode(data, type=wire.ListNodesOut).nodes == [node]
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"name": "x", "extra": 1}', type=wire.ForgetNodeIn)


# -- errors


SERVICE_ERRORS = {name for name in protocol.ERRORS if name.startswith(protocol.SERVICE + ".")}


def test_every_error_in_the_file_has_a_class() -> None:
    declared = {f"{protocol.INTERFACE}.{name}" for name in ERROR_DEFS}
    ours = set(protocol.ERRORS) - SERVICE_ERRORS
    assert sorted(declared - ours) == [], "errors of the interface file without a class in protocol.ERRORS"
    assert sorted(ours - declared) == [], "error classes the interface file does not declare"


def test_error_registry_is_consistent() -> None:
    for name, cls in protocol.ERRORS.items():
        assert cls.name == name
        assert issubclass(cls, protocol.VarlinkError)
        assert cls.exit_code in (
            protocol.EXIT_FAILED,
            protocol.EXIT_USAGE,
            protocol.EXIT_BUSY,
            protocol.EXIT_PERMISSION,
        )
    assert {
        "org.varlink.service.InvalidParameter",
        "org.varlink.service.MethodNotFound",
        "org.varlink.service.InterfaceNotFound",
    } <= SERVICE_ERRORS
    assert protocol.PermissionDenied.exit_code == 77
    assert protocol.ConnectionLimit.exit_code == 75  # busy, not absent (69): try again later


def sample(shape: Shape, name: str) -> Any:
    """A typical value for a parameter, distinctive enough to find in a sentence."""
    kind = shape[0]
    if kind == "maybe":
        return sample(shape[1], name)
    if kind == "string":
        return f"<{name}-value>"
    if kind == "int":
        return 4242
    if kind == "float":
        return 42.5
    if kind == "bool":
        return True
    if kind == "array":
        return [sample(shape[1], f"{name}-{i}") for i in (1, 2)]
    if kind == "dict":
        return {"k": sample(shape[1], name)}
    if kind == "enum":
        return sorted(shape[1])[0]
    if kind == "type":
        return sample(varlink_shape(TYPES[shape[1]].type), name)
    if kind == "struct":
        return {field: sample(s, f"{name}.{field}") for field, s in shape[1]}
    return None


def identifying_strings(value: Any) -> list[str]:
    """The strings a person needs to see: scalar values, and the name of each listed object."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list):
        return [s for item in value for s in identifying_strings(item)]
    if isinstance(value, dict):
        return identifying_strings(value["name"]) if "name" in value else []
    return []


@pytest.mark.parametrize("name", sorted(ERROR_DEFS))
def test_error_sentence_shows_its_parameters(name: str) -> None:
    shape = varlink_shape(ERROR_DEFS[name].type)
    assert shape[0] == "struct"
    parameters = {field: sample(s, field) for field, s in shape[1]}
    error = protocol.ERRORS[f"{protocol.INTERFACE}.{name}"](**parameters)
    sentence = error.sentence()
    assert isinstance(sentence, str)
    assert sentence.strip()
    assert "\n" not in sentence
    assert str(error) == sentence
    assert error.short_name == name
    missing = [
        (field, text)
        for field, value in parameters.items()
        for text in identifying_strings(value)
        if text not in sentence
    ]
    assert missing == [], f"{name}: the sentence leaves out {missing}: {sentence}"
    json.dumps(error.parameters)  # what travels is plain data


@pytest.mark.parametrize("name", sorted(protocol.ERRORS))
def test_error_sentence_without_parameters(name: str) -> None:
    error = protocol.ERRORS[name]()
    sentence = error.sentence()
    assert isinstance(sentence, str)
    assert sentence.strip()
    assert "{" not in sentence, "no Python repr in a sentence"


@pytest.mark.parametrize("name", sorted(protocol.ERRORS))
def test_error_sentence_with_odd_parameter_types(name: str) -> None:
    odd = {
        p: None for p in ("nodes", "tenants", "url", "reason", "method", "required_group", "tenant", "name")
    }
    assert protocol.ERRORS[name](**odd).sentence()
    assert protocol.ERRORS[name](nodes="mgmt-1", tenants=3).sentence()


def test_service_error_sentences() -> None:
    assert "tenant" in protocol.InvalidParameter(parameter="tenant").sentence()
    assert "io.paragon.License.Nope" in protocol.MethodNotFound(method="io.paragon.License.Nope").sentence()
    assert "io.example.X" in protocol.InterfaceNotFound(interface="io.example.X").sentence()
    assert protocol.ExpectedMore().sentence()


def test_permission_denied_names_the_group() -> None:
    error = protocol.PermissionDenied(method="SetCloudAdminEmail", required_group="paragon-license")
    assert "'paragon-license'" in error.sentence()
    assert "SetCloudAdminEmail" in error.sentence()


def test_error_from_reply() -> None:
    known = protocol.error_from_reply("io.paragon.License.NoSuchTenant", {"tenant": "acme"})
    assert isinstance(known, protocol.NoSuchTenant)
    assert known.parameters == {"tenant": "acme"}
    unknown = protocol.error_from_reply("io.example.Future.Thing", None)
    assert isinstance(unknown, protocol.VarlinkError)
    assert unknown.name == "io.example.Future.Thing"
    assert unknown.sentence()


# -- what the wire modules import


def imported_after(module: str) -> set[str]:
    code = f"import sys, json; import {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout))


def test_protocol_imports_only_the_standard_library() -> None:
    modules = imported_after("paragon_licensed.interface.errors")
    ours = {m for m in modules if m.startswith("paragon_licensed")}
    assert ours == {"paragon_licensed", "paragon_licensed.interface", "paragon_licensed.interface.errors"}
    assert not {"msgspec", "anyio", "click", "requests"} & modules


def test_wire_imports_only_msgspec_and_the_standard_library() -> None:
    modules = imported_after("paragon_licensed.interface.wire")
    ours = {m for m in modules if m.startswith("paragon_licensed")}
    assert ours <= {
        "paragon_licensed",
        "paragon_licensed.interface",
        "paragon_licensed.interface.errors",
        "paragon_licensed.interface.wire",
    }
    assert "msgspec" in modules
    assert not {"anyio", "click", "requests", "cryptography"} & modules


def test_ctl_names_the_same_license_states_as_the_interface() -> None:
    """ctl keeps to the standard library, so it spells the states out: they must agree."""
    from typing import get_args

    from paragon_licensed.ctl.main import TENANT_STATES
    from paragon_licensed.interface import wire

    assert get_args(wire.State) == TENANT_STATES
