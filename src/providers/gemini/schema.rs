//! Tool schemas cut down to the OpenAPI subset Gemini's `parameters` accepts
//! (https://ai.google.dev/api/caching#Schema).
//!
//! Gemini answers `400 INVALID_ARGUMENT` to the whole request for one key it does not know
//! or one it knows in the wrong place (`properties` on a string, an `array` without `items`,
//! empty `properties`), and Claude Code's tools are full JSON Schema (`$schema`,
//! `additionalProperties`, `exclusiveMinimum`, `propertyNames`, `const`…). So the clean-up is
//! an allow-list, per type, applied recursively: a key Gemini might refuse is dropped, which
//! loosens the schema but never fails the request. Models that take `parametersJsonSchema`
//! skip all of this.

use std::cell::Cell;

use serde_json::{Map, Value};

/// How deep schemas and `$ref`s are followed: a recursive definition (a tree of nodes) is cut
/// there instead of inlined forever.
const MAX_DEPTH: usize = 24;

/// How many nodes one schema may be cleaned into: inlining a definition that is used many
/// times at many depths grows exponentially, and a client must not make ccr build that.
const MAX_NODES: usize = 20_000;

/// The types Gemini's `Schema.type` knows, beside `null` (written as `nullable`).
const TYPES: [&str; 6] = ["string", "number", "integer", "boolean", "array", "object"];

/// The `parameters` for a tool's `input_schema`, or `None` when the tool takes no arguments
/// (Gemini refuses an object with empty `properties`, and a declaration may leave them out).
pub fn parameters(schema: &Value) -> Option<Value> {
    let cleaner = Cleaner {
        root: schema,
        nodes_left: Cell::new(MAX_NODES),
    };
    let cleaned = cleaner.node(schema, 0);
    let has_properties = cleaned.contains_key("properties");
    let is_object = cleaned.get("type").and_then(Value::as_str) == Some("object");
    (is_object && has_properties).then_some(Value::Object(cleaned))
}

/// Cleans the nodes of one schema, resolving `$ref`s against its root.
struct Cleaner<'a> {
    root: &'a Value,
    nodes_left: Cell<usize>,
}

impl Cleaner<'_> {
    /// One node cleaned. A boolean schema (`true`: anything) and anything past
    /// [`MAX_DEPTH`] or [`MAX_NODES`] become the empty schema, which accepts anything.
    fn node(&self, schema: &Value, depth: usize) -> Map<String, Value> {
        let Value::Object(schema) = schema else {
            return Map::new();
        };
        let nodes_left = self.nodes_left.get();
        if depth > MAX_DEPTH || nodes_left == 0 {
            return Map::new();
        }
        self.nodes_left.set(nodes_left - 1);
        let mut out = self.own_keys(schema, depth);
        if let Some(target) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| self.resolve(r))
        {
            // Keys beside the `$ref` (a description, say) win over the definition's.
            merge_missing(&mut out, self.node(target, depth + 1));
        }
        for branch in all_of(schema) {
            merge_missing(&mut out, self.node(branch, depth + 1));
        }
        out
    }

    /// The node's own keys that Gemini takes for its type, its alternatives folded in.
    fn own_keys(&self, schema: &Map<String, Value>, depth: usize) -> Map<String, Value> {
        let (kind, null_in_type) = declared_type(schema);
        let mut out = Map::new();
        if let Some(kind) = kind {
            out.insert("type".into(), Value::String(kind.into()));
        }
        copy_when(&mut out, schema, "description", Value::is_string);
        let (values, null_in_enum) = string_enum(schema);
        let nullable =
            null_in_type || null_in_enum || schema.get("nullable") == Some(&Value::Bool(true));
        if nullable {
            out.insert("nullable".into(), Value::Bool(true));
        }
        match kind {
            Some("string") => string_keys(&mut out, schema, values),
            Some("number" | "integer") => {
                copy_when(&mut out, schema, "minimum", Value::is_number);
                copy_when(&mut out, schema, "maximum", Value::is_number);
            }
            Some("array") => self.array_keys(&mut out, schema, depth),
            Some("object") => self.object_keys(&mut out, schema, depth),
            _ => {}
        }
        self.alternatives(&mut out, schema, depth);
        out
    }

    fn array_keys(&self, out: &mut Map<String, Value>, schema: &Map<String, Value>, depth: usize) {
        let items = match (schema.get("items"), schema.get("prefixItems")) {
            (Some(Value::Array(tuple)), _) | (None, Some(Value::Array(tuple))) => {
                self.one_of_many(tuple, depth)
            }
            (Some(items), _) => self.node(items, depth + 1),
            // Gemini wants `items` on every array; the empty schema takes any element.
            (None, _) => Map::new(),
        };
        out.insert("items".into(), Value::Object(items));
        copy_when(out, schema, "minItems", Value::is_u64);
        copy_when(out, schema, "maxItems", Value::is_u64);
    }

    /// The element schema for a tuple: its one schema, or any of its schemas.
    fn one_of_many(&self, tuple: &[Value], depth: usize) -> Map<String, Value> {
        let mut branches: Vec<Map<String, Value>> =
            tuple.iter().map(|s| self.node(s, depth + 1)).collect();
        branches.dedup();
        match branches.len() {
            0 => Map::new(),
            1 => branches.remove(0),
            _ => {
                let mut any = Map::new();
                let branches = branches.into_iter().map(Value::Object).collect();
                any.insert("anyOf".into(), Value::Array(branches));
                any
            }
        }
    }

    fn object_keys(&self, out: &mut Map<String, Value>, schema: &Map<String, Value>, depth: usize) {
        let properties: Map<String, Value> = match schema.get("properties") {
            Some(Value::Object(properties)) => properties
                .iter()
                .map(|(name, s)| (name.clone(), Value::Object(self.node(s, depth + 1))))
                .collect(),
            _ => Map::new(),
        };
        if properties.is_empty() {
            return;
        }
        // Gemini refuses a required or ordered name that is not among the properties.
        let known = |names: Option<&Value>| -> Vec<Value> {
            let names = names.and_then(Value::as_array).map(Vec::as_slice);
            names
                .unwrap_or_default()
                .iter()
                .filter(|n| n.as_str().is_some_and(|n| properties.contains_key(n)))
                .cloned()
                .collect()
        };
        let required = known(schema.get("required"));
        let ordering = known(schema.get("propertyOrdering"));
        out.insert("properties".into(), Value::Object(properties));
        if !required.is_empty() {
            out.insert("required".into(), Value::Array(required));
        }
        if !ordering.is_empty() {
            out.insert("propertyOrdering".into(), Value::Array(ordering));
        }
        copy_when(out, schema, "minProperties", Value::is_u64);
        copy_when(out, schema, "maxProperties", Value::is_u64);
    }

    /// `anyOf` and `oneOf` as Gemini's `anyOf`: a `null` branch becomes `nullable`, and a
    /// single remaining branch is folded into the node itself.
    fn alternatives(
        &self,
        out: &mut Map<String, Value>,
        schema: &Map<String, Value>,
        depth: usize,
    ) {
        let branches = ["anyOf", "oneOf"]
            .iter()
            .filter_map(|key| schema.get(*key).and_then(Value::as_array))
            .flatten();
        let mut kept = Vec::new();
        for branch in branches {
            if is_null_schema(branch) {
                out.insert("nullable".into(), Value::Bool(true));
            } else {
                kept.push(self.node(branch, depth + 1));
            }
        }
        match kept.len() {
            0 => {}
            1 => merge_missing(out, kept.remove(0)),
            _ => {
                let kept = kept.into_iter().map(Value::Object).collect();
                out.insert("anyOf".into(), Value::Array(kept));
            }
        }
    }

    /// A local reference (`#/$defs/Name`, `#/definitions/Name`, any JSON pointer into the
    /// root); remote ones are left out.
    fn resolve(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(pointer)
    }
}

/// `enum` (string values only) and `format` (only the two Gemini takes on strings).
fn string_keys(out: &mut Map<String, Value>, schema: &Map<String, Value>, values: Vec<Value>) {
    if !values.is_empty() {
        out.insert("enum".into(), Value::Array(values));
    }
    let format = schema.get("format").and_then(Value::as_str);
    if let Some(format @ ("enum" | "date-time")) = format {
        out.insert("format".into(), Value::String(format.into()));
    }
}

/// The node's type as Gemini names it, and whether `null` was among its types. Without a
/// `type`, what the node holds says it (`properties` → object…), since Gemini refuses
/// `properties`, `items` or `enum` on a node of no type.
fn declared_type(schema: &Map<String, Value>) -> (Option<&'static str>, bool) {
    let known = |name: &str| TYPES.iter().copied().find(|t| *t == name);
    match schema.get("type") {
        Some(Value::String(name)) => (known(name), name == "null"),
        // JSON Schema's list of types: Gemini takes one, so the first beside `null`.
        Some(Value::Array(names)) => {
            let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
            let kind = names.iter().find_map(|n| known(n));
            (kind, names.contains(&"null"))
        }
        _ => (implied_type(schema), false),
    }
}

fn implied_type(schema: &Map<String, Value>) -> Option<&'static str> {
    if schema.contains_key("properties") {
        Some("object")
    } else if schema.contains_key("items") || schema.contains_key("prefixItems") {
        Some("array")
    } else if !string_enum(schema).0.is_empty() {
        Some("string")
    } else {
        None
    }
}

/// The node's allowed string values (`enum`, or `const` as a one-value enum), and whether
/// `null` was among them. An enum holding other kinds of values is left out: Gemini's enums
/// are strings only.
fn string_enum(schema: &Map<String, Value>) -> (Vec<Value>, bool) {
    let values: Vec<&Value> = match (schema.get("enum"), schema.get("const")) {
        (Some(Value::Array(values)), _) => values.iter().collect(),
        (None, Some(value)) => vec![value],
        _ => return (Vec::new(), false),
    };
    let has_null = values.iter().any(|v| v.is_null());
    let strings: Vec<Value> = values
        .into_iter()
        .filter(|v| !v.is_null())
        .cloned()
        .collect();
    if strings.iter().all(Value::is_string) {
        (strings, has_null)
    } else {
        (Vec::new(), false)
    }
}

fn is_null_schema(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(kind)) => kind == "null",
        Some(Value::Array(kinds)) => kinds.iter().all(|k| k == "null"),
        _ => false,
    }
}

/// `allOf`'s branches, folded into the node key by key.
fn all_of(schema: &Map<String, Value>) -> &[Value] {
    schema
        .get("allOf")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn copy_when(
    out: &mut Map<String, Value>,
    schema: &Map<String, Value>,
    key: &str,
    keep: fn(&Value) -> bool,
) {
    if let Some(value) = schema.get(key).filter(|v| keep(v)) {
        out.insert(key.into(), value.clone());
    }
}

/// Adds `from`'s keys that `into` lacks; `properties` and `required` are joined. A type
/// that conflicts with the one `into` has is dropped with the keys that come with it.
fn merge_missing(into: &mut Map<String, Value>, from: Map<String, Value>) {
    let conflicting = match (into.get("type"), from.get("type")) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    };
    if conflicting {
        return;
    }
    for (key, value) in from {
        match (key.as_str(), into.get_mut(&key), value) {
            ("properties", Some(Value::Object(mine)), Value::Object(theirs)) => {
                for (name, schema) in theirs {
                    mine.entry(name).or_insert(schema);
                }
            }
            ("required", Some(Value::Array(mine)), Value::Array(theirs)) => {
                for name in theirs {
                    if !mine.contains(&name) {
                        mine.push(name);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, value) => {
                into.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    /// The keys of Gemini's `Schema` that ccr may write; `title`, `default`, `example`,
    /// `minLength`, `maxLength` and `pattern` are Gemini's too but refused by some models.
    const ALLOWED_KEYS: [&str; 16] = [
        "type",
        "format",
        "description",
        "nullable",
        "enum",
        "items",
        "minItems",
        "maxItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "propertyOrdering",
        "minimum",
        "maximum",
        "anyOf",
    ];

    fn clean(schema: Value) -> Value {
        parameters(&schema).unwrap_or(Value::Null)
    }

    /// Every key at every depth is one Gemini takes, and every array has `items`.
    pub(crate) fn assert_gemini_schema(schema: &Value, path: &str) {
        let Value::Object(map) = schema else {
            panic!("{path}: a schema is an object: {schema}")
        };
        for (key, value) in map {
            assert!(ALLOWED_KEYS.contains(&key.as_str()), "{path}.{key}");
            match key.as_str() {
                "properties" => {
                    let properties = value.as_object().unwrap();
                    assert!(!properties.is_empty(), "{path}: empty properties");
                    for (name, schema) in properties {
                        assert_gemini_schema(schema, &format!("{path}.{name}"));
                    }
                }
                "items" => assert_gemini_schema(value, &format!("{path}[]")),
                "anyOf" => {
                    for (i, branch) in value.as_array().unwrap().iter().enumerate() {
                        assert_gemini_schema(branch, &format!("{path}|{i}"));
                    }
                }
                "enum" => assert!(value.as_array().unwrap().iter().all(Value::is_string)),
                _ => {}
            }
        }
        if map.get("type") == Some(&json!("array")) {
            assert!(map.contains_key("items"), "{path}: an array has items");
        }
    }

    #[test]
    fn json_schema_only_keys_are_dropped_at_every_depth() {
        let out = clean(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "urn:x",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "limit": {"type": "integer", "exclusiveMinimum": 0, "maximum": 100, "default": 10, "examples": [5]},
                "meta": {"type": "object", "propertyNames": {"type": "string"}, "additionalProperties": {}, "patternProperties": {"^x": {}}},
                "name": {"type": "string", "minLength": 1, "maxLength": 9, "pattern": "^a", "format": "uri", "title": "Name"},
                "when": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string", "default": "a"}, "minItems": 1}
            },
            "required": ["limit", "gone"]
        }));
        assert_eq!(
            out,
            json!({
                "type": "object",
                "properties": {
                    "limit": {"type": "integer", "maximum": 100},
                    "meta": {"type": "object"},
                    "name": {"type": "string"},
                    "when": {"type": "string", "format": "date-time"},
                    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1}
                },
                "required": ["limit"]
            })
        );
        assert_gemini_schema(&out, "$");
    }

    #[test]
    fn const_and_alternatives_become_enums_anyof_and_nullable() {
        let out = clean(json!({
            "type": "object",
            "properties": {
                "status": {"anyOf": [
                    {"type": "string", "enum": ["pending", "done"]},
                    {"type": "string", "const": "deleted"}
                ]},
                "maybe": {"type": ["string", "null"], "description": "d"},
                "either": {"oneOf": [{"type": "integer"}, {"type": "null"}]},
                "count": {"type": "integer", "enum": [1, 2]},
                "mixed": {"enum": ["a", null]}
            }
        }));
        assert_eq!(
            out["properties"],
            json!({
                "status": {"anyOf": [
                    {"type": "string", "enum": ["pending", "done"]},
                    {"type": "string", "enum": ["deleted"]}
                ]},
                "maybe": {"type": "string", "description": "d", "nullable": true},
                "either": {"nullable": true, "type": "integer"},
                "count": {"type": "integer"},
                "mixed": {"type": "string", "nullable": true, "enum": ["a"]}
            })
        );
        assert_gemini_schema(&out, "$");
    }

    #[test]
    fn refs_are_inlined_and_recursion_is_cut() {
        let out = clean(json!({
            "type": "object",
            "$defs": {
                "point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]},
                "tree": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/tree"}}}}
            },
            "definitions": {"name": {"type": "string"}},
            "properties": {
                "at": {"$ref": "#/$defs/point", "description": "where"},
                "who": {"$ref": "#/definitions/name"},
                "far": {"$ref": "https://example.com/schema.json"},
                "tree": {"$ref": "#/$defs/tree"}
            }
        }));
        assert_eq!(
            out["properties"]["at"],
            json!({"description": "where", "type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]})
        );
        assert_eq!(out["properties"]["who"], json!({"type": "string"}));
        assert_eq!(out["properties"]["far"], json!({}));
        assert_gemini_schema(&out, "$");
        assert!(!out.to_string().contains("$ref"));
    }

    #[test]
    fn arrays_get_items_and_objects_lose_empty_properties() {
        let out = clean(json!({
            "type": "object",
            "properties": {
                "any": {"type": "array"},
                "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
                "same": {"type": "array", "items": [{"type": "string"}, {"type": "string"}]},
                "empty": {"type": "object", "properties": {}, "required": ["x"]},
                "implied": {"properties": {"a": {"type": "boolean"}}},
                "wrong": {"type": "string", "properties": {"a": {}}, "items": {}}
            }
        }));
        assert_eq!(
            out["properties"],
            json!({
                "any": {"type": "array", "items": {}},
                "pair": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                "same": {"type": "array", "items": {"type": "string"}},
                "empty": {"type": "object"},
                "implied": {"type": "object", "properties": {"a": {"type": "boolean"}}},
                "wrong": {"type": "string"}
            })
        );
        assert_gemini_schema(&out, "$");
    }

    #[test]
    fn all_of_branches_are_merged() {
        let out = clean(json!({
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"type": "object", "properties": {"b": {"type": "integer"}}, "required": ["b"]}
            ]
        }));
        assert_eq!(
            out,
            json!({
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                "required": ["a", "b"]
            })
        );
    }

    #[test]
    fn a_definition_used_everywhere_is_cut_off_instead_of_growing_without_bound() {
        let mut defs = serde_json::Map::new();
        for level in 0..30 {
            let next = json!({"$ref": format!("#/$defs/d{}", level + 1)});
            let properties: serde_json::Map<String, Value> =
                (0..8).map(|i| (format!("p{i}"), next.clone())).collect();
            defs.insert(
                format!("d{level}"),
                json!({"type": "object", "properties": properties}),
            );
        }
        let schema = json!({"type": "object", "$defs": defs, "properties": {"root": {"$ref": "#/$defs/d0"}}});
        let out = clean(schema);
        assert!(out.to_string().len() < 4 << 20);
        assert_gemini_schema(&out, "$");
    }

    #[test]
    fn a_tool_without_arguments_has_no_parameters() {
        for schema in [
            json!({"type": "object", "properties": {}}),
            json!({"type": "object"}),
            json!({"type": "object", "additionalProperties": false}),
            json!(true),
        ] {
            assert_eq!(parameters(&schema), None, "{schema}");
        }
    }
}
