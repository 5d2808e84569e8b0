"""Protobuf message classes built from field lists, so tests decode answers with an upstream
project's own definitions (names, numbers, types) without a protobuf compiler."""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def _field(message, name, number, kind, repeated, type_name):
    field = message.field.add(name=name, number=number, type=kind,
                              label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
    if type_name:
        field.type_name = type_name


def build(file_name, package, dependencies, messages, maps=None, enums=None):
    """Message classes of `package`: `messages` maps a name to [(field, number, type, repeated,
    message or enum type)]; `maps` a message name to (entry name, key field, value field) of a map
    field; `enums` an enum name to its [(value name, number)]."""
    file = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3",
                                              dependency=dependencies)
    for name, values in (enums or {}).items():
        enum = file.enum_type.add(name=name)
        for value, number in values:
            enum.value.add(name=value, number=number)
    for name, fields in messages.items():
        message = file.message_type.add(name=name)
        for field in fields:
            _field(message, *field)
        if maps and name in maps:
            entry_name, key, value = maps[name]
            entry = message.nested_type.add(name=entry_name)
            entry.options.map_entry = True
            _field(entry, *key)
            _field(entry, *value)
    pool = descriptor_pool.Default()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
            for name in messages}
