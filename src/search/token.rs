//! Opaque keyset paging tokens.
//!
//! Search pages with keysets, never `OFFSET`: a page ends at some row, and the next page starts
//! strictly after that row's sort key. A [`PageToken`] carries that sort key (one JSON value per
//! `sortby` key, then the row's `fid` as the unique tiebreak) together with the
//! [`fingerprint`] of the search it belongs to, so that a token cannot be replayed against a
//! different search.
//!
//! # Format
//!
//! A token is the URL-safe base64 (RFC 4648 §5, no padding) of these bytes:
//!
//! | bytes     | content                                                              |
//! |-----------|----------------------------------------------------------------------|
//! | 1         | format version, [`TOKEN_VERSION`] (currently 1)                      |
//! | 16        | search [`Fingerprint`]                                               |
//! | 8         | `fid` of the last row, `i64` big-endian                              |
//! | *n*       | the sort key values, a compact JSON array (UTF-8)                    |
//! | 32        | HMAC-SHA256 tag                                                      |
//!
//! The tag is HMAC-SHA256, keyed by the catalog's secret, over the ASCII label
//! `stacdb page token\0` followed by every byte before the tag (version included). The label
//! separates these tags from anything else the same secret may ever be used to authenticate.
//!
//! The token is authenticated, not encrypted: anyone holding it can decode the sort key values
//! (which are the values of an item the client has already been shown). Nobody without the
//! secret can make or alter one.
//!
//! Decoding refuses, in this order and without ever panicking: text longer than
//! [`MAX_TOKEN_LEN`], text that is not canonical unpadded URL-safe base64, payloads too short,
//! an unknown version byte, a tag that does not match (forged, altered, or made with another
//! catalog's secret), a fingerprint other than the one expected (a different search), and
//! sort key bytes that are not a JSON array.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The format version written as the first byte of every token.
pub const TOKEN_VERSION: u8 = 1;

/// The longest token text, in bytes, that [`PageToken::decode`] looks at and
/// [`PageToken::encode`] produces. Longer text is refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The length of a secret made by [`generate_secret`].
pub const SECRET_LEN: usize = 32;

/// The shortest secret accepted by [`PageToken::encode`] and [`PageToken::decode`].
pub const MIN_SECRET_LEN: usize = 16;

/// The length of a search [`Fingerprint`].
pub const FINGERPRINT_LEN: usize = 16;

/// A stable hash of a normalised search (see [`fingerprint`]).
pub type Fingerprint = [u8; FINGERPRINT_LEN];

/// Label mixed into every tag (domain separation).
const MAC_LABEL: &[u8] = b"stacdb page token\0";
/// Label mixed into every fingerprint (domain separation).
const FINGERPRINT_LABEL: &[u8] = b"stacdb search fingerprint v1\0";
/// Length of the HMAC-SHA256 tag.
const TAG_LEN: usize = 32;
/// Bytes before the JSON: version, fingerprint, fid.
const HEADER_LEN: usize = 1 + FINGERPRINT_LEN + 8;
/// The shortest possible payload: header, `[]`, tag.
const MIN_RAW_LEN: usize = HEADER_LEN + 2 + TAG_LEN;

type HmacSha256 = Hmac<Sha256>;

/// Why a paging token could not be made or used.
///
/// The messages are written for the client of the search API (except [`Self::WeakSecret`],
/// which is the server's fault): they say what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token text is longer than [`MAX_TOKEN_LEN`]; no token this server makes is that long.
    #[error(
        "the paging token is {len} bytes long, more than the {max} a valid token can have; \
         pass back the `token` exactly as received, or start again without `token`"
    )]
    TooLong {
        /// Length of the text received, in bytes.
        len: usize,
        /// The limit, [`MAX_TOKEN_LEN`].
        max: usize,
    },

    /// The token is not something this server could have made: not URL-safe unpadded base64,
    /// too short, or its sort key values are not a JSON array.
    #[error(
        "the paging token is malformed ({reason}); pass back the `token` exactly as received, \
         or start again without `token`"
    )]
    Malformed {
        /// What is wrong with it, in a few words.
        reason: &'static str,
    },

    /// The token's version byte is not one this server understands (a token from a newer
    /// or much older stacdb, or garbage).
    #[error(
        "the paging token has format version {found}, but this server only reads version \
         {expected}; start again without `token`"
    )]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The version this server reads, [`TOKEN_VERSION`].
        expected: u8,
    },

    /// The token's integrity tag does not match: it was forged, altered, or made by a
    /// different catalog (or before the catalog's secret was changed).
    #[error(
        "the paging token is not valid for this catalog (it was altered, or made by another \
         catalog); pass back the `token` exactly as received, or start again without `token`"
    )]
    Tampered,

    /// The token is genuine but was made for a different search (other filters, sort order,
    /// collections, ...).
    #[error(
        "the paging token was made for a different search; start again without `token`, \
         or repeat the search that returned it with the same parameters"
    )]
    WrongSearch,

    /// The last row's sort key values are too long to fit in a token of at most
    /// [`MAX_TOKEN_LEN`] bytes (only from [`PageToken::encode`]).
    #[error(
        "the sort key values of the last item on this page would make a paging token of \
         {len} bytes, more than the {max} allowed; sort by shorter fields"
    )]
    SortKeyTooLong {
        /// The length the token would have had, in bytes.
        len: usize,
        /// The limit, [`MAX_TOKEN_LEN`].
        max: usize,
    },

    /// The secret passed in is shorter than [`MIN_SECRET_LEN`]: a fault in the server, not in
    /// the request.
    #[error(
        "the catalog's paging secret is {len} bytes long, shorter than the {min} required; \
         this is a server fault"
    )]
    WeakSecret {
        /// Length of the secret passed in.
        len: usize,
        /// The minimum, [`MIN_SECRET_LEN`].
        min: usize,
    },
}

/// Where the next page starts: strictly after the row whose sort key is `sort_values`
/// then `fid`, in the search whose fingerprint is `fingerprint`.
///
/// Build one when a page is full, from its last row, and [`encode`](Self::encode) it; read the
/// client's with [`decode`](Self::decode). The fingerprint covers the sort order, so a decoded
/// token has as many `sort_values` as the search has sort keys; a careful engine still checks
/// the count before using them.
#[derive(Clone, PartialEq)]
pub struct PageToken {
    /// The last row's value for each sort key, in `sortby` order (JSON `null` for a missing
    /// value).
    pub sort_values: Vec<Value>,
    /// The last row's `fid`, the unique tiebreak after the sort keys.
    pub fid: i64,
    /// The [`fingerprint`] of the normalised search (everything but `token` and `limit`).
    pub fingerprint: Fingerprint,
}

impl fmt::Debug for PageToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageToken")
            .field("sort_values", &self.sort_values)
            .field("fid", &self.fid)
            .field("fingerprint", &Hex(&self.fingerprint))
            .finish()
    }
}

/// Lowercase hex for `Debug` output.
struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl PageToken {
    /// Encodes the token into opaque, URL-safe text (at most [`MAX_TOKEN_LEN`] bytes) whose
    /// integrity is protected by `secret`, the catalog's paging secret.
    ///
    /// # Errors
    ///
    /// [`TokenError::SortKeyTooLong`] if the sort key values are too long for a token, and
    /// [`TokenError::WeakSecret`] if `secret` is shorter than [`MIN_SECRET_LEN`].
    pub fn encode(&self, secret: &[u8]) -> Result<String, TokenError> {
        let mut mac = new_mac(secret)?;
        // Serialising a `Vec<Value>` to a `Vec<u8>` cannot fail (object keys are strings, and
        // numbers are always finite); should it ever, an empty array still makes a valid token.
        let json = serde_json::to_vec(&self.sort_values).unwrap_or_else(|_| b"[]".to_vec());
        let raw_len = HEADER_LEN + json.len() + TAG_LEN;
        let len = base64_len(raw_len);
        if len > MAX_TOKEN_LEN {
            return Err(TokenError::SortKeyTooLong { len, max: MAX_TOKEN_LEN });
        }
        let mut raw = Vec::with_capacity(raw_len);
        raw.push(TOKEN_VERSION);
        raw.extend_from_slice(&self.fingerprint);
        raw.extend_from_slice(&self.fid.to_be_bytes());
        raw.extend_from_slice(&json);
        mac.update(&raw);
        raw.extend_from_slice(&mac.finalize().into_bytes());
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// Decodes and checks a token made by [`encode`](Self::encode) with the same `secret`,
    /// for the search whose fingerprint is `expected_fingerprint`.
    ///
    /// Never panics, whatever `text` holds.
    ///
    /// # Errors
    ///
    /// - [`TokenError::TooLong`]: `text` is over [`MAX_TOKEN_LEN`] bytes.
    /// - [`TokenError::Malformed`]: not canonical unpadded URL-safe base64, too short, or the
    ///   sort key values are not a JSON array.
    /// - [`TokenError::UnsupportedVersion`]: unknown version byte.
    /// - [`TokenError::Tampered`]: the integrity tag does not match (forged, altered, or made
    ///   with another secret).
    /// - [`TokenError::WrongSearch`]: genuine, but made for a different search.
    /// - [`TokenError::WeakSecret`]: `secret` is shorter than [`MIN_SECRET_LEN`].
    pub fn decode(
        text: &str,
        secret: &[u8],
        expected_fingerprint: &Fingerprint,
    ) -> Result<PageToken, TokenError> {
        let mut mac = new_mac(secret)?;
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong { len: text.len(), max: MAX_TOKEN_LEN });
        }
        // The engine refuses padding and non-zero trailing bits, so each token has exactly
        // one spelling: changing any character changes the bytes (or is refused here).
        let raw = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| TokenError::Malformed { reason: "not URL-safe base64 without padding" })?;
        if raw.len() < MIN_RAW_LEN {
            return Err(TokenError::Malformed { reason: "too short" });
        }
        if raw[0] != TOKEN_VERSION {
            return Err(TokenError::UnsupportedVersion { found: raw[0], expected: TOKEN_VERSION });
        }
        let (body, tag) = raw.split_at(raw.len() - TAG_LEN);
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(tag).map_err(|_| TokenError::Tampered)?;

        // Only the holder of the secret can have made what follows: checked for form anyway.
        let (header, json) = body.split_at(HEADER_LEN);
        let mut fingerprint = [0u8; FINGERPRINT_LEN];
        fingerprint.copy_from_slice(&header[1..1 + FINGERPRINT_LEN]);
        if fingerprint != *expected_fingerprint {
            return Err(TokenError::WrongSearch);
        }
        let mut fid = [0u8; 8];
        fid.copy_from_slice(&header[1 + FINGERPRINT_LEN..]);
        let sort_values: Vec<Value> = serde_json::from_slice(json).map_err(|_| {
            TokenError::Malformed { reason: "the sort key values are not a JSON array" }
        })?;
        Ok(PageToken { sort_values, fid: i64::from_be_bytes(fid), fingerprint })
    }
}

/// A fresh HMAC-SHA256 keyed by `secret`, if the secret is long enough.
fn new_mac(secret: &[u8]) -> Result<HmacSha256, TokenError> {
    let weak = || TokenError::WeakSecret { len: secret.len(), min: MIN_SECRET_LEN };
    if secret.len() < MIN_SECRET_LEN {
        return Err(weak());
    }
    // HMAC takes keys of any length, so this never fails; mapped rather than unwrapped.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret).map_err(|_| weak())?;
    mac.update(MAC_LABEL);
    Ok(mac)
}

/// Length of the unpadded base64 text for `n` bytes.
fn base64_len(n: usize) -> usize {
    n / 3 * 4 + [0, 2, 3][n % 3]
}

/// Computes the fingerprint of a normalised search: the first 16 bytes of the SHA-256 of the
/// [`canonical_json`] text of `canonical_search`, behind a fixed label.
///
/// The caller passes the search as the engine understands it, minus `token` and `limit`
/// (which may change from page to page), with its own normalisation done (defaults filled in,
/// equivalent spellings made one). Object key order does not matter: keys are sorted here.
/// Numbers are hashed as serde_json writes them, so `1` and `1.0` differ: normalise numbers
/// the client may spell either way before calling.
pub fn fingerprint(canonical_search: &Value) -> Fingerprint {
    let mut hasher = Sha256::new();
    hasher.update(FINGERPRINT_LABEL);
    hasher.update(canonical_json(canonical_search).as_bytes());
    let digest = hasher.finalize();
    let mut out = [0u8; FINGERPRINT_LEN];
    out.copy_from_slice(&digest[..FINGERPRINT_LEN]);
    out
}

/// Writes `value` as compact JSON with the keys of every object sorted (by their UTF-8 bytes),
/// so that equal values give equal text whatever order their keys were inserted in.
///
/// (The crate enables serde_json's `preserve_order`, so plain `to_string` keeps insertion
/// order.)
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// Appends the canonical JSON of `value` to `out`.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        scalar => write_scalar(scalar, out),
    }
}

/// Appends a null, boolean, number or string as serde_json writes it.
fn write_scalar(value: &Value, out: &mut String) {
    // `Display` for `Value` is serde_json's compact writer; it cannot fail for these.
    use fmt::Write as _;
    let _ = write!(out, "{value}");
}

/// Makes a fresh random secret for signing paging tokens, from the operating system's
/// random number generator.
///
/// Uses the `getrandom` crate rather than reading `/dev/urandom`: it works on every platform
/// the crate builds for (Windows and macOS included), calls `getrandom(2)` on Linux, which
/// waits for the kernel's pool to be seeded at boot instead of returning early output, and
/// needs no file descriptor. It is already in the dependency tree (through `cql2`).
///
/// # Errors
///
/// If the operating system cannot provide random bytes.
pub fn generate_secret() -> std::io::Result<[u8; SECRET_LEN]> {
    let mut secret = [0u8; SECRET_LEN];
    getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};
    use serde_json::json;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn fp() -> Fingerprint {
        fingerprint(&json!({"collections": ["a"], "sortby": [{"field": "datetime"}]}))
    }

    fn sample() -> PageToken {
        PageToken {
            sort_values: vec![
                json!("2024-01-02T03:04:05Z"),
                Value::Null,
                json!(1.5e-7),
                json!("héllo wörld ✓ 🌍 \u{0} \"quoted\" \\"),
                json!(-42),
                json!(u64::MAX),
                json!(true),
                json!({"nested": [1, 2.25, null]}),
            ],
            fid: -7,
            fingerprint: fp(),
        }
    }

    #[test]
    fn round_trip_various_values() {
        let cases = vec![
            vec![],
            vec![Value::Null],
            vec![json!(0.1), json!(f64::MAX), json!(f64::MIN_POSITIVE), json!(-0.0)],
            vec![json!(i64::MIN), json!(i64::MAX)],
            vec![json!(""), json!("日本語"), json!("emoji 🚀")],
            sample().sort_values,
        ];
        for (i, sort_values) in cases.into_iter().enumerate() {
            for fid in [0, 1, -1, i64::MIN, i64::MAX, i as i64] {
                let token = PageToken { sort_values: sort_values.clone(), fid, fingerprint: fp() };
                let text = token.encode(KEY).unwrap();
                assert!(text.len() <= MAX_TOKEN_LEN);
                assert!(
                    text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "{text}"
                );
                let back = PageToken::decode(&text, KEY, &fp()).unwrap();
                assert_eq!(back, token);
                // Floats come back bit-exact.
                for (a, b) in back.sort_values.iter().zip(&token.sort_values) {
                    if let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
                        assert_eq!(x.to_bits(), y.to_bits());
                    }
                }
            }
        }
    }

    #[test]
    fn encoding_is_deterministic() {
        assert_eq!(sample().encode(KEY).unwrap(), sample().encode(KEY).unwrap());
    }

    #[test]
    fn every_altered_byte_is_rejected() {
        let text = sample().encode(KEY).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
        for i in 0..raw.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = raw.clone();
                bad[i] ^= flip;
                let err = PageToken::decode(&URL_SAFE_NO_PAD.encode(&bad), KEY, &fp()).unwrap_err();
                if i == 0 {
                    assert!(matches!(err, TokenError::UnsupportedVersion { .. }), "{err:?}");
                } else {
                    assert_eq!(err, TokenError::Tampered, "byte {i}");
                }
            }
        }
    }

    #[test]
    fn every_altered_character_is_rejected() {
        const ALPHABET: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. ";
        let text = sample().encode(KEY).unwrap();
        for i in 0..text.len() {
            for &c in ALPHABET {
                if c == text.as_bytes()[i] {
                    continue;
                }
                let mut bad = text.clone().into_bytes();
                bad[i] = c;
                let bad = String::from_utf8(bad).unwrap();
                assert!(PageToken::decode(&bad, KEY, &fp()).is_err(), "{bad}");
            }
        }
    }

    #[test]
    fn truncated_and_extended_tokens_are_rejected() {
        let text = sample().encode(KEY).unwrap();
        for n in 0..text.len() {
            assert!(PageToken::decode(&text[..n], KEY, &fp()).is_err(), "{n}");
        }
        for extra in ["A", "AA", "AAA", "AAAA", "=", "==", "\n", " "] {
            let bad = format!("{text}{extra}");
            assert!(PageToken::decode(&bad, KEY, &fp()).is_err(), "{extra:?}");
        }
        // Dropping bytes from the raw payload (keeping valid base64).
        let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
        for n in 0..raw.len() {
            let bad = URL_SAFE_NO_PAD.encode(&raw[..n]);
            assert!(PageToken::decode(&bad, KEY, &fp()).is_err(), "{n}");
        }
        assert_eq!(
            PageToken::decode(&URL_SAFE_NO_PAD.encode(&raw[..10]), KEY, &fp()),
            Err(TokenError::Malformed { reason: "too short" })
        );
    }

    #[test]
    fn wrong_secret_is_rejected() {
        let text = sample().encode(KEY).unwrap();
        let other = b"0123456789abcdef0123456789abcdeF";
        assert_eq!(PageToken::decode(&text, other, &fp()), Err(TokenError::Tampered));
        let longer = [KEY, b"x"].concat();
        assert_eq!(PageToken::decode(&text, &longer, &fp()), Err(TokenError::Tampered));
    }

    #[test]
    fn weak_secret_is_refused() {
        for key in [&b""[..], b"short", &KEY[..MIN_SECRET_LEN - 1]] {
            assert!(matches!(sample().encode(key), Err(TokenError::WeakSecret { .. })));
            assert!(matches!(
                PageToken::decode("AAAA", key, &fp()),
                Err(TokenError::WeakSecret { .. })
            ));
        }
        assert!(sample().encode(&KEY[..MIN_SECRET_LEN]).is_ok());
    }

    #[test]
    fn wrong_search_is_rejected() {
        let text = sample().encode(KEY).unwrap();
        let other = fingerprint(&json!({"collections": ["b"], "sortby": [{"field": "datetime"}]}));
        let err = PageToken::decode(&text, KEY, &other).unwrap_err();
        assert_eq!(err, TokenError::WrongSearch);
        assert!(
            err.to_string().contains("made for a different search; start again without `token`")
        );
    }

    #[test]
    fn unknown_version_is_rejected_before_the_tag() {
        let text = sample().encode(KEY).unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
        raw[0] = 2;
        assert_eq!(
            PageToken::decode(&URL_SAFE_NO_PAD.encode(&raw), KEY, &fp()),
            Err(TokenError::UnsupportedVersion { found: 2, expected: TOKEN_VERSION })
        );
    }

    #[test]
    fn genuine_but_bad_json_is_malformed() {
        // Only the secret's holder can make these; decode must still not panic.
        for json in [&b""[..], b"[", b"{}", b"1", b"[1,]", b"\xff\xfe", b"[1] x"] {
            let mut raw = vec![TOKEN_VERSION];
            raw.extend_from_slice(&fp());
            raw.extend_from_slice(&5i64.to_be_bytes());
            raw.extend_from_slice(json);
            let mut mac = new_mac(KEY).unwrap();
            mac.update(&raw);
            raw.extend_from_slice(&mac.finalize().into_bytes());
            let err = PageToken::decode(&URL_SAFE_NO_PAD.encode(&raw), KEY, &fp()).unwrap_err();
            assert!(matches!(err, TokenError::Malformed { .. }), "{json:?}: {err:?}");
        }
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let mut inputs: Vec<String> = vec![
            String::new(),
            "A".into(),
            "====".into(),
            "é".into(),
            "日本語のトークン".into(),
            "🚀🚀🚀🚀".into(),
            "\0\0\0\0".into(),
            "not a token".into(),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                .into(),
            "A".repeat(MAX_TOKEN_LEN),
            "A".repeat(MAX_TOKEN_LEN + 1),
            "A".repeat(10 * 1024 * 1024),
            "é".repeat(MAX_TOKEN_LEN),
        ];
        for _ in 0..2000 {
            let n = rng.random_range(0..200);
            let mut bytes = vec![0u8; n];
            rng.fill_bytes(&mut bytes);
            inputs.push(String::from_utf8_lossy(&bytes).into_owned());
            inputs.push(URL_SAFE_NO_PAD.encode(&bytes));
            // Random bytes behind a valid version byte.
            bytes.insert(0, TOKEN_VERSION);
            inputs.push(URL_SAFE_NO_PAD.encode(&bytes));
        }
        for text in &inputs {
            let result = PageToken::decode(text, KEY, &fp());
            assert!(result.is_err(), "{text:?}");
        }
        assert!(matches!(
            PageToken::decode(&"A".repeat(MAX_TOKEN_LEN + 1), KEY, &fp()),
            Err(TokenError::TooLong { .. })
        ));
    }

    #[test]
    fn oversized_sort_keys_are_refused_at_encode() {
        let mut token = sample();
        token.sort_values = vec![json!("x".repeat(MAX_TOKEN_LEN))];
        assert!(matches!(token.encode(KEY), Err(TokenError::SortKeyTooLong { .. })));
        // The largest token encode accepts is one decode accepts.
        let overhead = HEADER_LEN + TAG_LEN + 4; // `[""]`
        let max_raw = MAX_TOKEN_LEN / 4 * 3;
        token.sort_values = vec![json!("x".repeat(max_raw - overhead))];
        let text = token.encode(KEY).unwrap();
        assert_eq!(text.len(), MAX_TOKEN_LEN);
        assert_eq!(PageToken::decode(&text, KEY, &fp()).unwrap(), token);
        token.sort_values = vec![json!("x".repeat(max_raw - overhead + 1))];
        assert!(token.encode(KEY).is_err());
    }

    #[test]
    fn base64_len_matches_the_engine() {
        for n in 0..100 {
            assert_eq!(base64_len(n), URL_SAFE_NO_PAD.encode(vec![0u8; n]).len());
        }
    }

    #[test]
    fn fingerprint_is_stable_and_discriminating() {
        let a = json!({"collections": ["s2"], "bbox": [0, 0, 1, 1], "sortby": [{"field": "id", "direction": "asc"}]});
        let b = json!({"sortby": [{"direction": "asc", "field": "id"}], "bbox": [0, 0, 1, 1], "collections": ["s2"]});
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_eq!(fingerprint(&a), fingerprint(&b), "key order must not matter");
        // A known value, so an accidental change of the algorithm is noticed.
        assert_eq!(
            canonical_json(&b),
            r#"{"bbox":[0,0,1,1],"collections":["s2"],"sortby":[{"direction":"asc","field":"id"}]}"#
        );
        let different = [
            json!({"collections": ["s1"], "bbox": [0, 0, 1, 1], "sortby": [{"field": "id", "direction": "asc"}]}),
            json!({"collections": ["s2"], "bbox": [0, 0, 1, 2], "sortby": [{"field": "id", "direction": "asc"}]}),
            json!({"collections": ["s2"], "bbox": [0, 0, 1, 1], "sortby": [{"field": "id", "direction": "desc"}]}),
            json!({"collections": ["s2"], "bbox": [0, 0, 1, 1]}),
            json!({"collections": "s2", "bbox": [0, 0, 1, 1], "sortby": [{"field": "id", "direction": "asc"}]}),
            json!({"collections": ["s2"], "bbox": [0, 0, 1, 1], "sortby": [{"field": "id", "direction": "asc"}], "q": null}),
            json!(null),
            json!({}),
            json!([]),
            json!(""),
            json!({"a": "b,\"c\":\"d"}),
            json!({"a": "b", "c": "d"}),
        ];
        let mut seen = std::collections::HashSet::new();
        seen.insert(fingerprint(&a));
        for v in &different {
            assert!(seen.insert(fingerprint(v)), "collision for {v}");
        }
    }

    #[test]
    fn canonical_json_sorts_nested_keys_and_escapes() {
        let v = json!({"z": {"b": 1, "a": [{"y": 2, "x": 1}]}, "é": "\"\n", "A": 1.5});
        assert_eq!(canonical_json(&v), r#"{"A":1.5,"z":{"a":[{"x":1,"y":2}],"b":1},"é":"\"\n"}"#);
        let parsed: Value = serde_json::from_str(&canonical_json(&v)).unwrap();
        assert_eq!(parsed, v);
    }

    #[test]
    fn secrets_are_random() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; SECRET_LEN]);
        let text = sample().encode(&a).unwrap();
        assert!(PageToken::decode(&text, &a, &fp()).is_ok());
        assert_eq!(PageToken::decode(&text, &b, &fp()), Err(TokenError::Tampered));
    }

    #[test]
    fn error_messages_tell_the_client_what_to_do() {
        let errors = [
            TokenError::TooLong { len: 5000, max: MAX_TOKEN_LEN },
            TokenError::Malformed { reason: "too short" },
            TokenError::UnsupportedVersion { found: 9, expected: 1 },
            TokenError::Tampered,
            TokenError::WrongSearch,
        ];
        for e in errors {
            assert!(e.to_string().contains("without `token`"), "{e}");
        }
    }
}
