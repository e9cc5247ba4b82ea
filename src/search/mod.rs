//! Search: the pieces the STAC API item search is built from.
//!
//! - [`freetext`]: the free-text `q` parameter, translated into an FTS5 query.
//! - [`token`]: opaque keyset paging tokens.

pub mod freetext;
pub mod token;
