from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Filter(_message.Message):
    __slots__ = ("all_of", "any_of", "not_filter", "condition")
    ALL_OF_FIELD_NUMBER: _ClassVar[int]
    ANY_OF_FIELD_NUMBER: _ClassVar[int]
    NOT_FILTER_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    all_of: FilterList
    any_of: FilterList
    not_filter: Filter
    condition: FieldCondition
    def __init__(self, all_of: _Optional[_Union[FilterList, _Mapping]] = ..., any_of: _Optional[_Union[FilterList, _Mapping]] = ..., not_filter: _Optional[_Union[Filter, _Mapping]] = ..., condition: _Optional[_Union[FieldCondition, _Mapping]] = ...) -> None: ...

class FilterList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Filter]
    def __init__(self, items: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ...) -> None: ...

class FieldCondition(_message.Message):
    __slots__ = ("field", "op", "string_value", "int_value", "double_value", "bool_value", "null_value", "list_value")
    class Op(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OP_UNSPECIFIED: _ClassVar[FieldCondition.Op]
        OP_EQ: _ClassVar[FieldCondition.Op]
        OP_NE: _ClassVar[FieldCondition.Op]
        OP_IN: _ClassVar[FieldCondition.Op]
        OP_NIN: _ClassVar[FieldCondition.Op]
        OP_GT: _ClassVar[FieldCondition.Op]
        OP_GTE: _ClassVar[FieldCondition.Op]
        OP_LT: _ClassVar[FieldCondition.Op]
        OP_LTE: _ClassVar[FieldCondition.Op]
        OP_EXISTS: _ClassVar[FieldCondition.Op]
        OP_CONTAINS: _ClassVar[FieldCondition.Op]
    OP_UNSPECIFIED: FieldCondition.Op
    OP_EQ: FieldCondition.Op
    OP_NE: FieldCondition.Op
    OP_IN: FieldCondition.Op
    OP_NIN: FieldCondition.Op
    OP_GT: FieldCondition.Op
    OP_GTE: FieldCondition.Op
    OP_LT: FieldCondition.Op
    OP_LTE: FieldCondition.Op
    OP_EXISTS: FieldCondition.Op
    OP_CONTAINS: FieldCondition.Op
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    field: str
    op: FieldCondition.Op
    string_value: str
    int_value: int
    double_value: float
    bool_value: bool
    null_value: _struct_pb2.NullValue
    list_value: ScalarList
    def __init__(self, field: _Optional[str] = ..., op: _Optional[_Union[FieldCondition.Op, str]] = ..., string_value: _Optional[str] = ..., int_value: _Optional[int] = ..., double_value: _Optional[float] = ..., bool_value: _Optional[bool] = ..., null_value: _Optional[_Union[_struct_pb2.NullValue, str]] = ..., list_value: _Optional[_Union[ScalarList, _Mapping]] = ...) -> None: ...

class ScalarList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Scalar]
    def __init__(self, values: _Optional[_Iterable[_Union[Scalar, _Mapping]]] = ...) -> None: ...

class Scalar(_message.Message):
    __slots__ = ("string_value", "int_value", "double_value", "bool_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    int_value: int
    double_value: float
    bool_value: bool
    def __init__(self, string_value: _Optional[str] = ..., int_value: _Optional[int] = ..., double_value: _Optional[float] = ..., bool_value: _Optional[bool] = ...) -> None: ...
