//! File names from untrusted text: ids, property values and imported paths.
//!
//! Every directory and file name an export writes below its output directory comes from
//! [`escape`] (or is one of the fixed names `catalog.json`, `collection.json`,
//! `part-NNNN`). The rule, which the README repeats:
//!
//! * The bytes `A-Z a-z 0-9 - _` are kept. A `.` is kept unless it is the first or the last
//!   byte of the name.
//! * Every other byte of the UTF-8 text is written `~XX` (two upper-case hex digits): `/`, `\`,
//!   `~` itself, `%`, spaces, control characters and NUL, `:` and the other bytes Windows
//!   refuses, and every byte of a non-ASCII character. So a name is plain ASCII made of
//!   URI-unreserved characters: it is its own href, needing no percent-encoding, and reads the
//!   same to tools that percent-decode hrefs (browsers, STAC Browser) and to tools that do not
//!   (pystac reading local files). `%XX` was not chosen for that reason: a name holding `%`
//!   must be written `%25` in an href, and only some readers undo that.
//! * A name whose part before the first `.` is a Windows reserved device name (`CON`, `PRN`,
//!   `AUX`, `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9`, in any case) has its first byte escaped
//!   (`CON.txt` → `~43ON.txt`); `catalog.json` and `collection.json` (any case) have their `.`
//!   escaped, so an item or sub-catalog can never take the place of its parent's document.
//! * The empty name is `~`.
//! * A name longer than [`MAX_NAME`] bytes is cut (never inside a `~XX`) and ends with `~-`
//!   and 16 hex digits of the SHA-256 of the whole original text. A directory name and the
//!   item file name `NAME.json` then stay well below the 255-byte limit of common file systems.
//!
//! Escaping is injective: a name decodes back to the original text with [`unescape`]
//! (except a cut name, which ends in its hash), so two different ids never get the same name.
//! Names are never `.`, `..`, never start with `.` and never hold a separator, so no name can
//! lead outside its directory.
//!
//! Case: on a case-insensitive file system (macOS, Windows) `Abc` and `abc` would be one
//! directory. [`resolve_case`] finds names in one directory that are equal ignoring ASCII case
//! and appends `~-` and the 16-hex-digit hash of the original text to each of them, so they
//! differ on every file system. The export applies it to the entries of every directory it
//! writes; the result depends only on the set of names in that directory, never on order.

use sha2::{Digest, Sha256};

/// The longest name [`escape`] returns, in bytes, before a case suffix (18 bytes) is added.
pub const MAX_NAME: usize = 200;

/// Windows device names, reserved with or without an extension.
const RESERVED: &[&str] = &["con", "prn", "aux", "nul"];

/// The file name of a path segment for `text` (see the module documentation).
pub fn escape(text: &str) -> String {
    if text.is_empty() {
        return "~".into();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    for (i, &b) in bytes.iter().enumerate() {
        let keep = b.is_ascii_alphanumeric()
            || b == b'-'
            || b == b'_'
            || (b == b'.' && i != 0 && i != bytes.len() - 1);
        if keep {
            out.push(b as char);
        } else {
            push_escaped(&mut out, b);
        }
    }
    let stem = out.split('.').next().unwrap_or("").to_ascii_lowercase();
    let reserved = RESERVED.contains(&stem.as_str())
        || (stem.len() == 4
            && (stem.starts_with("com") || stem.starts_with("lpt"))
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved {
        let first = out.as_bytes()[0];
        let mut fixed = String::with_capacity(out.len() + 2);
        push_escaped(&mut fixed, first);
        fixed.push_str(&out[1..]);
        out = fixed;
    }
    let lower = out.to_ascii_lowercase();
    if lower == "catalog.json" || lower == "collection.json" {
        out = out.replacen('.', "~2E", 1);
    }
    if out.len() > MAX_NAME {
        let mut cut = MAX_NAME - 18;
        // Never cut inside a `~XX`: back up to before the `~` when it is one or two bytes back.
        for back in 1..=2 {
            if cut >= back && out.as_bytes()[cut - back] == b'~' {
                cut -= back;
                break;
            }
        }
        out.truncate(cut);
        out.push_str("~-");
        out.push_str(&hash16(text));
    }
    out
}

fn push_escaped(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('~');
    out.push(HEX[(b >> 4) as usize] as char);
    out.push(HEX[(b & 15) as usize] as char);
}

/// The original text of a name made by [`escape`], or `None` when the name was cut (or given
/// a case suffix) and ends with a hash, or is not an escaped name at all.
pub fn unescape(name: &str) -> Option<String> {
    if name == "~" {
        return Some(String::new());
    }
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'~' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// 16 hex digits of the SHA-256 of `text`.
pub fn hash16(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes the names of one directory distinct ignoring ASCII case: every name of `names` that
/// equals another entry (of `names` or of `fixed`) ignoring case gets `~-` and the hash of its
/// original text appended. `originals[i]` is the text `names[i]` was escaped from. Names in
/// `fixed` (already settled: sub-catalog directories) are never changed.
pub fn resolve_case(names: &mut [String], originals: &[&str], fixed: &[&str]) {
    use std::collections::HashMap;
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(names.len() + fixed.len());
    for name in fixed.iter().copied().chain(names.iter().map(String::as_str)) {
        *seen.entry(name.to_ascii_lowercase()).or_default() += 1;
    }
    if seen.len() == names.len() + fixed.len() {
        return;
    }
    for (name, original) in names.iter_mut().zip(originals) {
        if seen[&name.to_ascii_lowercase()] > 1 {
            name.push_str("~-");
            name.push_str(&hash16(original));
        }
    }
}

/// The href of the file `to` as seen from the file `from`, both '/'-separated paths relative
/// to the export's root: `./x/y.json` downwards, `../../z.json` upwards.
pub fn relative_href(from: &str, to: &str) -> String {
    let from_dir: Vec<&str> = match from.rsplit_once('/') {
        Some((dir, _)) => dir.split('/').collect(),
        None => Vec::new(),
    };
    let to_parts: Vec<&str> = to.split('/').collect();
    let (to_dir, to_file) = to_parts.split_at(to_parts.len() - 1);
    let common = from_dir.iter().zip(to_dir).take_while(|(a, b)| a == b).count();
    let ups = from_dir.len() - common;
    let mut href = String::with_capacity(to.len() + 3 * ups + 2);
    if ups == 0 {
        href.push_str("./");
    } else {
        for _ in 0..ups {
            href.push_str("../");
        }
    }
    for part in &to_dir[common..] {
        href.push_str(part);
        href.push('/');
    }
    href.push_str(to_file[0]);
    href
}

/// Joins a relative directory and a name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_is_unsafe() {
        assert_eq!(escape("S2A_MSIL2A_20240101.v2"), "S2A_MSIL2A_20240101.v2");
        assert_eq!(escape("a/b"), "a~2Fb");
        assert_eq!(escape(".."), "~2E~2E");
        assert_eq!(escape("."), "~2E");
        assert_eq!(escape(".hidden"), "~2Ehidden");
        assert_eq!(escape("x."), "x~2E");
        assert_eq!(escape("a b"), "a~20b");
        assert_eq!(escape("~"), "~7E");
        assert_eq!(escape(""), "~");
        assert_eq!(escape("CON"), "~43ON");
        assert_eq!(escape("con.txt"), "~63on.txt");
        assert_eq!(escape("Lpt9.tar.gz"), "~4Cpt9.tar.gz");
        assert_eq!(escape("COM10"), "COM10");
        assert_eq!(escape("catalog.json"), "catalog~2Ejson");
        assert_eq!(escape("Collection.JSON"), "Collection~2EJSON");
        assert_eq!(escape("é"), "~C3~A9");
        assert_eq!(escape("a\0b"), "a~00b");
    }

    #[test]
    fn round_trips_and_is_injective() {
        let ids = ["a/b", "a~2Fb", "~", "", "CON", "~43ON", "catalog.json", "x.", "é\u{1}", ".."];
        let names: Vec<String> = ids.iter().map(|i| escape(i)).collect();
        for (id, name) in ids.iter().zip(&names) {
            assert_eq!(unescape(name).as_deref(), Some(*id), "{name}");
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let long = "é".repeat(300);
        let name = escape(&long);
        assert!(name.len() <= MAX_NAME, "{}", name.len());
        assert!(name.ends_with(&hash16(&long)));
        assert_ne!(escape(&(long.clone() + "x")), name);
        let tildes = "~".repeat(100);
        let name = escape(&tildes);
        assert!(name.len() <= MAX_NAME);
        assert!(name.trim_end_matches(|c: char| c.is_ascii_hexdigit()).ends_with("~7E~-"));
    }

    #[test]
    fn case_twins_get_suffixes() {
        let originals = ["Abc", "abc", "other"];
        let mut names: Vec<String> = originals.iter().map(|o| escape(o)).collect();
        resolve_case(&mut names, &originals, &[]);
        assert_eq!(names[2], "other");
        assert_ne!(names[0].to_ascii_lowercase(), names[1].to_ascii_lowercase());
        let mut names = vec!["X".to_string()];
        resolve_case(&mut names, &["X"], &["x"]);
        assert!(names[0].starts_with("X~-"));
    }

    #[test]
    fn hrefs() {
        assert_eq!(relative_href("catalog.json", "a/collection.json"), "./a/collection.json");
        assert_eq!(relative_href("a/b/i/i.json", "catalog.json"), "../../../catalog.json");
        assert_eq!(relative_href("a/b/i/i.json", "a/b/catalog.json"), "../catalog.json");
        assert_eq!(relative_href("a/b/i/i.json", "a/collection.json"), "../../collection.json");
        assert_eq!(relative_href("a/collection.json", "a/x/x.json"), "./x/x.json");
        assert_eq!(relative_href("a/collection.json", "catalog.json"), "../catalog.json");
    }
}
