//! Search: the pieces the STAC API item search is built from.
//!
//! - [`freetext`]: the free-text `q` parameter, translated into an FTS5 query.
//! - [`token`]: opaque keyset paging tokens.
//! - [`cql2sql`]: CQL2 filters translated into SQLite SQL with bound parameters, and the SQL
//!   functions (geometry predicates) that SQL calls.

pub mod cql2sql;
pub mod freetext;
pub mod token;
