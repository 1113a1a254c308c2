"""JSON values → protobuf scalar field values, for --edit_config_json."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor

_INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_FLOATS = (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE)


class ConvertError(ValueError):
    """A value does not fit the field's type."""


def convert_scalar(fd: FieldDescriptor, value: Any) -> Any:
    """`value` (a JSON scalar or its text) as a value of field `fd`.

    Text is accepted for every type because TorchEasyRec's edit_config
    passes every value as text.
    """
    kind = fd.cpp_type
    if isinstance(value, (dict, list)) or value is None:
        raise ConvertError(f"expected a single value, got {value!r}")
    if kind == FieldDescriptor.CPPTYPE_BOOL:
        return _to_bool(value)
    if kind == FieldDescriptor.CPPTYPE_STRING:
        if isinstance(value, bool):
            raise ConvertError(f"expected a string, got {value!r}")
        return str(value)
    if kind == FieldDescriptor.CPPTYPE_ENUM:
        return _to_enum(fd, value)
    if isinstance(value, bool):
        raise ConvertError(f"expected a number, got {value!r}")
    if kind in _FLOATS:
        try:
            return float(value)
        except ValueError:
            raise ConvertError(f"expected a number, got {value!r}") from None
    return _to_int(kind, value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConvertError(f"expected true or false, got {value!r}")


def _to_enum(fd: FieldDescriptor, value: Any) -> int:
    enum = fd.enum_type
    if isinstance(value, str) and value.strip() in enum.values_by_name:
        return enum.values_by_name[value.strip()].number
    if isinstance(value, int) and value in enum.values_by_number:
        return value
    names = ", ".join(v.name for v in enum.values)
    raise ConvertError(f"expected one of {names}, got {value!r}")


def _to_int(kind: int, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, int):
        number = value
    else:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ConvertError(f"expected an integer, got {value!r}") from None
    low, high = _INT_RANGES[kind]
    if not low <= number <= high:
        raise ConvertError(f"{number} is out of range [{low}, {high}]")
    return number
