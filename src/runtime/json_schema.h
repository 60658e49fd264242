// JSON Schema -> grammar text (runtime/grammar.h's syntax) for constrained decoding
// (OpenAI response_format json_schema / json_object).
//
// The grammar never accepts a document the schema rejects: what cannot be enforced exactly is
// refused with an error naming the keyword and the JSON pointer of its schema. It may be
// stricter than the schema, on purpose, so that a model cannot wander or loop:
//   - whitespace between tokens is "", " ", or one newline and up to 20 spaces / tabs;
//   - integers have at most 16 digits, fractions 16 (32 for "exclusiveMinimum": 0), exponents 2
//     (so every number fits a double: 1e999 would overflow the parsers that read the output);
//     "integer" refuses 1.0 and 1e2 (JSON Schema counts them as integers), and "-0" is refused
//     where a bound leaves out negatives;
//   - object properties come in the schema's order; keys and enum / const values must be
//     written as their canonical JSON text (no "\u0061" for "a", no spaces inside a const);
//   - strings may not hold lone surrogate escapes (\ud800 without its pair);
//   - "format" is asserted: date (days per month, leap years), time / date-time (RFC 3339, 'T'
//     and 'Z' either case, no leap second :60, at most 9 fraction digits), uuid.
// Strings without maxLength are unbounded, like any JSON text the schema allows.
// Supported: type (one or a list; without it every type, each with its own keywords), enum,
// const, properties + required, additionalProperties alone (false, true or a schema), items,
// prefixItems, minItems / maxItems, anyOf, oneOf (compiled as anyOf, so only where the branches
// are plainly disjoint: different types, or objects with differing required const / enum tags), allOf with one member, $ref to "#", "#/$defs/NAME",
// "#/definitions/NAME" (recursion allowed), minLength / maxLength, integer minimum / maximum /
// exclusiveMinimum / exclusiveMaximum (exact digit ranges), number minimum 0 / exclusiveMinimum 0;
// description, title, default, examples, $schema, $id, $comment, deprecated, readOnly, writeOnly
// are ignored.
// Objects get only their listed properties, also where the schema allows extra keys (absent or
// true "additionalProperties", or a schema for them): such documents conform, the grammar is only
// stricter. Refused: a required key with no schema in "properties" unless extra keys are
// forbidden (then it matches nothing), other number bounds, $ref or anyOf / allOf / enum next to constraining
// keywords, counts over 10000, more than 64 prefixItems or 4096 enum values, schemas nested
// deeper than 64, a $ref loop that reads no text, a grammar over 1 MiB, and every other keyword
// (pattern, patternProperties, uniqueItems, ...).
#pragma once
#include <string>

#include <string_view>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace qnext {

// A grammar accepting the JSON documents that conform to `schema`, with bounded whitespace around
// them, starting at rule `start` ("root"; another name embeds it in a larger grammar, whose other
// rule names must not start with "doc" nor be one of the shared rules: ws, string, number, ...);
// an error such as "json schema: unsupported keyword 'patternProperties' at /properties/a" for
// anything it cannot enforce exactly (the root's pointer is written "/").
Result<std::string> json_schema_to_grammar(const nlohmann::ordered_json& schema, std::string_view start = "root");

// Any JSON object (OpenAI response_format {"type": "json_object"}).
std::string json_object_grammar();

}  // namespace qnext
