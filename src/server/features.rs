//! Items written out as the API returns them, without rebuilding each document.
//!
//! A stored item is compact JSON text. The API returns it with its own links (self, parent,
//! collection, root) in place of the stored ones; everything else goes out as stored. Parsing
//! every item into a `serde_json::Value` and serialising it again was most of the time a page
//! of items took, so the top-level members are read as raw JSON text ([`RawValue`]) and copied
//! through; only `links`, `id` and `collection` are parsed.

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{GEOJSON, JSON, encode, keep_links, link};

/// The top-level members of a JSON object, in order, each as raw JSON text.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A stored item as the API returns it: its links replaced by the API's own when it has a
/// collection (or `collection` is given for an item stored without one, which is then added).
/// Items returned with `fields` may have no `links` member: then none is added.
pub(super) fn item(
    text: &str,
    base: &str,
    collection: Option<&str>,
) -> Result<String, serde_json::Error> {
    let Members(members) = serde_json::from_str(text)?;
    let mut id = String::new();
    let mut stored_collection = None;
    for (key, raw) in &members {
        match key.as_str() {
            "id" => id = string(raw).unwrap_or_default(),
            "collection" => stored_collection = string(raw),
            _ => {}
        }
    }
    let added_collection = stored_collection.is_none() && collection.is_some();
    let collection = stored_collection.as_deref().or(collection);
    let mut out = String::with_capacity(text.len() + 512);
    out.push('{');
    for (n, (key, raw)) in members.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key)?);
        out.push(':');
        if key == "links" {
            let mut links = keep_links(Some(serde_json::from_str(raw.get())?));
            if let Some(collection) = collection {
                links.extend(own_links(base, collection, &id));
            }
            out.push_str(&serde_json::to_string(&links)?);
        } else {
            out.push_str(raw.get());
        }
    }
    if added_collection && let Some(collection) = collection {
        if !members.is_empty() {
            out.push(',');
        }
        out.push_str("\"collection\":");
        out.push_str(&serde_json::to_string(collection)?);
    }
    out.push('}');
    Ok(out)
}

/// A member's value when it is a JSON string.
fn string(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<Value>(raw.get()).ok()?.as_str().map(str::to_string)
}

/// The links the API gives an item.
fn own_links(base: &str, collection: &str, id: &str) -> [Value; 4] {
    let col = format!("{base}/collections/{}", encode(collection));
    [
        link("self", format!("{col}/items/{}", encode(id)), GEOJSON),
        link("parent", col.clone(), JSON),
        link("collection", col, JSON),
        link("root", format!("{base}/"), JSON),
    ]
}

/// A page of items as a GeoJSON FeatureCollection: the items (already written by [`item`]),
/// the page's links and its counts.
pub(super) fn feature_collection(
    features: &[String],
    links: &[Value],
    number_matched: u64,
) -> Result<String, serde_json::Error> {
    let size = features.iter().map(|f| f.len() + 1).sum::<usize>() + 1024;
    let mut out = String::with_capacity(size);
    out.push_str(r#"{"type":"FeatureCollection","features":["#);
    for (n, feature) in features.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(feature);
    }
    out.push_str(r#"],"links":"#);
    out.push_str(&serde_json::to_string(links)?);
    out.push_str(&format!(
        r#","numberMatched":{number_matched},"numberReturned":{}}}"#,
        features.len()
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn replaces_the_api_links_and_keeps_the_rest() {
        let stored = r#"{"type":"Feature","id":"a b","collection":"c/1","links":[{"rel":"self","href":"x"},{"rel":"license","href":"l"}],"properties":{"datetime":null},"assets":{}}"#;
        let out = parsed(&item(stored, "http://h", None).unwrap());
        let links = out["links"].as_array().unwrap();
        let rels: Vec<_> = links.iter().map(|l| l["rel"].as_str().unwrap()).collect();
        assert_eq!(rels, ["license", "self", "parent", "collection", "root"]);
        assert_eq!(links[1]["href"], "http://h/collections/c%2F1/items/a%20b");
        let mut expected = parsed(stored);
        expected["links"] = out["links"].clone();
        assert_eq!(out, expected, "every other member is copied through");
    }

    #[test]
    fn adds_a_missing_collection_and_leaves_linkless_items_without_links() {
        let out = parsed(&item(r#"{"id":"i","links":[]}"#, "http://h", Some("c")).unwrap());
        assert_eq!(out["collection"], "c");
        assert_eq!(out["links"].as_array().unwrap().len(), 4);
        let out = parsed(&item(r#"{"id":"i","collection":"c"}"#, "http://h", None).unwrap());
        assert!(out.get("links").is_none(), "{out}");
        assert!(item("[1]", "http://h", None).is_err());
    }

    #[test]
    fn writes_a_feature_collection() {
        let out = feature_collection(
            &[r#"{"id":"a"}"#.into(), r#"{"id":"b"}"#.into()],
            &[json!({"rel": "root", "href": "http://h/"})],
            7,
        )
        .unwrap();
        assert_eq!(
            parsed(&out),
            json!({"type": "FeatureCollection", "features": [{"id": "a"}, {"id": "b"}],
                   "links": [{"rel": "root", "href": "http://h/"}], "numberMatched": 7, "numberReturned": 2})
        );
    }
}
