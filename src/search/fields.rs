//! The STAC API *Fields* extension: choosing which fields of an Item a response carries.
//!
//! [`Fields`] holds the `include` and `exclude` lists of a request; [`Fields::apply`] (or,
//! for many items, [`Fields::compile`] then [`Selection::apply`]) cuts one Item down to the
//! selected fields.
//!
//! # What the specification says
//!
//! The extension (`stac-api-extensions/fields`, v1.0.0, conformance classes
//! `https://api.stacspec.org/v1.0.0/item-search#fields` and `…/ogcapi-features#fields`)
//! adds a `fields` object with two string arrays, `include` and `exclude`, to a search
//! request. Its *Overview* and *Include/Exclude Semantics* sections say, paraphrased:
//!
//! - **No `fields` at all** (*Overview*): the full Item is returned; the response must be a
//!   valid ItemCollection.
//! - **Semantics 1 — the default set**: when `fields` is given but neither list names
//!   anything, return only `type`, `stac_version`, `id`, `geometry`, `bbox`, `links`,
//!   `assets` and `properties.datetime`; when `properties.datetime` is null, also
//!   `properties.start_datetime` and `properties.end_datetime`. This set makes the answer a
//!   valid STAC Item.
//! - **Semantics 2 — only `include`**: the included fields are the only ones returned.
//! - **Semantics 3 — only `exclude`, `include` missing (POST)**: every field except the
//!   excluded ones.
//! - **Semantics 4 — `exclude` with `include` null or empty (POST), or a GET with only
//!   `-` fields**: the excluded fields are taken out of the *default set*.
//! - **Semantics 5 — nested paths**: the most specific path is honoured first, and at equal
//!   specificity `include` is preferred over `exclude`. So with `properties` excluded and
//!   `properties.datetime` included, `properties` holds only `datetime` (5.1); with
//!   `properties` included and `properties.datetime` excluded, `properties` holds
//!   everything but `datetime` (5.2).
//! - **Semantics 6**: a field in both lists is included.
//! - **Semantics 7**: a field in `exclude` but not in `include` is excluded.
//! - *Overview*: naming a field the Item does not have is not an error; the Item simply
//!   lacks it. Implementations may require property names to carry the `properties.` prefix
//!   or not; this one requires it (`properties.eo:cloud_cover`, not `eo:cloud_cover`).
//!
//! # What this module does
//!
//! A field name is a path of object keys separated by `.`: `assets.B01.href` is the `href`
//! key of the `B01` key of `assets`. Only `.` separates; every other character (`:`, `-`,
//! quotes, spaces, …) is part of a key and is matched exactly. A name with an empty segment
//! (`""`, `.a`, `a.`, `a..b`) names nothing and is ignored, as if it were not in its list.
//! A path that goes through a value which is not an object (`id.x`, `links.0`), or to a key
//! the Item lacks, selects nothing — arrays are never entered.
//!
//! The mode is chosen from the two lists, after dropping names that name nothing:
//!
//! | `include` | `exclude` | result |
//! | --------- | --------- | ------ |
//! | empty     | empty     | the Item unchanged (the "no `fields`" case, *Overview*) |
//! | empty     | given     | the default set minus the excluded paths (Semantics 4) |
//! | given     | any       | only what is included, minus what is excluded, most specific path first (Semantics 2, 5, 6, 7) |
//!
//! The [`Fields`] struct cannot tell a *missing* `include` from an *empty* one, nor an absent
//! `fields` from an empty one, so: two empty lists are read as "no `fields`" (full Item), and
//! `exclude` alone is read as Semantics 4 (default set), which is also what the spec asks for
//! a GET with only `-` fields. The caller that wants Semantics 1 for an explicit empty
//! `fields` uses [`Selection::default_set`].
//!
//! Within the default-set mode (Semantics 4), excluding a path removes it and everything
//! below it from the default set, whatever defaults are more specific: excluding
//! `properties` drops `properties.datetime` too (it is a set difference, not a contest
//! between two request lists).
//!
//! When a path is kept, its whole value is kept — except for the parts that a more specific
//! path excludes. An object that appears only because something inside it is included (say
//! `properties` for `properties.eo:cloud_cover`) is left out when none of those insides
//! exist; an object included by its own name stays even when excludes empty it.
//!
//! Key order follows the input Item. Values are moved, never cloned. The work is linear in
//! the total length of the names plus the size of the parts of the Item the names reach;
//! names with more than [`MAX_DEPTH`] segments match nothing (no parsed JSON document nests
//! that deep) and are not stored, so hostile lists cannot exhaust the stack.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// The default set of Semantics 1: the fields of a minimal valid STAC Item.
pub const DEFAULT_INCLUDE: [&str; 8] =
    ["type", "stac_version", "id", "geometry", "bbox", "links", "assets", "properties.datetime"];

/// Added to [`DEFAULT_INCLUDE`] when the Item's `properties.datetime` is null (Semantics 1).
/// An Item whose `properties` has no `datetime` key is treated the same way.
pub const DEFAULT_INCLUDE_WHEN_DATETIME_NULL: [&str; 2] =
    ["properties.start_datetime", "properties.end_datetime"];

/// Names with more segments than this match nothing and are not stored. serde_json refuses
/// to parse documents nested deeper than 128 levels, so no stored Item has such a path.
pub const MAX_DEPTH: usize = 256;

/// Include/exclude lists, as parsed from a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    /// Field names to include (dotted paths).
    pub include: Vec<String>,
    /// Field names to exclude (dotted paths).
    pub exclude: Vec<String>,
}

impl Fields {
    /// Builds the lists from anything that yields strings.
    pub fn new<I, E>(include: I, exclude: E) -> Fields
    where
        I: IntoIterator,
        I::Item: Into<String>,
        E: IntoIterator,
        E::Item: Into<String>,
    {
        Fields {
            include: include.into_iter().map(Into::into).collect(),
            exclude: exclude.into_iter().map(Into::into).collect(),
        }
    }

    /// True when neither list names anything: items are returned whole.
    ///
    /// Names with an empty segment (`""`, `a..b`, `.a`) name nothing, so lists holding only
    /// such names count as empty.
    pub fn is_empty(&self) -> bool {
        !self.include.iter().any(|n| names_something(n))
            && !self.exclude.iter().any(|n| names_something(n))
    }

    /// Prepares the selection once, for applying it to many items.
    pub fn compile(&self) -> Selection {
        let has_include = self.include.iter().any(|n| names_something(n));
        let has_exclude = self.exclude.iter().any(|n| names_something(n));
        let mode = if !has_include && !has_exclude {
            Mode::Whole
        } else if has_include {
            // Semantics 2, 5, 6, 7.
            let mut trie = Node::default();
            for name in &self.include {
                if let Some(node) = trie.insert(name) {
                    // Semantics 6: include beats exclude on the same path.
                    node.mark = Some(Mark::Include);
                }
            }
            for name in &self.exclude {
                if let Some(node) = trie.insert(name) {
                    node.mark.get_or_insert(Mark::Exclude);
                }
            }
            Mode::Select { trie, when_datetime_null: None, root: None }
        } else {
            // Semantics 4: the default set minus the excluded paths.
            default_set_minus(&self.exclude)
        };
        Selection { mode }
    }

    /// Applies the selection to one item.
    pub fn apply(&self, item: Map<String, Value>) -> Map<String, Value> {
        self.compile().apply(item)
    }
}

impl From<&stac::api::Fields> for Fields {
    /// Copies the lists as the `stac` crate parsed them (its GET parser already strips the
    /// `-`/`+` prefixes and drops empty entries).
    fn from(fields: &stac::api::Fields) -> Fields {
        Fields { include: fields.include.clone(), exclude: fields.exclude.clone() }
    }
}

/// A [`Fields`] prepared for applying to many items (see [`Fields::compile`]).
#[derive(Debug, Clone)]
pub struct Selection {
    mode: Mode,
}

#[derive(Debug, Clone)]
enum Mode {
    /// Neither list names anything: the Item is returned unchanged.
    Whole,
    /// Keep what the trie selects. In the default-set mode, `when_datetime_null` is the trie
    /// to use for Items whose `properties.datetime` is null or missing.
    Select { trie: Node, when_datetime_null: Option<Node>, root: Option<Mark> },
}

/// The default set (Semantics 1) minus the paths in `exclude`; a set difference, so an
/// excluded path takes everything below it along.
fn default_set_minus(exclude: &[String]) -> Mode {
    let build = |extra: &[&str]| {
        let mut trie = Node::default();
        for name in DEFAULT_INCLUDE.iter().chain(extra) {
            if let Some(node) = trie.insert(name) {
                node.mark = Some(Mark::Include);
            }
        }
        for name in exclude {
            trie.exclude_subtree(name);
        }
        trie
    };
    Mode::Select {
        trie: build(&[]),
        when_datetime_null: Some(build(&DEFAULT_INCLUDE_WHEN_DATETIME_NULL)),
        root: None,
    }
}

impl Selection {
    /// The default set alone (Semantics 1): for a request whose `fields` is present but names
    /// nothing (`?fields=`, `"fields": {}`), which [`Fields`] cannot tell from an absent one.
    /// Includes `properties.start_datetime`/`end_datetime` when `properties.datetime` is null.
    pub fn default_set() -> Selection {
        Selection { mode: default_set_minus(&[]) }
    }

    /// Everything but the excluded paths (Semantics 3: a POST `fields` object with `exclude`
    /// and no `include` member).
    pub fn all_except(exclude: &[String]) -> Selection {
        let mut trie = Node::default();
        for name in exclude {
            trie.exclude_subtree(name);
        }
        Selection {
            mode: Mode::Select { trie, when_datetime_null: None, root: Some(Mark::Include) },
        }
    }

    /// True when items pass through unchanged.
    pub fn is_whole(&self) -> bool {
        matches!(self.mode, Mode::Whole)
    }

    /// Applies the selection to one item.
    pub fn apply(&self, item: Map<String, Value>) -> Map<String, Value> {
        match &self.mode {
            Mode::Whole => item,
            Mode::Select { trie, when_datetime_null, root } => {
                let trie = match when_datetime_null {
                    Some(alt) if datetime_is_null(&item) => alt,
                    _ => trie,
                };
                select(item, trie, *root)
            }
        }
    }
}

/// Whether the item's `properties` object has a null or no `datetime`.
fn datetime_is_null(item: &Map<String, Value>) -> bool {
    match item.get("properties") {
        Some(Value::Object(properties)) => properties.get("datetime").is_none_or(Value::is_null),
        _ => false,
    }
}

/// What a request says about one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Include,
    Exclude,
}

/// One path segment of the requested names; the root stands for the Item itself.
#[derive(Debug, Clone, Default)]
struct Node {
    mark: Option<Mark>,
    children: HashMap<String, Node>,
}

impl Node {
    /// Creates the nodes of `name`'s path and returns the last one, or `None` when the name
    /// names nothing (an empty segment) or is too deep to match anything.
    fn insert(&mut self, name: &str) -> Option<&mut Node> {
        if !valid_path(name) {
            return None;
        }
        let mut node = self;
        for segment in name.split('.') {
            node = node.children.entry(segment.to_owned()).or_default();
        }
        Some(node)
    }

    /// Marks `name`'s path excluded and forgets everything below it (default-set mode: a set
    /// difference, so nothing under an excluded path survives). Stops early under a path
    /// already excluded.
    fn exclude_subtree(&mut self, name: &str) {
        if !valid_path(name) {
            return;
        }
        let mut node = self;
        for segment in name.split('.') {
            if node.mark == Some(Mark::Exclude) && node.children.is_empty() {
                return;
            }
            node = node.children.entry(segment.to_owned()).or_default();
        }
        node.mark = Some(Mark::Exclude);
        node.children = HashMap::new();
    }
}

/// Whether the name has at least one segment and no empty one.
fn names_something(name: &str) -> bool {
    !name.is_empty() && !name.split('.').any(str::is_empty)
}

/// Whether the name names something and is shallow enough to be stored.
fn valid_path(name: &str) -> bool {
    names_something(name) && name.split('.').nth(MAX_DEPTH).is_none()
}

/// Keeps the parts of `object` that `node`'s children select; `inherited` is the mark of the
/// nearest marked ancestor (the most specific decision so far), `None` when there is none.
fn select(object: Map<String, Value>, node: &Node, inherited: Option<Mark>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in object {
        let Some(child) = node.children.get(key.as_str()) else {
            if inherited == Some(Mark::Include) {
                out.insert(key, value);
            }
            continue;
        };
        // Semantics 5: a mark on the more specific path overrides the inherited one.
        let mark = child.mark.or(inherited);
        let included = mark == Some(Mark::Include);
        match value {
            Value::Object(inner) if !child.children.is_empty() => {
                let kept = select(inner, child, mark);
                // An object named for its own sake stays even if emptied; one reached only
                // on the way to deeper names stays only if something in it was found.
                if included || !kept.is_empty() {
                    out.insert(key, Value::Object(kept));
                }
            }
            value => {
                if included {
                    out.insert(key, value);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn apply(include: &[&str], exclude: &[&str], item: Value) -> Value {
        let fields = Fields::new(include.iter().copied(), exclude.iter().copied());
        // The compiled selection must agree with the one-shot form.
        let compiled = Value::Object(fields.compile().apply(obj(item.clone())));
        let out = Value::Object(fields.apply(obj(item)));
        assert_eq!(out, compiled);
        assert_eq!(fields.is_empty(), fields.compile().is_whole());
        out
    }

    fn keys(value: &Value) -> Vec<&str> {
        value.as_object().unwrap().keys().map(String::as_str).collect()
    }

    /// A small but complete STAC Item.
    fn item() -> Value {
        json!({
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
            "id": "item-1",
            "geometry": {"type": "Point", "coordinates": [1.0, 2.0]},
            "bbox": [1.0, 2.0, 1.0, 2.0],
            "properties": {
                "datetime": "2020-01-01T00:00:00Z",
                "eo:cloud_cover": 12.5,
                "foo": "bar",
                "created": "2020-02-02T00:00:00Z",
                "nested": {"a": 1, "b": {"c": 2, "d": 3}}
            },
            "links": [{"rel": "self", "href": "https://example.com/item-1"}],
            "assets": {
                "B01": {"href": "b01.tif", "type": "image/tiff", "roles": ["data"]},
                "thumbnail": {"href": "thumb.png", "type": "image/png"}
            },
            "collection": "c1"
        })
    }

    // --- No fields: the item is returned unchanged (Overview). ---

    #[test]
    fn empty_lists_return_item_unchanged() {
        assert!(Fields::default().is_empty());
        assert_eq!(apply(&[], &[], item()), item());
        assert!(Fields::default().compile().is_whole());
    }

    #[test]
    fn unchanged_item_keeps_key_order() {
        let out = apply(&[], &[], item());
        assert_eq!(keys(&out), keys(&item()));
    }

    #[test]
    fn names_that_name_nothing_count_as_absent() {
        for bad in ["", ".", "..", ".a", "a.", "a..b", "properties..datetime"] {
            let fields = Fields::new([bad], [bad]);
            assert!(fields.is_empty(), "{bad:?}");
            assert_eq!(fields.apply(obj(item())), obj(item()), "{bad:?}");
        }
        // A bad include next to a good exclude: the exclude-only mode (Semantics 4).
        let out = apply(&["a..b"], &["geometry"], item());
        assert_eq!(
            keys(&out),
            ["type", "stac_version", "id", "bbox", "properties", "links", "assets"]
        );
        // A bad exclude next to a good include: ignored.
        let out = apply(&["id"], &[".id", "id."], item());
        assert_eq!(out, json!({"id": "item-1"}));
    }

    #[test]
    fn empty_key_in_document_is_never_selected() {
        let doc = json!({"": 1, "a": {"": 2}});
        assert_eq!(apply(&[""], &[], doc.clone()), doc);
        assert_eq!(apply(&["a."], &["x"], doc.clone()), json!({}));
    }

    // --- Semantics 1 / 4: the default set. ---

    #[test]
    fn default_include_is_the_spec_set() {
        assert_eq!(
            DEFAULT_INCLUDE,
            [
                "type",
                "stac_version",
                "id",
                "geometry",
                "bbox",
                "links",
                "assets",
                "properties.datetime"
            ]
        );
    }

    #[test]
    fn explicit_default_include_gives_minimal_valid_item() {
        // The spec's "Explicitly get a valid STAC Item" example; also how a caller gets
        // Semantics 1 for an explicit empty `fields`.
        let out = apply(&DEFAULT_INCLUDE, &[], item());
        assert_eq!(
            out,
            json!({
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": "item-1",
                "geometry": {"type": "Point", "coordinates": [1.0, 2.0]},
                "bbox": [1.0, 2.0, 1.0, 2.0],
                "properties": {"datetime": "2020-01-01T00:00:00Z"},
                "links": [{"rel": "self", "href": "https://example.com/item-1"}],
                "assets": {
                    "B01": {"href": "b01.tif", "type": "image/tiff", "roles": ["data"]},
                    "thumbnail": {"href": "thumb.png", "type": "image/png"}
                }
            })
        );
    }

    #[test]
    fn exclude_only_subtracts_from_default_set() {
        // Semantics 4 and the spec's "-geometry" example (GET with only `-` fields).
        let out = apply(&[], &["geometry"], item());
        assert_eq!(
            out,
            json!({
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": "item-1",
                "bbox": [1.0, 2.0, 1.0, 2.0],
                "properties": {"datetime": "2020-01-01T00:00:00Z"},
                "links": [{"rel": "self", "href": "https://example.com/item-1"}],
                "assets": {
                    "B01": {"href": "b01.tif", "type": "image/tiff", "roles": ["data"]},
                    "thumbnail": {"href": "thumb.png", "type": "image/png"}
                }
            })
        );
    }

    #[test]
    fn exclude_only_of_non_default_field_gives_default_set() {
        let out = apply(&[], &["collection", "properties.foo"], item());
        assert_eq!(out, apply(&DEFAULT_INCLUDE, &[], item()));
    }

    #[test]
    fn exclude_only_nested_under_default() {
        let out = apply(&[], &["assets.B01", "assets.thumbnail.type"], item());
        assert_eq!(out["assets"], json!({"thumbnail": {"href": "thumb.png"}}));
        assert_eq!(out["properties"], json!({"datetime": "2020-01-01T00:00:00Z"}));
    }

    #[test]
    fn exclude_only_parent_of_default_removes_it_all() {
        // Set difference: excluding `properties` takes `properties.datetime` with it.
        let out = apply(&[], &["properties"], item());
        assert!(out.get("properties").is_none());
        let out = apply(&[], &["properties.datetime"], item());
        assert!(out.get("properties").is_none(), "emptied, not named: left out");
        // In either order.
        let out = apply(&[], &["properties.datetime", "properties"], item());
        assert!(out.get("properties").is_none());
        let out = apply(&[], &["properties", "properties.datetime"], item());
        assert!(out.get("properties").is_none());
    }

    #[test]
    fn exclude_only_everything_gives_empty_object() {
        let out = apply(&[], &DEFAULT_INCLUDE, item());
        assert_eq!(out, json!({}));
    }

    #[test]
    fn default_set_with_null_datetime_adds_start_and_end() {
        let doc = json!({
            "type": "Feature",
            "id": "x",
            "properties": {
                "datetime": null,
                "start_datetime": "2020-01-01T00:00:00Z",
                "end_datetime": "2020-01-02T00:00:00Z",
                "foo": 1
            }
        });
        let out = apply(&[], &["geometry"], doc.clone());
        assert_eq!(
            out,
            json!({
                "type": "Feature",
                "id": "x",
                "properties": {
                    "datetime": null,
                    "start_datetime": "2020-01-01T00:00:00Z",
                    "end_datetime": "2020-01-02T00:00:00Z"
                }
            })
        );
        // They can be excluded like any default field.
        let out = apply(&[], &["properties.end_datetime"], doc.clone());
        assert_eq!(
            out["properties"],
            json!({"datetime": null, "start_datetime": "2020-01-01T00:00:00Z"})
        );
        // A missing datetime is treated as null.
        let doc = json!({"properties": {"start_datetime": "s", "end_datetime": "e", "x": 1}});
        let out = apply(&[], &["id"], doc);
        assert_eq!(out, json!({"properties": {"start_datetime": "s", "end_datetime": "e"}}));
    }

    #[test]
    fn default_set_selection_is_semantics_1() {
        let selection = Selection::default_set();
        assert!(!selection.is_whole());
        let out = Value::Object(selection.apply(obj(item())));
        assert_eq!(out, apply(&DEFAULT_INCLUDE, &[], item()));
        let doc = json!({"id": "x", "properties": {"datetime": null, "end_datetime": "e", "f": 1}});
        let out = Value::Object(selection.apply(obj(doc)));
        assert_eq!(out, json!({"id": "x", "properties": {"datetime": null, "end_datetime": "e"}}));
    }

    #[test]
    fn default_set_with_set_datetime_leaves_start_and_end_out() {
        let doc = json!({"properties": {
            "datetime": "2020-01-01T00:00:00Z",
            "start_datetime": "2020-01-01T00:00:00Z",
            "end_datetime": "2020-01-02T00:00:00Z"
        }});
        let out = apply(&[], &["id"], doc);
        assert_eq!(out, json!({"properties": {"datetime": "2020-01-01T00:00:00Z"}}));
    }

    #[test]
    fn explicit_include_does_not_add_start_end() {
        // The null-datetime addition belongs to the default set only.
        let doc = json!({"properties": {"datetime": null, "start_datetime": "s"}});
        let out = apply(&["properties.datetime"], &[], doc);
        assert_eq!(out, json!({"properties": {"datetime": null}}));
    }

    // --- Semantics 2: only include. ---

    #[test]
    fn include_only_returns_only_included() {
        let out = apply(&["id", "collection"], &[], item());
        assert_eq!(out, json!({"id": "item-1", "collection": "c1"}));
    }

    #[test]
    fn include_does_not_union_with_default_set() {
        let out = apply(&["properties.foo"], &[], item());
        assert_eq!(out, json!({"properties": {"foo": "bar"}}));
    }

    #[test]
    fn spec_example_minimal_subset() {
        // `?fields=id,type,geometry,properties.eo:cloud_cover`
        let out = apply(&["id", "type", "geometry", "properties.eo:cloud_cover"], &[], item());
        assert_eq!(
            out,
            json!({
                "type": "Feature",
                "id": "item-1",
                "geometry": {"type": "Point", "coordinates": [1.0, 2.0]},
                "properties": {"eo:cloud_cover": 12.5}
            })
        );
    }

    #[test]
    fn include_object_keeps_all_of_it() {
        let out = apply(&["properties"], &[], item());
        assert_eq!(out, json!({"properties": item()["properties"].clone()}));
    }

    #[test]
    fn include_nested_keeps_only_that_key() {
        let out = apply(&["assets.B01.href"], &[], item());
        assert_eq!(out, json!({"assets": {"B01": {"href": "b01.tif"}}}));
        let out = apply(&["properties.nested.b.c"], &[], item());
        assert_eq!(out, json!({"properties": {"nested": {"b": {"c": 2}}}}));
    }

    #[test]
    fn include_parent_and_child_keeps_parent_whole() {
        let out = apply(&["properties", "properties.foo"], &[], item());
        assert_eq!(out["properties"], item()["properties"]);
        let out = apply(&["properties.foo", "properties"], &[], item());
        assert_eq!(out["properties"], item()["properties"]);
    }

    #[test]
    fn include_missing_field_is_silently_absent() {
        // Overview: no error, the entity simply lacks the field.
        let out = apply(&["id", "properties.eo:snow_cover"], &[], item());
        assert_eq!(out, json!({"id": "item-1"}));
        let out = apply(&["nope"], &[], item());
        assert_eq!(out, json!({}));
    }

    #[test]
    fn include_through_non_object_is_ignored() {
        let out = apply(&["id.x", "bbox.0", "links.0.href", "collection"], &[], item());
        assert_eq!(out, json!({"collection": "c1"}));
        // Through null and through a string inside properties.
        let doc = json!({"p": {"n": null, "s": "str"}});
        let out = apply(&["p.n.x", "p.s.y"], &[], doc);
        assert_eq!(out, json!({}));
    }

    #[test]
    fn included_object_named_for_itself_stays_when_empty() {
        let doc = json!({"a": {}, "b": {"c": 1}});
        let out = apply(&["a", "b.x"], &[], doc);
        assert_eq!(out, json!({"a": {}}));
    }

    #[test]
    fn keys_with_colons_and_odd_characters() {
        let doc = json!({"properties": {
            "eo:cloud_cover": 1,
            "a-b c": 2,
            "'": 3,
            "\"": 4,
            "--": 5,
            "é/ü": 6,
            "x": 7
        }});
        let out = apply(
            &[
                "properties.eo:cloud_cover",
                "properties.a-b c",
                "properties.'",
                "properties.\"",
                "properties.--",
                "properties.é/ü",
            ],
            &[],
            doc,
        );
        assert_eq!(
            out,
            json!({"properties": {
                "eo:cloud_cover": 1, "a-b c": 2, "'": 3, "\"": 4, "--": 5, "é/ü": 6
            }})
        );
    }

    #[test]
    fn unprefixed_property_names_are_not_properties() {
        let out = apply(&["eo:cloud_cover", "datetime"], &[], item());
        assert_eq!(out, json!({}));
    }

    #[test]
    fn names_are_case_sensitive_and_not_trimmed() {
        let out = apply(&["ID", " id", "id "], &[], item());
        assert_eq!(out, json!({}));
    }

    // --- Semantics 5: most specific path first, include preferred. ---

    #[test]
    fn spec_example_exclude_a_nested_field() {
        // `?fields=id,properties,-properties.foo` (Semantics 5.2)
        let out = apply(&["id", "properties"], &["properties.foo"], item());
        let mut properties = item()["properties"].clone();
        properties.as_object_mut().unwrap().shift_remove("foo");
        assert_eq!(out, json!({"id": "item-1", "properties": properties}));
    }

    #[test]
    fn include_nested_of_excluded_parent() {
        // Semantics 5.1: properties excluded, properties.datetime included.
        let out = apply(&["properties.datetime"], &["properties"], item());
        assert_eq!(out, json!({"properties": {"datetime": "2020-01-01T00:00:00Z"}}));
    }

    #[test]
    fn alternating_specificity() {
        // include a, exclude a.b, include a.b.c, exclude a.b.c.d
        let doc = json!({"a": {
            "x": 1,
            "b": {"y": 2, "c": {"z": 3, "d": 4}}
        }, "other": 0});
        let out = apply(&["a", "properties.nested.b.c"], &[], doc.clone());
        assert_eq!(out, json!({"a": doc["a"].clone()}));
        let out = apply(&["a", "a.b.c"], &["a.b", "a.b.c.d"], doc);
        assert_eq!(out, json!({"a": {"x": 1, "b": {"c": {"z": 3}}}}));
    }

    #[test]
    fn excluding_all_children_of_included_object_leaves_it_empty() {
        let doc = json!({"a": {"b": 1, "c": 2}});
        let out = apply(&["a"], &["a.b", "a.c"], doc);
        assert_eq!(out, json!({"a": {}}));
    }

    // --- Semantics 6 and 7, and the spec's summary table. ---

    #[test]
    fn same_field_in_both_is_included() {
        let out = apply(&["id"], &["id"], item());
        assert_eq!(out, json!({"id": "item-1"}));
        let out = apply(&["properties.foo"], &["properties.foo"], item());
        assert_eq!(out, json!({"properties": {"foo": "bar"}}));
    }

    #[test]
    fn spec_table() {
        let doc = json!({"a": {"b": 1, "c": 2}, "b": 3, "z": 4});
        // ["a","b"] / none -> ["a","b"]
        assert_eq!(apply(&["a", "b"], &[], doc.clone()), json!({"a": {"b": 1, "c": 2}, "b": 3}));
        // ["a","b"] / ["a"] -> ["a","b"]
        assert_eq!(apply(&["a", "b"], &["a"], doc.clone()), json!({"a": {"b": 1, "c": 2}, "b": 3}));
        // ["a"] / ["a","b"] -> ["a"]
        assert_eq!(apply(&["a"], &["a", "b"], doc.clone()), json!({"a": {"b": 1, "c": 2}}));
        // ["a.b"] / ["a"] -> a.b is the only field in a
        assert_eq!(apply(&["a.b"], &["a"], doc.clone()), json!({"a": {"b": 1}}));
        // ["a"] / ["a.b"] -> a without a.b
        assert_eq!(apply(&["a"], &["a.b"], doc), json!({"a": {"c": 2}}));
    }

    #[test]
    fn excluded_not_included_is_absent() {
        // Semantics 7.
        let out = apply(&["id"], &["geometry", "assets", "properties.foo"], item());
        assert_eq!(out, json!({"id": "item-1"}));
    }

    #[test]
    fn list_order_does_not_matter() {
        let a = apply(&["a.b", "a"], &["a.b.c", "a.b"], json!({"a": {"b": {"c": 1, "d": 2}}}));
        let b = apply(&["a", "a.b"], &["a.b", "a.b.c"], json!({"a": {"b": {"c": 1, "d": 2}}}));
        assert_eq!(a, b);
        assert_eq!(a, json!({"a": {"b": {"d": 2}}}));
    }

    // --- Order, compile, duplicates. ---

    #[test]
    fn output_follows_document_order_not_list_order() {
        let out =
            apply(&["collection", "assets.thumbnail", "assets.B01", "id", "type"], &[], item());
        assert_eq!(keys(&out), ["type", "id", "assets", "collection"]);
        assert_eq!(keys(&out["assets"]), ["B01", "thumbnail"]);
        let out =
            apply(&["properties.nested", "properties.foo", "properties.datetime"], &[], item());
        assert_eq!(keys(&out["properties"]), ["datetime", "foo", "nested"]);
    }

    #[test]
    fn compiled_selection_matches_apply_and_is_reusable() {
        let cases: [(&[&str], &[&str]); 5] = [
            (&[], &[]),
            (&[], &["geometry"]),
            (&["id", "properties"], &["properties.foo"]),
            (&["properties.datetime"], &["properties"]),
            (&["nope"], &[]),
        ];
        for (include, exclude) in cases {
            let fields = Fields::new(include.iter().copied(), exclude.iter().copied());
            let selection = fields.compile();
            for _ in 0..2 {
                assert_eq!(selection.apply(obj(item())), fields.apply(obj(item())));
            }
        }
        // The default-set mode picks the right trie per item.
        let selection = Fields::new(Vec::<String>::new(), ["id"]).compile();
        let with = obj(json!({"properties": {"datetime": "t", "start_datetime": "s"}}));
        let without = obj(json!({"properties": {"datetime": null, "start_datetime": "s"}}));
        assert_eq!(Value::Object(selection.apply(with)), json!({"properties": {"datetime": "t"}}));
        assert_eq!(
            Value::Object(selection.apply(without)),
            json!({"properties": {"datetime": null, "start_datetime": "s"}})
        );
    }

    #[test]
    fn duplicates_are_harmless() {
        let out = apply(&["id", "id", "id"], &["x", "x"], item());
        assert_eq!(out, json!({"id": "item-1"}));
    }

    #[test]
    fn non_object_properties_in_default_mode() {
        // No panic when `properties` is not an object; `properties.datetime` goes through a
        // non-object, so it selects nothing and `properties` is left out.
        let doc = json!({"id": "x", "properties": "weird"});
        assert_eq!(apply(&[], &["geometry"], doc), json!({"id": "x"}));
        let doc = json!({"id": "x", "properties": null});
        assert_eq!(apply(&[], &["geometry"], doc), json!({"id": "x"}));
    }

    // --- Hostile input. ---

    #[test]
    fn thousands_of_fields() {
        let include: Vec<String> = (0..20_000).map(|i| format!("properties.f{i}")).collect();
        let exclude: Vec<String> = (0..20_000).map(|i| format!("properties.f{i}.sub{i}")).collect();
        let mut properties = Map::new();
        for i in (0..40_000).step_by(2) {
            properties.insert(format!("f{i}"), json!(i));
        }
        let doc = json!({"id": "x", "properties": properties});
        let fields = Fields::new(include, exclude);
        let out = Value::Object(fields.apply(obj(doc)));
        let kept = out["properties"].as_object().unwrap();
        assert_eq!(kept.len(), 10_000);
        assert_eq!(kept.keys().next().map(String::as_str), Some("f0"));
        assert_eq!(kept.keys().next_back().map(String::as_str), Some("f19998"));
    }

    #[test]
    fn very_long_names() {
        let long_key = "k".repeat(1_000_000);
        let doc = json!({ long_key.clone(): 1, "id": "x" });
        let out = apply(&[long_key.as_str()], &["id"], doc);
        assert_eq!(out.as_object().unwrap().len(), 1);
        assert_eq!(out[long_key.as_str()], json!(1));

        // A name of a million dots names nothing.
        let dots = ".".repeat(1_000_000);
        assert!(Fields::new([dots.as_str()], [dots.as_str()]).is_empty());
    }

    #[test]
    fn very_deep_names() {
        // Half a million segments: not stored (too deep), match nothing, no stack overflow.
        let deep = vec!["a"; 500_000].join(".");
        let doc = json!({"a": {"a": {"a": 1}}, "id": "x"});
        let fields = Fields::new([deep.as_str()], [deep.as_str()]);
        assert!(!fields.is_empty());
        assert_eq!(Value::Object(fields.apply(obj(doc.clone()))), json!({}));
        // As an exclude in the default-set mode.
        let fields = Fields::new(Vec::<String>::new(), [deep.as_str()]);
        assert_eq!(Value::Object(fields.apply(obj(doc))), json!({"id": "x"}));
    }

    #[test]
    fn deep_document_within_limit() {
        // A path exactly MAX_DEPTH segments long is honoured.
        let mut doc = json!("leaf");
        for _ in 0..MAX_DEPTH {
            doc = json!({ "a": doc });
        }
        let name = vec!["a"; MAX_DEPTH].join(".");
        let out = apply(&[name.as_str()], &[], doc.clone());
        assert_eq!(out, doc);
        let too_deep = vec!["a"; MAX_DEPTH + 1].join(".");
        assert_eq!(apply(&[too_deep.as_str()], &[], doc), json!({}));
    }

    #[test]
    fn injection_like_names() {
        let names = [
            "'",
            "\"",
            "--",
            "-",
            "+id",
            "id; DROP TABLE items",
            "properties.' OR 1=1 --",
            "$.id",
            "*",
            "properties.*",
            "\\",
            "\0",
            "id\n",
        ];
        let out = apply(&names, &names, item());
        assert_eq!(out, json!({}));
        let out = apply(&[], &names, item());
        assert_eq!(out, apply(&DEFAULT_INCLUDE, &[], item()));
    }

    #[test]
    fn from_stac_api_fields() {
        let parsed: stac::api::Fields = "id,+properties,-properties.foo".parse().unwrap();
        let fields = Fields::from(&parsed);
        assert_eq!(fields, Fields::new(["id", "properties"], ["properties.foo"]));
        let out = Value::Object(fields.apply(obj(item())));
        assert_eq!(keys(&out), ["id", "properties"]);
        assert!(out["properties"].get("foo").is_none());
        assert!(Fields::from(&stac::api::Fields::default()).is_empty());
    }

    #[test]
    fn struct_is_plain_data() {
        let fields = Fields { include: vec!["id".into()], exclude: vec![] };
        assert_eq!(fields.clone(), Fields::new(["id"], Vec::<String>::new()));
        assert!(!fields.is_empty());
        assert!(!Fields::new(Vec::<String>::new(), ["x"]).is_empty());
    }
}
