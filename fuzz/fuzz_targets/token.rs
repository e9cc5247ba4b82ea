//! The paging-token decoder, and the engine's use of a decoded token.
//!
//! An input is a token's bytes (a real token, base64-decoded: version, fingerprint, fid, the
//! sort key values as JSON, the tag). It is tried three ways:
//! 1. as token text (the input itself, when UTF-8) and as the base64 of the input, decoded
//!    against the fuzz catalog's secret: refused cleanly, since it is not signed;
//! 2. re-signed with the catalog's secret, with the fingerprint of one of a few searches (the
//!    input's second byte picks it) put in its place, and used as that search's token: the
//!    engine must then cope with whatever sort key values and fid it holds (wrong count,
//!    wrong types, huge numbers), giving a page or a clean `SearchError`.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use sha2::Sha256;
use stacdb::search::token::{FINGERPRINT_LEN, Fingerprint, PageToken};

/// Searches whose pages are several long, each with its own order.
fn searches() -> Vec<Value> {
    vec![
        json!({"limit": 1}),
        json!({"limit": 1, "sortby": [{"field": "eo:cloud_cover", "direction": "asc"}, {"field": "id", "direction": "desc"}]}),
        json!({"limit": 1, "sortby": [{"field": "properties.title", "direction": "desc"}, {"field": "datetime", "direction": "asc"}], "collections": ["c", "d"]}),
        json!({"limit": 2, "sortby": [{"field": "gsd", "direction": "desc"}], "filter": "datetime > TIMESTAMP('1900-01-01T00:00:00Z')"}),
        json!({"limit": 1, "q": "land OR city OR none OR a", "sortby": [{"field": "properties.nested", "direction": "asc"}]}),
    ]
}

/// The fingerprint of each search, read from the token of its first page.
fn fingerprints() -> &'static [(Value, Fingerprint)] {
    static CELL: std::sync::OnceLock<Vec<(Value, Fingerprint)>> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        searches()
            .into_iter()
            .map(|body| {
                let page = stacdb_fuzz::search_ok(&body);
                let token = page.next.expect("fixed search has a next page");
                let raw = URL_SAFE_NO_PAD.decode(token).unwrap();
                let mut fp = [0u8; FINGERPRINT_LEN];
                fp.copy_from_slice(&raw[1..1 + FINGERPRINT_LEN]);
                let decoded =
                    PageToken::decode(&URL_SAFE_NO_PAD.encode(&raw), &stacdb_fuzz::SECRET, &fp)
                        .expect("own token decodes");
                assert_eq!(decoded.fingerprint, fp);
                (body, fp)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let searches = fingerprints();
    let (body, fp) = &searches[0];
    // 1. Unsigned text.
    let mut texts = vec![URL_SAFE_NO_PAD.encode(data)];
    if let Ok(text) = std::str::from_utf8(data) {
        texts.push(text.to_string());
    }
    for text in &texts {
        if let Ok(token) = PageToken::decode(text, &stacdb_fuzz::SECRET, fp) {
            panic!("an unsigned token was accepted: {token:?}");
        }
        let mut with_token = body.clone();
        with_token["token"] = json!(text);
        assert!(stacdb_fuzz::search(&with_token).is_none(), "unsigned token gave a page");
    }
    // 2. Signed, as the catalog would sign it.
    const HEADER: usize = 1 + FINGERPRINT_LEN + 8;
    if data.len() < HEADER {
        return;
    }
    let (body, fp) = &searches[usize::from(data[1]) % searches.len()];
    let mut raw = data.to_vec();
    // A real token ends in its 32-byte tag: drop it, when there is room for one.
    if raw.len() >= HEADER + 2 + 32 {
        raw.truncate(raw.len() - 32);
    }
    raw[1..1 + FINGERPRINT_LEN].copy_from_slice(fp);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&stacdb_fuzz::SECRET).unwrap();
    mac.update(b"stacdb page token\0");
    mac.update(&raw);
    raw.extend_from_slice(&mac.finalize().into_bytes());
    let text = URL_SAFE_NO_PAD.encode(&raw);
    let decoded = PageToken::decode(&text, &stacdb_fuzz::SECRET, fp);
    if let Ok(token) = &decoded {
        // What decodes encodes again (unless too long) and decodes to the same token. (Not
        // always to the same text: the signer may have written the JSON with whitespace,
        // which only the holder of the secret can do.)
        if let Ok(again) = token.encode(&stacdb_fuzz::SECRET) {
            let back = PageToken::decode(&again, &stacdb_fuzz::SECRET, fp);
            assert_eq!(back.as_ref(), Ok(token), "{text} -> {again}");
        }
    }
    let mut with_token = body.clone();
    with_token["token"] = json!(text);
    stacdb_fuzz::search(&with_token);
});
