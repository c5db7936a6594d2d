"""The service's table (DynamoDB on AWS, an embedded store locally) with items as dicts.

Values map to DynamoDB's kinds: `str` is S, `int`, `float` and `Decimal` are N, `bytes` is B,
`bool` is BOOL, `None` is NULL, lists and tuples are L, dicts are M, a set of strings is SS
and a set of numbers NS. `get_item` gives numbers back as `Decimal`, which keeps DynamoDB's
38 digits.

`put_item` and `get_item` are coroutines: `await xray_host.put_item(item)`. In the WASI 0.3
build the package's 0.3.0 table calls are `async func`s, for which componentize-py generates
coroutine functions: the request awaiting the table lets the instance's other requests run
meanwhile. In the WASI 0.2 build they wrap 0.2.0's synchronous calls, so they finish without
ever suspending (see `run_to_completion`), and the same code serves both builds.
"""

import inspect
import math
from decimal import Decimal

from componentize_py_types import Err
from wit_world.imports import table as wit

_EXPLANATIONS = {
    wit.TableError_InvalidItem: "invalid item: {value}",
    wit.TableError_TooLarge: "item too large: {value} bytes, DynamoDB takes at most 400 KB",
    wit.TableError_TableNotFound: "the table does not exist: {value}",
    wit.TableError_Throttled: "the table is throttling requests, retry later: {value}",
    wit.TableError_Unavailable: "the table could not be reached in time: {value}",
    wit.TableError_Denied: "the host is not allowed to use the table: {value}",
    wit.TableError_Failed: "the table call failed: {value}",
}


class TableError(Exception):
    """A table call failed.

    `kind` is the name of the WIT `table-error` case (for example `TooLarge`) and `value` its
    payload (the item's size in bytes for `TooLarge`); the message says what was wrong.
    """

    def __init__(self, error):
        self.kind = type(error).__name__.split("_", 1)[-1]
        self.value = error.value
        super().__init__(_EXPLANATIONS[type(error)].format(value=error.value))


def _number(value):
    if isinstance(value, float) and not math.isfinite(value):
        raise TableError(wit.TableError_InvalidItem(f"{value} is not a DynamoDB number"))
    return str(value)


class _Flattener:
    """Lays a nested value out as WIT's flat list, parents before their children."""

    def __init__(self):
        self.values = []

    def add(self, value):
        index = len(self.values)
        self.values.append(None)
        self.values[index] = self._convert(value)
        return index

    def _convert(self, value):
        if isinstance(value, bool):
            return wit.Value_Boolean(value)
        if isinstance(value, str):
            return wit.Value_Text(value)
        if isinstance(value, (int, float, Decimal)):
            return wit.Value_Number(_number(value))
        if isinstance(value, (bytes, bytearray)):
            return wit.Value_Binary(bytes(value))
        if value is None:
            return wit.Value_Null()
        if isinstance(value, (list, tuple)):
            return wit.Value_List([self.add(element) for element in value])
        if isinstance(value, dict):
            return wit.Value_Map([(_key(key), self.add(element)) for key, element in value.items()])
        if isinstance(value, (set, frozenset)):
            if value and all(isinstance(element, str) for element in value):
                return wit.Value_TextSet(sorted(value))
            if value and all(
                isinstance(element, (int, float, Decimal)) and not isinstance(element, bool)
                for element in value
            ):
                return wit.Value_NumberSet(sorted(_number(element) for element in value))
            raise TableError(
                wit.TableError_InvalidItem(
                    "a set must be non-empty and hold only strings or only numbers"
                )
            )
        raise TableError(
            wit.TableError_InvalidItem(f"a {type(value).__name__} is not a DynamoDB value")
        )


def _key(key):
    if not isinstance(key, str):
        raise TableError(wit.TableError_InvalidItem(f"attribute name {key!r} is not a str"))
    return key


def _to_wit(attributes):
    if not isinstance(attributes, dict):
        raise TypeError(f"an item is a dict, not {type(attributes).__name__}")
    flat = _Flattener()
    names = [(_key(name), flat.add(value)) for name, value in attributes.items()]
    return wit.Item(attributes=names, values=flat.values)


def _from_wit(item):
    def value(index):
        v = item.values[index]
        if isinstance(v, wit.Value_Number):
            return Decimal(v.value)
        if isinstance(v, wit.Value_Null):
            return None
        if isinstance(v, wit.Value_List):
            return [value(i) for i in v.value]
        if isinstance(v, wit.Value_Map):
            return {name: value(i) for name, i in v.value}
        if isinstance(v, wit.Value_TextSet):
            return set(v.value)
        if isinstance(v, wit.Value_NumberSet):
            return {Decimal(n) for n in v.value}
        return v.value

    return {name: value(index) for name, index in item.attributes}


async def _call(binding, argument):
    """Calls a table binding, awaiting it when it is an `async func` (the package's 0.3.0),
    and turns the host's refusal into a `TableError`."""
    try:
        result = binding(argument)
        if inspect.isawaitable(result):
            result = await result
        return result
    except Err as refusal:
        raise TableError(refusal.value) from None


async def put_item(item):
    """Writes `item` (a dict), replacing any item with the same key; raises `TableError`."""
    await _call(wit.put_item, _to_wit(item))


async def get_item(key):
    """The item with this key (a dict of the key attributes) as a dict, or None."""
    found = await _call(wit.get_item, _to_wit(key))
    return _from_wit(found) if found is not None else None
