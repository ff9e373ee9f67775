"""Message classes and RPC table built from the ORIGINAL's contract (never from our .proto).

`proto/contract/leotest-contract.json` lists every enum, message, field and RPC of the
original LeoTest proto. We assemble a FileDescriptorProto from it, load it into a private
descriptor pool and ask protobuf's message factory for the classes, so the suite checks the
Rust server against the original's schema rather than against itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, unknown_fields
from google.protobuf.message import Message

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTRACT_PATH = REPO_ROOT / "proto" / "contract" / "leotest-contract.json"
VECTORS_PATH = REPO_ROOT / "proto" / "contract" / "leotest-vectors.json"

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALAR_TYPES = {
    "string": _FDP.TYPE_STRING,
    "bool": _FDP.TYPE_BOOL,
    "int32": _FDP.TYPE_INT32,
    "int64": _FDP.TYPE_INT64,
    "uint32": _FDP.TYPE_UINT32,
    "uint64": _FDP.TYPE_UINT64,
    "double": _FDP.TYPE_DOUBLE,
    "float": _FDP.TYPE_FLOAT,
    "bytes": _FDP.TYPE_BYTES,
    "message": _FDP.TYPE_MESSAGE,
    "enum": _FDP.TYPE_ENUM,
}
_LABELS = {
    "optional": _FDP.LABEL_OPTIONAL,
    "repeated": _FDP.LABEL_REPEATED,
    "required": _FDP.LABEL_REQUIRED,
}


@dataclass(frozen=True)
class Rpc:
    """One unary RPC of the original service."""

    name: str
    path: str
    request: type[Message]
    response: type[Message]


def _load_contract() -> dict:
    with CONTRACT_PATH.open(encoding="utf-8") as f:
        return json.load(f)


def build_file_descriptor(contract: dict) -> descriptor_pb2.FileDescriptorProto:
    """Assembles the original's .proto file descriptor from the contract JSON."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="leotest_contract.proto",
        package=contract["package"],
        syntax=contract["syntax"],
    )
    for enum in contract["enums"]:
        e = fdp.enum_type.add(name=enum["name"])
        for value in enum["values"]:
            e.value.add(name=value["name"], number=value["number"])
    for message in contract["messages"]:
        m = fdp.message_type.add(name=message["name"])
        for field in message["fields"]:
            f = m.field.add(
                name=field["name"],
                number=field["number"],
                type=_SCALAR_TYPES[field["type"]],
                label=_LABELS[field["label"]],
                json_name=field["name"],
            )
            if field.get("type_name"):
                f.type_name = "." + field["type_name"].lstrip(".")
            if field.get("optional"):
                # proto3 `optional`: explicit presence through a synthetic one-field oneof.
                f.proto3_optional = True
                f.oneof_index = len(m.oneof_decl)
                m.oneof_decl.add(name="_" + field["name"])
    for service in contract["services"]:
        s = fdp.service.add(name=service["name"])
        for method in service["methods"]:
            s.method.add(
                name=method["name"],
                input_type="." + method["input"],
                output_type="." + method["output"],
            )
    return fdp


CONTRACT = _load_contract()
PACKAGE = CONTRACT["package"]
FILE_DESCRIPTOR = build_file_descriptor(CONTRACT)
POOL = descriptor_pool.DescriptorPool()
POOL.Add(FILE_DESCRIPTOR)


def msg(name: str) -> type[Message]:
    """The contract's message class for `name` (e.g. `message_get_user` or `_node`)."""
    full = name if name.startswith(PACKAGE + ".") else f"{PACKAGE}.{name}"
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(full))


def enum_value(enum: str, value_name: str) -> int:
    """The number of an enum value of the contract (e.g. `user_roles`, `NODE`)."""
    return POOL.FindEnumTypeByName(f"{PACKAGE}.{enum}").values_by_name[value_name].number


def _rpcs() -> dict[str, Rpc]:
    table: dict[str, Rpc] = {}
    for service in CONTRACT["services"]:
        for method in service["methods"]:
            table[method["name"]] = Rpc(
                name=method["name"],
                path=method["path"],
                request=msg(method["input"]),
                response=msg(method["output"]),
            )
    return table


RPCS: dict[str, Rpc] = _rpcs()
ALL_PATHS = frozenset(r.path for r in RPCS.values())


def load_vectors() -> list[dict]:
    """Golden encodings made by the original's protobuf."""
    with VECTORS_PATH.open(encoding="utf-8") as f:
        return json.load(f)


def _repeated(field) -> bool:
    """FieldDescriptor.is_repeated (protobuf >= 6; 4.x, the original's, has only .label)."""
    flag = getattr(field, "is_repeated", None)
    return flag if flag is not None else field.label == field.LABEL_REPEATED


def unknown_field_paths(message: Message, prefix: str = "") -> list[str]:
    """Paths of every sub-message (including `message` itself) that carries unknown fields."""
    found = []
    if len(unknown_fields.UnknownFieldSet(message)) > 0:
        found.append(prefix or "<root>")
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        name = f"{prefix}.{field.name}" if prefix else field.name
        if _repeated(field):
            for i, item in enumerate(value):
                found.extend(unknown_field_paths(item, f"{name}[{i}]"))
        else:
            found.extend(unknown_field_paths(value, name))
    return found
