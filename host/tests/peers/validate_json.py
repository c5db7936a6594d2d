"""Validates JSON documents against a JSON Schema with the `jsonschema` package.

Usage: validate_json.py SCHEMA < documents, one JSON document per line. Prints one line per
document that does not validate (its index and the first error) and exits 1 if there was one.
"""

import json
import sys

import jsonschema


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as schema_file:
        schema = json.load(schema_file)
    validator = jsonschema.Draft7Validator(schema)
    failed = 0
    for index, line in enumerate(sys.stdin):
        if not line.strip():
            continue
        errors = sorted(validator.iter_errors(json.loads(line)), key=str)
        if errors:
            failed += 1
            print(f"document {index}: {errors[0].message} at {list(errors[0].path)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
