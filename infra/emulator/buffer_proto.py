"""``BufferTaskRequest`` / ``BufferTaskResponse`` as protobuf classes, built at import.

The v2 API has BufferTask, but the client library this project pins does not ship its
messages, so they are declared here from the published ``cloudtasks.proto`` (same package,
names and field numbers) on top of the library's ``Task`` and ``google.api.HttpBody``.
"""

from __future__ import annotations

from google.api import httpbody_pb2
from google.cloud import tasks_v2
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

PACKAGE = "google.cloud.tasks.v2"
_F = descriptor_pb2.FieldDescriptorProto


def _field(msg: descriptor_pb2.DescriptorProto, name: str, number: int, json_name: str, type_name: str = "") -> None:
    field = msg.field.add(name=name, number=number, label=_F.LABEL_OPTIONAL, json_name=json_name, type=_F.TYPE_STRING)
    if type_name:
        field.type, field.type_name = _F.TYPE_MESSAGE, type_name


def _file() -> descriptor_pb2.FileDescriptorProto:
    task_file = tasks_v2.Task.pb().DESCRIPTOR.file.name
    proto = descriptor_pb2.FileDescriptorProto(name="ordertasks/emulator/buffer_task.proto", package=PACKAGE,
                                               syntax="proto3",
                                               dependency=[httpbody_pb2.DESCRIPTOR.name, task_file])
    request = proto.message_type.add(name="BufferTaskRequest")
    _field(request, "queue", 1, "queue")
    _field(request, "task_id", 2, "taskId")
    _field(request, "body", 3, "body", ".google.api.HttpBody")
    _field(proto.message_type.add(name="BufferTaskResponse"), "task", 1, "task", f".{PACKAGE}.Task")
    return proto


def _classes() -> tuple[type[message.Message], type[message.Message]]:
    pool = descriptor_pool.Default()
    try:
        pool.FindMessageTypeByName(f"{PACKAGE}.BufferTaskRequest")
    except KeyError:
        pool.Add(_file())
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))  # type: ignore[return-value]
                 for name in ("BufferTaskRequest", "BufferTaskResponse"))


BufferTaskRequest, BufferTaskResponse = _classes()
