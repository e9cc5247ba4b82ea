//! The links of a static catalog, and the documents that carry them.
//!
//! * An item file is its stored document (compact JSON, key order and numbers as stored) with
//!   its `root`, `parent`, `collection` and `self` links replaced by the export's (first in
//!   `links`, in that order; `self` only for published catalogs) and every other link kept as
//!   stored, after them. An item without a `collection` field gets one, after `id`. It is
//!   assembled by splicing the stored text ([`item_document`]): the document is scanned once,
//!   and only its `links` member is looked into.
//! * A catalog, collection or part document is pretty-printed JSON (two-space indent, ending
//!   in a newline). Its links are `root`, `parent` (not for the root), `self` (published
//!   catalogs only), then one `child` per sub-catalog, collection or part and one `item` per
//!   item, in the tree's order; a stored collection's other links (license, about, …) follow.
//!   A stored collection's `root`, `parent`, `self`, `child`, `item` and `collection` links are
//!   dropped: they pointed into wherever the collection came from.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::CatalogType;
use super::paths::relative_href;

/// The `stac_version` of the catalogs and parts the export makes.
pub const STAC_VERSION: &str = "1.1.0";

const JSON: &str = "application/json";
const GEOJSON: &str = "application/geo+json";

/// Rels the export writes itself; stored ones are dropped.
const ITEM_OWN_RELS: &[&str] = &["root", "parent", "self", "collection"];
const NODE_OWN_RELS: &[&str] = &["root", "parent", "self", "child", "item", "collection"];

/// How hrefs are written.
#[derive(Debug, Clone)]
pub(crate) struct Hrefs {
    pub catalog_type: CatalogType,
    /// The base URL, ending in '/', for published catalogs.
    pub base: Option<String>,
}

impl Hrefs {
    /// The href of `to` in the document at `from` (paths relative to the export root).
    pub fn href(&self, from: &str, to: &str) -> String {
        match (self.catalog_type, &self.base) {
            (CatalogType::AbsolutePublished, Some(base)) => format!("{base}{to}"),
            _ => relative_href(from, to),
        }
    }

    /// The document's own absolute URL, for published catalogs.
    pub fn self_href(&self, path: &str) -> Option<String> {
        match self.catalog_type {
            CatalogType::SelfContained => None,
            _ => self.base.as_ref().map(|base| format!("{base}{path}")),
        }
    }
}

#[derive(Serialize)]
struct LinkOut<'a> {
    rel: &'a str,
    href: &'a str,
    #[serde(rename = "type")]
    media_type: &'a str,
}

fn push_link(out: &mut String, rel: &str, href: &str, media_type: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    let text = serde_json::to_string(&LinkOut { rel, href, media_type }).expect("serialises");
    out.push_str(&text);
}

/// The export's own links of an item at `path`: root, parent, collection, and self when
/// published, as compact JSON objects separated by commas.
pub(crate) fn item_links(
    hrefs: &Hrefs,
    path: &str,
    root: &str,
    parent: &str,
    collection: &str,
) -> String {
    let mut out = String::with_capacity(256);
    push_link(&mut out, "root", &hrefs.href(path, root), JSON);
    push_link(&mut out, "parent", &hrefs.href(path, parent), JSON);
    push_link(&mut out, "collection", &hrefs.href(path, collection), JSON);
    if let Some(own) = hrefs.self_href(path) {
        push_link(&mut out, "self", &own, GEOJSON);
    }
    out
}

/// A JSON object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A document's top-level members, with their values as the raw text.
struct Members<'a>(Vec<(Key<'a>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some((k, v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push((k, v));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct Rel<'a> {
    #[serde(borrow)]
    rel: Option<Cow<'a, str>>,
}

/// An item file: the stored document with the export's links (`own`, from [`item_links`])
/// in place of its root, parent, collection and self links, and a `collection` field when
/// it has none. Compact JSON ending in a newline, appended to `out`.
pub(crate) fn item_document(
    content: &str,
    own: &str,
    collection: &str,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    let members: Members = serde_json::from_str(content)?;
    let has_collection = members.0.iter().any(|(k, _)| k.0 == "collection");
    let has_links = members.0.iter().any(|(k, _)| k.0 == "links");
    out.reserve(content.len() + own.len() + 64);
    out.push(b'{');
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, name: &str| -> serde_json::Result<()> {
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, name)?;
        out.push(b':');
        Ok(())
    };
    for (name, value) in &members.0 {
        key(out, &name.0)?;
        if name.0 == "links" {
            write_links(out, own, value)?;
        } else {
            out.extend_from_slice(value.get().as_bytes());
        }
        if name.0 == "id" && !has_collection {
            key(out, "collection")?;
            serde_json::to_writer(&mut *out, collection)?;
        }
    }
    if !has_links {
        key(out, "links")?;
        out.push(b'[');
        out.extend_from_slice(own.as_bytes());
        out.push(b']');
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

fn write_links(out: &mut Vec<u8>, own: &str, stored: &RawValue) -> serde_json::Result<()> {
    out.push(b'[');
    out.extend_from_slice(own.as_bytes());
    let mut any = !own.is_empty();
    // A `links` that is not an array of objects is kept out: the export's links replace it.
    if let Ok(links) = serde_json::from_str::<Vec<&RawValue>>(stored.get()) {
        for link in links {
            let rel = serde_json::from_str::<Rel>(link.get()).ok().and_then(|r| r.rel);
            if rel.as_deref().is_some_and(|r| ITEM_OWN_RELS.contains(&r)) {
                continue;
            }
            if any {
                out.push(b',');
            }
            any = true;
            out.extend_from_slice(link.get().as_bytes());
        }
    }
    out.push(b']');
    Ok(())
}

/// An item as stored, with a `collection` field (after `id`) when it has none: one line of
/// NDJSON, appended to `out`.
pub(crate) fn with_collection(
    content: &str,
    collection: &str,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    let members: Members = serde_json::from_str(content)?;
    if members.0.iter().any(|(k, _)| k.0 == "collection") {
        out.extend_from_slice(content.as_bytes());
        out.push(b'\n');
        return Ok(());
    }
    out.push(b'{');
    for (i, (name, value)) in members.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, &name.0)?;
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
        if name.0 == "id" {
            out.extend_from_slice(b",\"collection\":");
            serde_json::to_writer(&mut *out, collection)?;
        }
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

/// One entry of a node document's links.
pub(crate) struct Entry {
    pub rel: &'static str,
    /// The target's path relative to the export root.
    pub path: String,
    pub media_type: &'static str,
    pub title: Option<String>,
}

impl Entry {
    pub fn child(path: String, title: Option<String>) -> Entry {
        Entry { rel: "child", path, media_type: JSON, title }
    }
    pub fn item(path: String) -> Entry {
        Entry { rel: "item", path, media_type: GEOJSON, title: None }
    }
}

/// A catalog, collection or part document at `path`: `base` (a JSON object) with its links
/// replaced. `parent` is the parent document's path (none for the root).
pub(crate) fn node_document(
    hrefs: &Hrefs,
    mut base: Map<String, Value>,
    path: &str,
    root: &str,
    parent: Option<&str>,
    entries: &[Entry],
) -> Vec<u8> {
    let link = |rel: &str, to: &str, media_type: &str| json!({"rel": rel, "href": hrefs.href(path, to), "type": media_type});
    let mut links = vec![link("root", root, JSON)];
    if let Some(parent) = parent {
        links.push(link("parent", parent, JSON));
    }
    if let Some(own) = hrefs.self_href(path) {
        links.push(json!({"rel": "self", "href": own, "type": JSON}));
    }
    for entry in entries {
        let mut l = link(entry.rel, &entry.path, entry.media_type);
        if let Some(title) = &entry.title {
            l["title"] = json!(title);
        }
        links.push(l);
    }
    if let Some(Value::Array(stored)) = base.get("links") {
        for l in stored {
            let rel = l.get("rel").and_then(Value::as_str);
            if !rel.is_some_and(|r| NODE_OWN_RELS.contains(&r)) {
                links.push(l.clone());
            }
        }
    }
    base.insert("links".into(), Value::Array(links));
    let mut out = serde_json::to_vec_pretty(&base).expect("a JSON map always serialises");
    out.push(b'\n');
    out
}

/// A new Catalog document's members, without links.
pub(crate) fn catalog_base(id: &str, title: Option<&str>, description: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), json!("Catalog"));
    m.insert("id".into(), json!(id));
    m.insert("stac_version".into(), json!(STAC_VERSION));
    if let Some(title) = title {
        m.insert("title".into(), json!(title));
    }
    m.insert("description".into(), json!(description));
    m.insert("links".into(), json!([]));
    m
}

/// A 64-bit FNV-1a hash, as 16 hex digits: stable across builds and platforms.
pub(crate) fn fnv64(text: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in text.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_links_and_collection() {
        let stored = r#"{"type":"Feature","id":"a\"b","geometry":null,"links":[{"rel":"self","href":"x"},{"rel":"license","href":"l"}],"assets":{}}"#;
        let mut out = Vec::new();
        item_document(stored, r#"{"rel":"root","href":"r"}"#, "c", &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["collection"], "c");
        assert_eq!(v["links"], json!([{"rel":"root","href":"r"},{"rel":"license","href":"l"}]));
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["type", "id", "collection", "geometry", "links", "assets"]);
        let mut out = Vec::new();
        item_document(r#"{"id":"x","collection":"k"}"#, "", "c", &mut out).unwrap();
        assert_eq!(out, b"{\"id\":\"x\",\"collection\":\"k\",\"links\":[]}\n");
    }
}
