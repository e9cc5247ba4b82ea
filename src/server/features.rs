//! Items written out as the API returns them, without rebuilding each document.
//!
//! A stored item is compact JSON text. The API returns it with its own links (self, parent,
//! collection, root) in place of the stored ones; everything else goes out as stored. Parsing
//! every item into a `serde_json::Value` and serialising it again was most of the time a page
//! of items took, so the top-level members are read as raw JSON text ([`RawValue`]) and copied
//! through; only `id`, `collection` and each link's `rel` are parsed (3.5 µs for a 2.9 kB NAIP
//! item, against 9.1 µs when the links were parsed into values and written again).

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{API_RELS, GEOJSON, JSON, encode};

/// A JSON string, borrowed from the text when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// The top-level members of a JSON object, in order, each as raw JSON text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

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
                while let Some((Text(key), value)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A link's relation, the one member of a stored link the API reads.
#[derive(Deserialize)]
struct Rel<'a> {
    #[serde(borrow, default)]
    rel: Option<Text<'a>>,
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
    let mut id = None;
    let mut stored_collection = None;
    for (key, raw) in &members {
        match key.as_ref() {
            "id" => id = string(raw),
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
        push_string(&mut out, key);
        out.push(':');
        if key == "links" {
            // Anything but an array of links is replaced by the API's links alone.
            let links: Vec<&RawValue> = serde_json::from_str(raw.get()).unwrap_or_default();
            out.push('[');
            let mut first = true;
            for link in links {
                // A link that is not an object with a string `rel` is kept as it is.
                if let Ok(Rel { rel: Some(Text(rel)) }) = serde_json::from_str(link.get())
                    && API_RELS.contains(&rel.as_ref())
                {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(link.get());
            }
            if let Some(collection) = collection {
                let col = format!("{base}/collections/{}", encode(collection));
                let id = encode(id.as_deref().unwrap_or_default());
                let own = [
                    ("self", format!("{col}/items/{id}"), GEOJSON),
                    ("parent", col.clone(), JSON),
                    ("collection", col, JSON),
                    ("root", format!("{base}/"), JSON),
                ];
                for (rel, href, media) in own {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(r#"{"rel":""#);
                    out.push_str(rel);
                    out.push_str(r#"","href":"#);
                    push_string(&mut out, &href);
                    out.push_str(r#","type":""#);
                    out.push_str(media);
                    out.push_str(r#""}"#);
                }
            }
            out.push(']');
        } else {
            out.push_str(raw.get());
        }
    }
    if added_collection && let Some(collection) = collection {
        if !members.is_empty() {
            out.push(',');
        }
        out.push_str("\"collection\":");
        push_string(&mut out, collection);
    }
    out.push('}');
    Ok(out)
}

/// A member's value when it is a JSON string.
fn string<'a>(raw: &'a RawValue) -> Option<Cow<'a, str>> {
    serde_json::from_str::<Text<'a>>(raw.get()).ok().map(|Text(s)| s)
}

/// Appends `s` as a JSON string (`"`, `\\` and control characters escaped).
fn push_string(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b < b' ' || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
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
    fn escapes_what_it_writes_and_keeps_odd_links() {
        let stored = "{\"id\":\"q\\\"\\u0001\",\"k\\\"ey\":1,\"links\":[\"odd\",{\"rel\":3},{\"rel\":\"root\"}]}";
        let out = parsed(&item(stored, "http://h\"", Some("c\"")).unwrap());
        assert_eq!(out["k\"ey"], 1);
        assert_eq!(out["collection"], "c\"");
        let links = out["links"].as_array().unwrap();
        assert_eq!(links[0], "odd");
        assert_eq!(links[1], json!({"rel": 3}));
        assert_eq!(links[2]["href"], "http://h\"/collections/c%22/items/q%22%01");
        assert_eq!(links.len(), 6, "the stored root link is replaced: {links:?}");
        let out = parsed(&item(r#"{"id":"i","links":{"x":1}}"#, "http://h", Some("c")).unwrap());
        assert_eq!(out["links"].as_array().unwrap().len(), 4);
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
