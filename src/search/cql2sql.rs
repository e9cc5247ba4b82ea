//! CQL2 filters translated into SQLite SQL in which every literal is a bound parameter.
//!
//! [`parse_text`] and [`parse_json`] read a filter into the [`cql2`] crate's [`Expr`] tree, with
//! limits that keep hostile input from exhausting the stack; [`translate`] turns that tree into a
//! [`SqlFilter`]: a boolean SQL expression over one row of `items` aliased `i`, and the values
//! for its `?` placeholders, in order. [`register_functions`] adds the SQL functions the
//! expression may call (spatial predicates, CASEI, ACCENTI, timestamp parsing, arithmetic); it
//! must have been called on the connection that prepares the statement.
//!
//! ```
//! use stacdb::search::cql2sql;
//! let expr = cql2sql::parse_text("eo:cloud_cover < 10 AND platform = 'plane-a'").unwrap();
//! let filter = cql2sql::translate(&expr).unwrap();
//! assert!(filter.sql.contains('?'));
//! assert!(!filter.sql.contains("plane-a"));
//! ```
//!
//! # Properties
//!
//! - `id`, `collection` are the text columns `i.id`, `i.collection`.
//! - `geometry` is the GeoPackage blob `i.geometry` (NULL for items without geometry).
//! - `datetime` is the item's time. Compared as a value (`=`, `<`, `BETWEEN`, `IN`, …) it is the
//!   instant `i.datetime_start`, as pgstac does: the item's `datetime`, or its `start_datetime`
//!   when it has a range. In the `T_*` temporal functions it is the whole interval
//!   `[i.datetime_start, i.datetime_end]` (a single instant for most items). It is never NULL,
//!   so `datetime IS NULL` matches nothing, even for items whose document has `"datetime": null`.
//! - `start_datetime` and `end_datetime` are the instants `i.datetime_start` and `i.datetime_end`
//!   (which equal `datetime` for items without a range).
//! - Any other name, with or without a leading `properties.`, is the item property of that exact
//!   name (dots included: `a.b` is the property named `a.b`, not a nested one), read from
//!   `i.content` with a JSON path that is bound as a parameter.
//!
//! # Types
//!
//! A JSON property takes the type of what it is compared with: in `cloud < 10` it is read as a
//! number, and an item whose `cloud` is a string, an array or missing gives NULL (unknown), so
//! the comparison is neither true nor false and `NOT` of it does not match either. Two JSON
//! properties compared with each other compare only when their JSON types agree (integers and
//! reals being one type). Comparing values of different literal types (`id = 5`) is an error.
//!
//! Timestamps are integers of microseconds since the epoch. A `TIMESTAMP` compared with a
//! timestamp compares instants. A `DATE` compared with a timestamp compares the timestamp's UTC
//! calendar date with it: `datetime = DATE('2021-01-10')` matches the whole day, `datetime <
//! DATE('2021-01-10')` is before its start and `datetime <= DATE('2021-01-10')` before its end.
//! A plain string compared with a timestamp property is read as a timestamp, or as a date when
//! it is one. In the `T_*` functions a `DATE` is the interval of its whole day, and so is a date
//! written as a bound of an `INTERVAL` (the end bound includes the last day); `'..'` leaves a
//! bound open.
//!
//! # Semantics of the other operators
//!
//! - `LIKE` is case-sensitive as CQL2 requires (`%`, `_`, and `\` escaping the next character);
//!   it is translated to `GLOB`. Its pattern must be a literal (optionally in CASEI/ACCENTI).
//! - `CASEI(x)` lowercases with Unicode rules; `ACCENTI(x)` removes diacritics (NFD, combining
//!   marks dropped, NFC).
//! - Spatial predicates use the DE-9IM relations of the `geo` crate on the 2-D geometries. A
//!   `BBOX` whose minimum longitude is larger than its maximum crosses the antimeridian and
//!   becomes two boxes. An item without geometry gives NULL.
//! - The `A_*` functions compare arrays as sets of JSON values (as the `cql2` crate's own
//!   evaluator does): `A_EQUALS` holds when each array contains every element of the other.
//! - `/` is real division, `div` integer division truncating toward zero, `%` the remainder
//!   with the sign of the dividend, `^` the power; division by zero gives NULL.
//! - NULL propagates as in SQL: a comparison with a missing property is unknown.

use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use cql2::Expr;
use geo::Relate;
use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use serde_json::Value as Json;

use crate::{document, geometry};

#[cfg(test)]
mod tests;

/// The deepest nesting of operators, function calls and parentheses a filter may have.
pub const MAX_DEPTH: usize = 64;

/// The longest filter text accepted, in bytes.
pub const MAX_TEXT_LEN: usize = 1 << 20;

/// The most operators (words such as `AND` and `NOT`, and symbols such as `=` and `+`) a CQL2
/// text filter may hold. This bounds how deep the parser can recurse.
pub const MAX_OPERATORS: usize = 10_000;

/// The longest LIKE pattern, in bytes once translated (SQLite's default
/// `SQLITE_LIMIT_LIKE_PATTERN_LENGTH`).
const MAX_PATTERN_LEN: usize = 50_000;

/// The most grammar rule calls one CQL2 text parse may make (see [`parse_text`]).
const PEST_CALL_LIMIT: usize = 5_000_000;

/// The stack of the thread the `cql2` parser runs on.
const PARSE_STACK: usize = 64 << 20;

/// A translated filter: SQL over a row of `items` aliased `i`, and its parameters in order.
///
/// The SQL only uses anonymous `?` placeholders, so it can be spliced into a larger statement
/// (`… WHERE i.collection = ? AND (<sql>)`) as long as its parameters are appended in the same
/// position.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFilter {
    /// A boolean SQL expression.
    pub sql: String,
    /// The values of the `?` placeholders in `sql`, in order.
    pub params: Vec<Value>,
}

/// Why a filter could not be read or translated. The messages are meant for API clients.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// The CQL2 text does not parse.
    #[error("invalid CQL2 text: {0}")]
    Text(String),
    /// The CQL2 JSON does not parse.
    #[error("invalid CQL2 JSON: {0}")]
    Json(String),
    /// The filter nests deeper than [`MAX_DEPTH`].
    #[error("the filter is nested too deeply (at most {MAX_DEPTH} levels are allowed)")]
    TooDeep,
    /// The filter is longer than [`MAX_TEXT_LEN`] or has more than [`MAX_OPERATORS`] operators.
    #[error("the filter is too long or too complex")]
    TooLong,
    /// A function CQL2 does not define, or this catalog does not provide.
    #[error("unknown function '{0}'")]
    UnknownFunction(String),
    /// An operator was given the wrong number or types of arguments.
    #[error("{op}: {message}")]
    Arguments {
        /// The operator, as CQL2 names it.
        op: String,
        /// What is wrong.
        message: String,
    },
    /// A construct CQL2 defines but this catalog does not support.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A geometry literal that is not a valid geometry.
    #[error("invalid geometry: {0}")]
    Geometry(String),
    /// A timestamp, date or interval literal that does not parse.
    #[error("invalid temporal value '{0}'")]
    Temporal(String),
    /// A number that is not finite.
    #[error("numbers must be finite")]
    Number,
}

fn args_error(op: &str, message: impl Into<String>) -> FilterError {
    FilterError::Arguments { op: op.to_string(), message: message.into() }
}

// ------------------------------------------------------------------------------------------
// Parsing
// ------------------------------------------------------------------------------------------

/// Parses CQL2 text, refusing input too long or too deeply nested to parse safely.
pub fn parse_text(text: &str) -> Result<Expr, FilterError> {
    prescan_text(text)?;
    // The grammar backtracks: a bad token deep inside parentheses can make it retry each
    // level's alternatives, exponentially. The call limit bounds that work (it is a process-wide
    // setting of the pest crate, which only cql2 uses here).
    pest::set_call_limit(std::num::NonZeroUsize::new(PEST_CALL_LIMIT));
    let text = text.to_string();
    on_parse_stack(move || {
        let expr = cql2::parse_text(&text).map_err(|e| {
            let message = text_message(&e);
            if message.contains("call limit") {
                FilterError::TooLong
            } else {
                FilterError::Text(message)
            }
        })?;
        if too_deep(&expr, MAX_DEPTH) {
            return Err(FilterError::TooDeep);
        }
        Ok(expr)
    })
}

/// Parses CQL2 JSON (serde_json refuses nesting deeper than 128 arrays and objects).
pub fn parse_json(json: &str) -> Result<Expr, FilterError> {
    if json.len() > MAX_TEXT_LEN {
        return Err(FilterError::TooLong);
    }
    let json = json.to_string();
    on_parse_stack(move || {
        let expr = cql2::parse_json(&json).map_err(|e| {
            if e.to_string().contains("recursion limit") {
                FilterError::TooDeep
            } else {
                FilterError::Json(e.to_string())
            }
        })?;
        if too_deep(&expr, MAX_DEPTH) {
            return Err(FilterError::TooDeep);
        }
        Ok(expr)
    })
}

fn text_message(error: &cql2::Error) -> String {
    // pest's messages span several lines with a caret under the position: keep them, but as
    // one line.
    error.to_string().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// A parse to run on one of the parser threads.
type ParseJob = Box<dyn FnOnce() + Send>;

/// How many parser threads there are.
const PARSER_THREADS: usize = 2;

/// The queue of the parser threads: long-lived threads with a large stack, started on first use
/// (`None` when they could not be started). Starting a thread with a large stack for every
/// filter cost more than the rest of a small search put together.
fn parsers() -> Option<&'static std::sync::mpsc::Sender<ParseJob>> {
    static PARSERS: std::sync::OnceLock<Option<std::sync::mpsc::Sender<ParseJob>>> =
        std::sync::OnceLock::new();
    PARSERS
        .get_or_init(|| {
            let (sender, receiver) = std::sync::mpsc::channel::<ParseJob>();
            let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
            let mut started = 0;
            for n in 0..PARSER_THREADS {
                let receiver = receiver.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("stacdb-cql2-{n}"))
                    .stack_size(PARSE_STACK)
                    .spawn(move || {
                        loop {
                            let job = match receiver.lock() {
                                Ok(receiver) => receiver.recv(),
                                Err(_) => return,
                            };
                            match job {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    });
                started += usize::from(spawned.is_ok());
            }
            (started > 0).then_some(sender)
        })
        .as_ref()
}

/// Runs the `cql2` parser on a thread with a large stack (its grammar and its tree walks
/// recurse), catching a panic in it as an error rather than taking the caller down.
fn on_parse_stack(
    parse: impl FnOnce() -> Result<Expr, FilterError> + Send + 'static,
) -> Result<Expr, FilterError> {
    let failed = || Err(FilterError::Text("the filter cannot be parsed".into()));
    let unavailable = || FilterError::Unsupported("parsing filters: no thread available".into());
    let parsers = parsers().ok_or_else(unavailable)?;
    let (answer, result) = std::sync::mpsc::sync_channel(1);
    let job: ParseJob = Box::new(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse))
            .unwrap_or_else(|_| failed());
        let _ = answer.send(result);
    });
    parsers.send(job).map_err(|_| unavailable())?;
    result.recv().unwrap_or_else(|_| failed())
}

/// Whether the tree is deeper than `budget` levels (recursing at most `budget` deep).
fn too_deep(expr: &Expr, budget: usize) -> bool {
    if budget == 0 {
        return true;
    }
    children(expr).any(|child| too_deep(child, budget - 1))
}

fn children(expr: &Expr) -> Box<dyn Iterator<Item = &Expr> + '_> {
    match expr {
        Expr::Operation { args, .. } => Box::new(args.iter().map(|a| &**a)),
        Expr::Interval { interval } => Box::new(interval.iter().map(|a| &**a)),
        Expr::BBox { bbox } => Box::new(bbox.iter().map(|a| &**a)),
        Expr::Array(items) => Box::new(items.iter().map(|a| &**a)),
        Expr::Timestamp { timestamp } => Box::new(std::iter::once(&**timestamp)),
        Expr::Date { date } => Box::new(std::iter::once(&**date)),
        _ => Box::new(std::iter::empty()),
    }
}

/// Checks, before the grammar sees it, that the text is short, that its parentheses do not
/// nest deeper than [`MAX_DEPTH`] and that it has at most [`MAX_OPERATORS`] operators.
fn prescan_text(text: &str) -> Result<(), FilterError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(FilterError::TooLong);
    }
    let bytes = text.as_bytes();
    let (mut depth, mut operators, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' => {
                // a quoted string or identifier; a doubled quote inside it is an escaped quote
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b {
                        if bytes.get(i + 1) == Some(&b) {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    i += 1;
                }
            }
            b'(' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(FilterError::TooDeep);
                }
            }
            b')' => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    FilterError::Text("unbalanced parentheses: ')' without '('".into())
                })?;
            }
            b'-' | b'+' if bytes.get(i + 1).is_some_and(|c| c.is_ascii_digit() || *c == b'.') => {}
            b'=' | b'<' | b'>' | b'!' | b'+' | b'-' | b'*' | b'/' | b'%' | b'^' => operators += 1,
            b if b.is_ascii_alphabetic() => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b':' | b'.'))
                {
                    i += 1;
                }
                let word = &text[start..i];
                if ["not", "and", "or", "like", "in", "between", "is", "div"]
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(word))
                {
                    operators += 1;
                }
                continue;
            }
            _ => {}
        }
        if operators > MAX_OPERATORS {
            return Err(FilterError::TooLong);
        }
        i += 1;
    }
    if operators > MAX_OPERATORS {
        return Err(FilterError::TooLong);
    }
    if depth > 0 {
        return Err(FilterError::Text("unbalanced parentheses: '(' without ')'".into()));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// SQL fragments
// ------------------------------------------------------------------------------------------

/// A piece of SQL and the parameters of its placeholders.
#[derive(Debug, Clone, Default)]
struct Frag {
    sql: String,
    params: Vec<Value>,
}

impl Frag {
    fn raw(sql: &str) -> Frag {
        Frag { sql: sql.to_string(), params: Vec::new() }
    }

    fn param(value: Value) -> Frag {
        Frag { sql: "?".to_string(), params: vec![value] }
    }

    /// Appends SQL text.
    fn s(mut self, sql: &str) -> Frag {
        self.sql.push_str(sql);
        self
    }

    /// Appends another fragment.
    fn f(mut self, other: &Frag) -> Frag {
        self.sql.push_str(&other.sql);
        self.params.extend(other.params.iter().cloned());
        self
    }

    /// Fragments joined by `AND` or `OR` (the separator), grouped into a balanced tree of
    /// parentheses: SQLite parses a flat chain as one left-deep tree, and refuses trees more
    /// than 1,000 deep, so a filter of a thousand terms in one `OR` would fail.
    fn tree(parts: &[Frag], separator: &str) -> Frag {
        const FLAT: usize = 8;
        if parts.len() <= FLAT {
            return Frag::join(parts, separator);
        }
        let chunk = parts.len().div_ceil(FLAT);
        let groups: Vec<Frag> = parts.chunks(chunk).map(|c| Frag::tree(c, separator)).collect();
        Frag::join(&groups, separator)
    }

    /// Fragments joined by a separator, in parentheses.
    fn join(parts: &[Frag], separator: &str) -> Frag {
        let mut out = Frag::raw("(");
        for (n, part) in parts.iter().enumerate() {
            if n > 0 {
                out = out.s(separator);
            }
            out = out.f(part);
        }
        out.s(")")
    }
}

fn text_param(s: &str) -> Frag {
    Frag::param(Value::Text(s.to_string()))
}

fn number_param(x: f64) -> Frag {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if x.fract() == 0.0 && x.abs() <= EXACT {
        Frag::param(Value::Integer(x as i64))
    } else {
        Frag::param(Value::Real(x))
    }
}

fn int_param(x: i64) -> Frag {
    Frag::param(Value::Integer(x))
}

// ------------------------------------------------------------------------------------------
// Operands
// ------------------------------------------------------------------------------------------

/// The SQL types an operand can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Number,
    Text,
    /// Microseconds since the epoch.
    Time,
    /// A GeoPackage blob.
    Geometry,
    /// JSON text of an array.
    Array,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "a boolean",
            Ty::Number => "a number",
            Ty::Text => "a string",
            Ty::Time => "a timestamp",
            Ty::Geometry => "a geometry",
            Ty::Array => "an array",
        }
    }
}

/// Where a JSON item property is.
#[derive(Debug, Clone)]
enum PropRef {
    /// A JSON path, bound as a parameter.
    Path(String),
    /// A key of `properties` that no SQLite JSON path can name (it holds `"` or NUL).
    Key(String),
}

impl PropRef {
    fn new(name: &str) -> PropRef {
        if name.is_empty() || name.contains(['"', '\\', '\0']) {
            PropRef::Key(name.to_string())
        } else {
            PropRef::Path(format!("$.properties.\"{name}\""))
        }
    }

    /// The property's value as `json_extract` gives it (NULL when missing or null).
    fn value(&self) -> Frag {
        match self {
            PropRef::Path(path) => {
                Frag::raw("json_extract(i.content, ").f(&text_param(path)).s(")")
            }
            PropRef::Key(key) => {
                Frag::raw("(SELECT value FROM json_each(i.content, '$.properties') WHERE key = ")
                    .f(&text_param(key))
                    .s(")")
            }
        }
    }

    /// The property's JSON type as `json_type` names it (NULL when missing).
    fn json_type(&self) -> Frag {
        match self {
            PropRef::Path(path) => Frag::raw("json_type(i.content, ").f(&text_param(path)).s(")"),
            PropRef::Key(key) => {
                Frag::raw("(SELECT type FROM json_each(i.content, '$.properties') WHERE key = ")
                    .f(&text_param(key))
                    .s(")")
            }
        }
    }

    /// The property read as a value of type `ty`, NULL when it has another JSON type.
    fn typed(&self, ty: Ty) -> Result<Frag, FilterError> {
        if let PropRef::Path(path) = self
            && let Some((_, _, column)) = INDEXED_PROPERTIES.iter().find(|(name, t, _)| {
                *t == ty
                    && path.strip_prefix("$.properties.\"").and_then(|p| p.strip_suffix('"'))
                        == Some(name)
            })
        {
            return Ok(Frag::raw(column));
        }
        let when = |types: &str| {
            Frag::raw("(CASE WHEN ")
                .f(&self.json_type())
                .s(" IN (")
                .s(types)
                .s(") THEN ")
                .f(&self.value())
                .s(" END)")
        };
        Ok(match ty {
            Ty::Number => when("'integer', 'real'"),
            Ty::Text => when("'text'"),
            Ty::Array => when("'array'"),
            Ty::Bool => Frag::raw("(CASE ")
                .f(&self.json_type())
                .s(" WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"),
            Ty::Time => Frag::raw("stacdb_timestamp(").f(&when("'text'")).s(")"),
            Ty::Geometry => {
                return Err(FilterError::Unsupported(
                    "geometry-valued properties other than `geometry`".into(),
                ));
            }
        })
    }

    /// The JSON type with integers and reals as one, for comparing two untyped properties.
    fn class(&self) -> Frag {
        Frag::raw("replace(").f(&self.json_type()).s(", 'integer', 'real')")
    }
}

/// A literal value.
#[derive(Debug, Clone)]
enum Const {
    Null,
    Number(f64),
    Text(String),
    Bool(bool),
    /// Microseconds since the epoch.
    Time(i64),
    /// A calendar day: the microseconds of its start.
    Date(i64),
    /// A GeoPackage blob.
    Geometry(Vec<u8>),
    /// JSON array elements.
    Array(Vec<Json>),
    /// An interval literal: start and end in microseconds, inclusive.
    Interval(Bound, Bound),
}

/// A bound of an interval literal.
#[derive(Debug, Clone)]
enum Bound {
    Open,
    /// Microseconds.
    At(i64),
    /// A day: the bound is its start (for a start bound) or its last microsecond (for an end).
    Day(i64),
    /// A property or column giving an instant.
    Instant(Frag),
}

/// One translated operand.
#[derive(Debug, Clone)]
enum Operand {
    /// A JSON item property, whose type depends on what it is compared with.
    Prop(PropRef),
    /// A SQL expression of a known type.
    Typed(Ty, Frag),
    /// A literal.
    Const(Const),
    /// The item's time span `[i.datetime_start, i.datetime_end]`: the `datetime` property.
    ItemTime,
}

impl Operand {
    fn describe(&self) -> &'static str {
        match self {
            Operand::Prop(_) => "a property",
            Operand::Typed(ty, _) => ty.name(),
            Operand::ItemTime => "a timestamp",
            Operand::Const(c) => match c {
                Const::Null => "null",
                Const::Number(_) => "a number",
                Const::Text(_) => "a string",
                Const::Bool(_) => "a boolean",
                Const::Time(_) => "a timestamp",
                Const::Date(_) => "a date",
                Const::Geometry(_) => "a geometry",
                Const::Array(_) => "an array",
                Const::Interval(..) => "an interval",
            },
        }
    }
}

const DATETIME_START: &str = "i.datetime_start";

/// Item properties with a typed, indexed column (schema step 3): the property, the type the
/// column holds, and the column. The column is the property's value when it has that JSON type
/// and NULL otherwise, which is what [`PropRef::typed`] computes, so the column stands in for
/// it and the comparison uses the index.
const INDEXED_PROPERTIES: [(&str, Ty, &str); 4] = [
    ("eo:cloud_cover", Ty::Number, "i.p_eo_cloud_cover"),
    ("gsd", Ty::Number, "i.p_gsd"),
    ("platform", Ty::Text, "i.p_platform"),
    ("constellation", Ty::Text, "i.p_constellation"),
];
const DAY_MICROS: i64 = 86_400_000_000;

// ------------------------------------------------------------------------------------------
// Translation
// ------------------------------------------------------------------------------------------

/// Translates a CQL2 expression into SQL over a row of `items` aliased `i`.
///
/// Fails with [`FilterError::TooDeep`] for trees deeper than [`MAX_DEPTH`]. A tree more than a
/// few levels deep is translated on a helper thread with a large stack, so that the caller's
/// stack size does not matter.
pub fn translate(expr: &Expr) -> Result<SqlFilter, FilterError> {
    let run = || {
        let mut translator = Translator { aliases: 0 };
        let frag = translator.predicate(expr, 0)?;
        Ok(SqlFilter { sql: frag.sql, params: frag.params })
    };
    if !too_deep(expr, INLINE_DEPTH) {
        return run();
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("stacdb-cql2".into())
            .stack_size(TRANSLATE_STACK)
            .spawn_scoped(scope, run)
            .map_err(|_| FilterError::Unsupported("deep filters: no thread available".into()))?
            .join()
            .unwrap_or(Err(FilterError::TooDeep))
    })
}

/// Trees up to this deep are translated on the caller's thread (a few kilobytes a level).
const INLINE_DEPTH: usize = 12;

/// The stack of the thread deeper trees are translated on.
const TRANSLATE_STACK: usize = 8 << 20;

struct Translator {
    /// Counter for unique table aliases in subqueries.
    aliases: usize,
}

/// The comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn from_op(op: &str) -> Option<Cmp> {
        Some(match op {
            "=" => Cmp::Eq,
            "<>" | "!=" => Cmp::Ne,
            "<" => Cmp::Lt,
            "<=" => Cmp::Le,
            ">" => Cmp::Gt,
            ">=" => Cmp::Ge,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            Cmp::Eq => " = ",
            Cmp::Ne => " <> ",
            Cmp::Lt => " < ",
            Cmp::Le => " <= ",
            Cmp::Gt => " > ",
            Cmp::Ge => " >= ",
        }
    }

    /// The operator with its operands exchanged.
    fn flip(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            other => other,
        }
    }
}

impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql().trim())
    }
}

/// The spatial predicates, by CQL2 name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spatial {
    Intersects,
    Equals,
    Disjoint,
    Touches,
    Within,
    Overlaps,
    Crosses,
    Contains,
}

const SPATIAL: [(Spatial, &str, &str); 8] = [
    (Spatial::Intersects, "s_intersects", "stacdb_s_intersects"),
    (Spatial::Equals, "s_equals", "stacdb_s_equals"),
    (Spatial::Disjoint, "s_disjoint", "stacdb_s_disjoint"),
    (Spatial::Touches, "s_touches", "stacdb_s_touches"),
    (Spatial::Within, "s_within", "stacdb_s_within"),
    (Spatial::Overlaps, "s_overlaps", "stacdb_s_overlaps"),
    (Spatial::Crosses, "s_crosses", "stacdb_s_crosses"),
    (Spatial::Contains, "s_contains", "stacdb_s_contains"),
];

impl Spatial {
    /// The predicate with its operands exchanged.
    fn converse(self) -> Spatial {
        match self {
            Spatial::Within => Spatial::Contains,
            Spatial::Contains => Spatial::Within,
            other => other,
        }
    }

    fn function(self) -> &'static str {
        SPATIAL.iter().find(|(s, ..)| *s == self).map(|(_, _, f)| *f).unwrap_or_default()
    }

    fn holds(self, matrix: &geo::relate::IntersectionMatrix) -> bool {
        match self {
            Spatial::Intersects => matrix.is_intersects(),
            Spatial::Equals => matrix.is_equal_topo(),
            Spatial::Disjoint => matrix.is_disjoint(),
            Spatial::Touches => matrix.is_touches(),
            Spatial::Within => matrix.is_within(),
            Spatial::Overlaps => matrix.is_overlaps(),
            Spatial::Crosses => matrix.is_crosses(),
            Spatial::Contains => matrix.is_contains(),
        }
    }
}

/// The CQL2 temporal functions, each as a condition on the start and end of its two operands.
const TEMPORAL: [&str; 15] = [
    "t_after",
    "t_before",
    "t_contains",
    "t_disjoint",
    "t_during",
    "t_equals",
    "t_finishedBy",
    "t_finishes",
    "t_intersects",
    "t_meets",
    "t_metBy",
    "t_overlappedBy",
    "t_overlaps",
    "t_startedBy",
    "t_starts",
];

impl Translator {
    /// A boolean expression.
    fn predicate(&mut self, expr: &Expr, depth: usize) -> Result<Frag, FilterError> {
        let operand = self.operand(expr, depth)?;
        self.coerce(operand, Ty::Bool).map_err(|_| FilterError::Arguments {
            op: "filter".into(),
            message: format!(
                "expected a condition, found {}",
                describe_expr(expr).unwrap_or("a value")
            ),
        })
    }

    fn operand(&mut self, expr: &Expr, depth: usize) -> Result<Operand, FilterError> {
        if depth > MAX_DEPTH {
            return Err(FilterError::TooDeep);
        }
        Ok(match expr {
            Expr::Null => Operand::Const(Const::Null),
            Expr::Bool(b) => Operand::Const(Const::Bool(*b)),
            Expr::Float(x) => {
                if !x.is_finite() {
                    return Err(FilterError::Number);
                }
                Operand::Const(Const::Number(*x))
            }
            Expr::Literal(s) => Operand::Const(Const::Text(s.clone())),
            Expr::Property { property } => property_operand(property),
            Expr::Timestamp { timestamp } => {
                let text = literal_text(timestamp, "TIMESTAMP")?;
                Operand::Const(Const::Time(parse_instant(text)?))
            }
            Expr::Date { date } => {
                let text = literal_text(date, "DATE")?;
                Operand::Const(Const::Date(parse_date(text)?))
            }
            Expr::Interval { interval } => self.interval(interval, depth)?,
            Expr::Geometry(g) => Operand::Const(Const::Geometry(geometry_blob(g)?)),
            Expr::BBox { bbox } => Operand::Const(Const::Geometry(bbox_blob(bbox)?)),
            Expr::Array(items) => Operand::Const(Const::Array(array_literal(items, depth + 1)?)),
            Expr::Operation { op, args } => self.operation(op, args, depth)?,
        })
    }

    fn operation(
        &mut self,
        op: &str,
        args: &[Box<Expr>],
        depth: usize,
    ) -> Result<Operand, FilterError> {
        let depth = depth + 1;
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(args_error(op, format!("takes {n} argument{}", if n == 1 { "" } else { "s" })))
            }
        };
        let lower = op.to_ascii_lowercase();
        let bool_frag = |frag: Frag| Ok(Operand::Typed(Ty::Bool, frag));
        match lower.as_str() {
            "and" | "or" => {
                if args.is_empty() {
                    return Err(args_error(op, "needs at least one argument"));
                }
                let parts =
                    args.iter().map(|a| self.predicate(a, depth)).collect::<Result<Vec<_>, _>>()?;
                bool_frag(Frag::tree(&parts, if lower == "and" { " AND " } else { " OR " }))
            }
            "not" => {
                arity(1)?;
                let inner = self.predicate(&args[0], depth)?;
                bool_frag(Frag::raw("(NOT ").f(&inner).s(")"))
            }
            "=" | "<>" | "!=" | "<" | "<=" | ">" | ">=" => {
                arity(2)?;
                let cmp = Cmp::from_op(&lower).unwrap_or(Cmp::Eq);
                let l = self.operand(&args[0], depth)?;
                let r = self.operand(&args[1], depth)?;
                bool_frag(self.compare(cmp, l, r)?)
            }
            "isnull" => {
                arity(1)?;
                let operand = self.operand(&args[0], depth)?;
                let frag = match operand {
                    Operand::Prop(prop) => Frag::raw("(").f(&prop.value()).s(" IS NULL)"),
                    Operand::Typed(_, frag) => Frag::raw("(").f(&frag).s(" IS NULL)"),
                    Operand::ItemTime => Frag::raw("(").s(DATETIME_START).s(" IS NULL)"),
                    Operand::Const(Const::Null) => Frag::raw("1"),
                    Operand::Const(_) => Frag::raw("0"),
                };
                bool_frag(frag)
            }
            "between" => {
                // The draft form `[value, [low, high]]` (still sent by stac-api-validator) is
                // read as `[value, low, high]`.
                let (low, high) = match (args.len(), args.get(1).map(|a| &**a)) {
                    (2, Some(Expr::Array(bounds))) if bounds.len() == 2 => (&bounds[0], &bounds[1]),
                    _ => {
                        arity(3)?;
                        (&args[1], &args[2])
                    }
                };
                let value = self.operand(&args[0], depth)?;
                let low = self.operand(low, depth)?;
                let high = self.operand(high, depth)?;
                let above = self.compare(Cmp::Ge, value.clone(), low)?;
                let below = self.compare(Cmp::Le, value, high)?;
                bool_frag(Frag::join(&[above, below], " AND "))
            }
            "in" => {
                arity(2)?;
                let value = self.operand(&args[0], depth)?;
                let Expr::Array(items) = &*args[1] else {
                    return Err(args_error(op, "needs a list of values"));
                };
                bool_frag(self.in_list(value, items, depth)?)
            }
            "like" => {
                arity(2)?;
                let value = self.operand(&args[0], depth)?;
                let pattern = self.operand(&args[1], depth)?;
                let Operand::Const(Const::Text(pattern)) = pattern else {
                    if let Operand::Const(Const::Null) = pattern {
                        return bool_frag(Frag::raw("NULL"));
                    }
                    return Err(FilterError::Unsupported(
                        "LIKE with a pattern that is not a literal string".into(),
                    ));
                };
                let value = self
                    .coerce(value, Ty::Text)
                    .map_err(|_| args_error(op, "the value to match must be a string"))?;
                // SQLite reads a pattern only up to a NUL, and refuses longer ones.
                if pattern.contains('\0') {
                    return Err(args_error(op, "a pattern cannot contain the NUL character"));
                }
                let glob = like_to_glob(&pattern);
                if glob.len() > MAX_PATTERN_LEN {
                    return Err(args_error(
                        op,
                        format!("the pattern is longer than {MAX_PATTERN_LEN} bytes"),
                    ));
                }
                bool_frag(Frag::raw("(").f(&value).s(" GLOB ").f(&text_param(&glob)).s(")"))
            }
            "casei" | "accenti" => {
                arity(1)?;
                let fold: fn(&str) -> String = if lower == "casei" { casei } else { accenti };
                let function = if lower == "casei" { "stacdb_casei(" } else { "stacdb_accenti(" };
                Ok(match self.operand(&args[0], depth)? {
                    Operand::Const(Const::Text(s)) => Operand::Const(Const::Text(fold(&s))),
                    Operand::Const(Const::Null) => Operand::Const(Const::Null),
                    other => {
                        let frag = self
                            .coerce(other, Ty::Text)
                            .map_err(|_| args_error(op, "takes a string"))?;
                        Operand::Typed(Ty::Text, Frag::raw(function).f(&frag).s(")"))
                    }
                })
            }
            "+" | "-" | "*" | "/" | "%" | "^" | "div" => self.arithmetic(op, &lower, args, depth),
            _ => {
                if let Some((spatial, ..)) = SPATIAL.iter().find(|(_, name, _)| *name == lower) {
                    arity(2)?;
                    return bool_frag(self.spatial(op, *spatial, args, depth)?);
                }
                if let Some(name) = TEMPORAL.iter().find(|name| name.eq_ignore_ascii_case(op)) {
                    arity(2)?;
                    return bool_frag(self.temporal(name, args, depth)?);
                }
                if ["a_equals", "a_contains", "a_containedby", "a_overlaps"]
                    .contains(&lower.as_str())
                {
                    arity(2)?;
                    return bool_frag(self.array_op(&lower, args, depth)?);
                }
                Err(FilterError::UnknownFunction(op.to_string()))
            }
        }
    }

    /// Converts an operand to SQL of the given type, or fails with a type error.
    fn coerce(&mut self, operand: Operand, ty: Ty) -> Result<Frag, FilterError> {
        let mismatch = |found: &str| FilterError::Arguments {
            op: "filter".into(),
            message: format!("expected {}, found {found}", ty.name()),
        };
        match operand {
            Operand::Prop(prop) => prop.typed(ty),
            Operand::Typed(t, frag) if t == ty => Ok(frag),
            Operand::ItemTime if ty == Ty::Time => Ok(Frag::raw(DATETIME_START)),
            Operand::Const(c) => match (c, ty) {
                (Const::Null, _) => Ok(Frag::raw("NULL")),
                (Const::Number(x), Ty::Number) => Ok(number_param(x)),
                (Const::Text(s), Ty::Text) => Ok(text_param(&s)),
                (Const::Bool(b), Ty::Bool) => Ok(int_param(i64::from(b))),
                (Const::Time(t), Ty::Time) => Ok(int_param(t)),
                (Const::Text(s), Ty::Time) => Ok(int_param(parse_instant(&s)?)),
                (Const::Geometry(blob), Ty::Geometry) => Ok(Frag::param(Value::Blob(blob))),
                (Const::Array(items), Ty::Array) => Ok(text_param(&Json::Array(items).to_string())),
                (other, _) => Err(mismatch(Operand::Const(other).describe())),
            },
            other => Err(mismatch(other.describe())),
        }
    }

    /// `l op r`, with the types of properties and literals reconciled.
    fn compare(&mut self, cmp: Cmp, l: Operand, r: Operand) -> Result<Frag, FilterError> {
        use Operand::{Const as C, Prop};
        let op = cmp.to_string();
        let time_like = |o: &Operand| {
            matches!(o, Operand::ItemTime | Operand::Typed(Ty::Time, _) | C(Const::Time(_)))
        };
        // A string compared with a timestamp is read as a timestamp, or as a date.
        let as_temporal = |o: Operand, other: &Operand| -> Result<Operand, FilterError> {
            match o {
                C(Const::Text(s)) if time_like(other) || matches!(other, C(Const::Date(_))) => {
                    if let Some(t) = document::parse_datetime(&s) {
                        Ok(C(Const::Time(t.timestamp_micros())))
                    } else if let Ok(d) = parse_date(&s) {
                        Ok(C(Const::Date(d)))
                    } else {
                        Err(FilterError::Temporal(s))
                    }
                }
                other => Ok(other),
            }
        };
        let l = as_temporal(l, &r)?;
        let r = as_temporal(r, &l)?;
        match (l, r) {
            (C(Const::Null), _) | (_, C(Const::Null)) => Ok(Frag::raw("NULL")),
            (C(Const::Interval(..)), _) | (_, C(Const::Interval(..))) => Err(args_error(
                &op,
                "intervals can only be compared with the T_* temporal functions",
            )),
            (C(Const::Geometry(_)), _)
            | (_, C(Const::Geometry(_)))
            | (Operand::Typed(Ty::Geometry, _), _)
            | (_, Operand::Typed(Ty::Geometry, _)) => Err(args_error(
                &op,
                "geometries can only be compared with the S_* spatial functions",
            )),
            (C(Const::Array(_)), _)
            | (_, C(Const::Array(_)))
            | (Operand::Typed(Ty::Array, _), _)
            | (_, Operand::Typed(Ty::Array, _)) => {
                Err(args_error(&op, "arrays can only be compared with the A_* array functions"))
            }
            (C(Const::Date(a)), C(Const::Date(b))) => {
                Ok(Frag::raw("(").f(&int_param(a)).s(cmp.sql()).f(&int_param(b)).s(")"))
            }
            (C(Const::Date(day)), other) => self.compare_date(cmp.flip(), other, day),
            (other, C(Const::Date(day))) => self.compare_date(cmp, other, day),
            (Prop(a), Prop(b)) => {
                // Two properties of unknown types: compared only when their JSON types agree.
                Ok(Frag::raw("(CASE WHEN ")
                    .f(&a.class())
                    .s(" = ")
                    .f(&b.class())
                    .s(" THEN ")
                    .f(&a.value())
                    .s(cmp.sql())
                    .f(&b.value())
                    .s(" END)"))
            }
            (l, r) => {
                let ty = match (natural_type(&l), natural_type(&r)) {
                    (Some(a), Some(b)) if a != b => {
                        return Err(args_error(
                            &op,
                            format!("cannot compare {} with {}", l.describe(), r.describe()),
                        ));
                    }
                    (Some(t), _) | (_, Some(t)) => t,
                    (None, None) => Ty::Text, // unreachable: two properties are handled above
                };
                let l = self.coerce(l, ty)?;
                let r = self.coerce(r, ty)?;
                Ok(Frag::raw("(").f(&l).s(cmp.sql()).f(&r).s(")"))
            }
        }
    }

    /// `x op day`, where x is a timestamp compared by its UTC calendar date.
    fn compare_date(&mut self, cmp: Cmp, x: Operand, day: i64) -> Result<Frag, FilterError> {
        let x = self.coerce(x, Ty::Time).map_err(|_| {
            args_error(&cmp.to_string(), "a date can only be compared with a date or a timestamp")
        })?;
        let start = int_param(day);
        let next = int_param(day.saturating_add(DAY_MICROS));
        let cond = |a: &Frag, op: &str, b: &Frag| Frag::raw("(").f(a).s(op).f(b).s(")");
        Ok(match cmp {
            Cmp::Eq => Frag::join(&[cond(&x, " >= ", &start), cond(&x, " < ", &next)], " AND "),
            Cmp::Ne => Frag::join(&[cond(&x, " < ", &start), cond(&x, " >= ", &next)], " OR "),
            Cmp::Lt => cond(&x, " < ", &start),
            Cmp::Le => cond(&x, " < ", &next),
            Cmp::Gt => cond(&x, " >= ", &next),
            Cmp::Ge => cond(&x, " >= ", &start),
        })
    }

    fn in_list(
        &mut self,
        value: Operand,
        items: &[Box<Expr>],
        depth: usize,
    ) -> Result<Frag, FilterError> {
        if items.is_empty() {
            return Ok(Frag::raw("0"));
        }
        let items = items
            .iter()
            .map(|item| self.operand(item, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        // A list of plain literals of one type becomes `x IN (?, ?, …)`; anything else an OR of
        // equality comparisons.
        let simple_type = items.iter().try_fold(None, |seen: Option<Ty>, item| {
            let ty = match item {
                Operand::Const(Const::Number(_)) => Ty::Number,
                Operand::Const(Const::Text(_)) => Ty::Text,
                Operand::Const(Const::Bool(_)) => Ty::Bool,
                Operand::Const(Const::Time(_)) => Ty::Time,
                _ => return None,
            };
            match seen {
                Some(s) if s != ty => None,
                _ => Some(Some(ty)),
            }
        });
        let value_type = natural_type(&value);
        if let Some(Some(ty)) = simple_type
            && value_type.is_none_or(|t| t == ty)
            && !(ty == Ty::Text && value_type == Some(Ty::Time))
            && !matches!(value, Operand::Const(_))
        {
            let value = self.coerce(value, ty)?;
            let list = items
                .into_iter()
                .map(|item| self.coerce(item, ty))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Frag::raw("(").f(&value).s(" IN ").f(&Frag::join(&list, ", ")).s(")"));
        }
        let parts = items
            .into_iter()
            .map(|item| self.compare(Cmp::Eq, value.clone(), item))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Frag::tree(&parts, " OR "))
    }

    fn arithmetic(
        &mut self,
        op: &str,
        lower: &str,
        args: &[Box<Expr>],
        depth: usize,
    ) -> Result<Operand, FilterError> {
        let binary = matches!(lower, "^" | "div");
        if args.len() < 2 || (binary && args.len() != 2) {
            return Err(args_error(op, "takes two arguments"));
        }
        let mut operands = Vec::with_capacity(args.len());
        for arg in args {
            let operand = self.operand(arg, depth)?;
            let found = operand.describe();
            let frag = self
                .coerce(operand, Ty::Number)
                .map_err(|_| args_error(op, format!("takes numbers, found {found}")))?;
            operands.push(frag);
        }
        let mut iter = operands.into_iter();
        let mut acc = iter.next().unwrap_or_default();
        for next in iter {
            acc = match lower {
                "+" | "-" | "*" => Frag::raw("(").f(&acc).s(" ").s(lower).s(" ").f(&next).s(")"),
                "/" => Frag::raw("(CAST(").f(&acc).s(" AS REAL) / ").f(&next).s(")"),
                "%" => Frag::raw("stacdb_mod(").f(&acc).s(", ").f(&next).s(")"),
                "^" => Frag::raw("stacdb_pow(").f(&acc).s(", ").f(&next).s(")"),
                _ => Frag::raw("stacdb_div(").f(&acc).s(", ").f(&next).s(")"),
            };
        }
        Ok(Operand::Typed(Ty::Number, acc))
    }

    fn spatial(
        &mut self,
        op: &str,
        spatial: Spatial,
        args: &[Box<Expr>],
        depth: usize,
    ) -> Result<Frag, FilterError> {
        let a = self.operand(&args[0], depth)?;
        let b = self.operand(&args[1], depth)?;
        // The literal goes second, where the SQL function keeps it parsed between rows.
        let (spatial, a, b) = if matches!(a, Operand::Const(_)) && !matches!(b, Operand::Const(_)) {
            (spatial.converse(), b, a)
        } else {
            (spatial, a, b)
        };
        let mut geometry = |o: Operand| {
            let found = o.describe();
            if let Operand::Prop(_) = o {
                return Err(FilterError::Unsupported(format!(
                    "{op} on properties other than `geometry`"
                )));
            }
            self.coerce(o, Ty::Geometry)
                .map_err(|_| args_error(op, format!("takes geometries, found {found}")))
        };
        let a = geometry(a)?;
        let b = geometry(b)?;
        Ok(Frag::raw(spatial.function()).s("(").f(&a).s(", ").f(&b).s(")"))
    }

    /// An operand of a temporal function as its start and end instants.
    fn time_span(&mut self, operand: Operand, op: &str) -> Result<(Frag, Frag), FilterError> {
        Ok(match operand {
            Operand::ItemTime => (Frag::raw(DATETIME_START), Frag::raw("i.datetime_end")),
            Operand::Const(Const::Date(day)) => {
                (int_param(day), int_param(day.saturating_add(DAY_MICROS - 1)))
            }
            Operand::Const(Const::Text(s)) => {
                if let Some(t) = document::parse_datetime(&s) {
                    let t = t.timestamp_micros();
                    (int_param(t), int_param(t))
                } else if let Ok(day) = parse_date(&s) {
                    (int_param(day), int_param(day.saturating_add(DAY_MICROS - 1)))
                } else {
                    return Err(FilterError::Temporal(s));
                }
            }
            Operand::Const(Const::Interval(start, end)) => {
                let bound = |b: Bound, is_end: bool| match b {
                    Bound::Open => int_param(if is_end { i64::MAX } else { i64::MIN }),
                    Bound::At(t) => int_param(t),
                    Bound::Day(d) => {
                        int_param(if is_end { d.saturating_add(DAY_MICROS - 1) } else { d })
                    }
                    Bound::Instant(frag) => frag,
                };
                (bound(start, false), bound(end, true))
            }
            Operand::Const(Const::Null) => (Frag::raw("NULL"), Frag::raw("NULL")),
            other => {
                let found = other.describe();
                let frag = self.coerce(other, Ty::Time).map_err(|_| {
                    args_error(op, format!("takes timestamps, dates or intervals, found {found}"))
                })?;
                (frag.clone(), frag)
            }
        })
    }

    fn interval(&mut self, bounds: &[Box<Expr>], depth: usize) -> Result<Operand, FilterError> {
        if bounds.len() != 2 {
            return Err(args_error("INTERVAL", "takes two arguments"));
        }
        let mut out = Vec::with_capacity(2);
        for bound in bounds {
            let operand = self.operand(bound, depth + 1)?;
            out.push(match operand {
                Operand::Const(Const::Text(s)) if s == ".." => Bound::Open,
                Operand::Const(Const::Text(s)) => {
                    if let Some(t) = document::parse_datetime(&s) {
                        Bound::At(t.timestamp_micros())
                    } else {
                        Bound::Day(parse_date(&s)?)
                    }
                }
                Operand::Const(Const::Time(t)) => Bound::At(t),
                Operand::Const(Const::Date(d)) => Bound::Day(d),
                Operand::ItemTime => Bound::Instant(Frag::raw(DATETIME_START)),
                other @ (Operand::Prop(_) | Operand::Typed(Ty::Time, _)) => {
                    Bound::Instant(self.coerce(other, Ty::Time)?)
                }
                other => {
                    return Err(args_error(
                        "INTERVAL",
                        format!("takes timestamps, dates or '..', found {}", other.describe()),
                    ));
                }
            });
        }
        let end = out.pop().unwrap_or(Bound::Open);
        let start = out.pop().unwrap_or(Bound::Open);
        Ok(Operand::Const(Const::Interval(start, end)))
    }

    fn temporal(
        &mut self,
        name: &str,
        args: &[Box<Expr>],
        depth: usize,
    ) -> Result<Frag, FilterError> {
        let a = self.operand(&args[0], depth)?;
        let a = self.time_span(a, name)?;
        let b = self.operand(&args[1], depth)?;
        let b = self.time_span(b, name)?;
        let (a_start, a_end) = (&a.0, &a.1);
        let (b_start, b_end) = (&b.0, &b.1);
        let c = |x: &Frag, op: &str, y: &Frag| Frag::raw("(").f(x).s(op).f(y).s(")");
        let all = |parts: &[Frag]| Frag::tree(parts, " AND ");
        // OGC 21-065r2, clause 6.3.11 / Allen's interval algebra, on closed intervals.
        Ok(match name {
            "t_after" => c(a_start, " > ", b_end),
            "t_before" => c(a_end, " < ", b_start),
            "t_contains" => all(&[c(a_start, " < ", b_start), c(a_end, " > ", b_end)]),
            "t_disjoint" => {
                Frag::join(&[c(a_start, " > ", b_end), c(a_end, " < ", b_start)], " OR ")
            }
            "t_during" => all(&[c(a_start, " > ", b_start), c(a_end, " < ", b_end)]),
            "t_equals" => all(&[c(a_start, " = ", b_start), c(a_end, " = ", b_end)]),
            "t_finishedBy" => all(&[c(a_start, " < ", b_start), c(a_end, " = ", b_end)]),
            "t_finishes" => all(&[c(a_start, " > ", b_start), c(a_end, " = ", b_end)]),
            "t_intersects" => all(&[c(a_start, " <= ", b_end), c(a_end, " >= ", b_start)]),
            "t_meets" => c(a_end, " = ", b_start),
            "t_metBy" => c(a_start, " = ", b_end),
            "t_overlappedBy" => {
                all(&[c(a_start, " > ", b_start), c(a_start, " < ", b_end), c(a_end, " > ", b_end)])
            }
            "t_overlaps" => {
                all(&[c(a_start, " < ", b_start), c(a_end, " > ", b_start), c(a_end, " < ", b_end)])
            }
            "t_startedBy" => all(&[c(a_start, " = ", b_start), c(a_end, " > ", b_end)]),
            "t_starts" => all(&[c(a_start, " = ", b_start), c(a_end, " < ", b_end)]),
            other => return Err(FilterError::UnknownFunction(other.to_string())),
        })
    }

    /// A JSON array operand.
    fn array(&mut self, operand: Operand, op: &str) -> Result<Frag, FilterError> {
        let found = operand.describe();
        self.coerce(operand, Ty::Array)
            .map_err(|_| args_error(op, format!("takes arrays, found {found}")))
    }

    /// Whether every element of array `b` is in array `a` (NULL when either is NULL).
    fn contains(&mut self, a: &Frag, b: &Frag) -> Frag {
        self.aliases += 1;
        let (x, y) = (format!("ax{}", self.aliases), format!("ay{}", self.aliases));
        Frag::raw("(CASE WHEN ")
            .f(a)
            .s(" IS NULL OR ")
            .f(b)
            .s(" IS NULL THEN NULL ELSE NOT EXISTS (SELECT 1 FROM json_each(")
            .f(b)
            .s(&format!(") AS {y} WHERE NOT EXISTS (SELECT 1 FROM json_each("))
            .f(a)
            .s(&format!(") AS {x} WHERE {}", element_match(&x, &y)))
            .s(")) END)")
    }

    fn array_op(
        &mut self,
        op: &str,
        args: &[Box<Expr>],
        depth: usize,
    ) -> Result<Frag, FilterError> {
        let a = self.operand(&args[0], depth)?;
        let a = self.array(a, op)?;
        let b = self.operand(&args[1], depth)?;
        let b = self.array(b, op)?;
        Ok(match op {
            "a_contains" => self.contains(&a, &b),
            "a_containedby" => self.contains(&b, &a),
            "a_equals" => {
                let ab = self.contains(&a, &b);
                let ba = self.contains(&b, &a);
                Frag::join(&[ab, ba], " AND ")
            }
            _ => {
                self.aliases += 1;
                let (x, y) = (format!("ax{}", self.aliases), format!("ay{}", self.aliases));
                Frag::raw("(CASE WHEN ")
                    .f(&a)
                    .s(" IS NULL OR ")
                    .f(&b)
                    .s(" IS NULL THEN NULL ELSE EXISTS (SELECT 1 FROM json_each(")
                    .f(&a)
                    .s(&format!(") AS {x}, json_each("))
                    .f(&b)
                    .s(&format!(") AS {y} WHERE {}) END)", element_match(&x, &y)))
            }
        })
    }
}

/// SQL matching two `json_each` rows holding equal JSON values (1 and 1.0 being equal).
fn element_match(x: &str, y: &str) -> String {
    format!(
        "{x}.value IS {y}.value AND replace({x}.type, 'integer', 'real') = \
         replace({y}.type, 'integer', 'real')"
    )
}

/// The type an operand has regardless of context, if any.
fn natural_type(operand: &Operand) -> Option<Ty> {
    match operand {
        Operand::Prop(_) | Operand::Const(Const::Null) => None,
        Operand::Typed(ty, _) => Some(*ty),
        Operand::ItemTime => Some(Ty::Time),
        Operand::Const(c) => Some(match c {
            Const::Number(_) => Ty::Number,
            Const::Text(_) => Ty::Text,
            Const::Bool(_) => Ty::Bool,
            Const::Time(_) | Const::Date(_) | Const::Interval(..) => Ty::Time,
            Const::Geometry(_) => Ty::Geometry,
            Const::Array(_) => Ty::Array,
            Const::Null => return None,
        }),
    }
}

fn describe_expr(expr: &Expr) -> Option<&'static str> {
    Some(match expr {
        Expr::Float(_) => "a number",
        Expr::Literal(_) => "a string",
        Expr::Timestamp { .. } => "a timestamp",
        Expr::Date { .. } => "a date",
        Expr::Interval { .. } => "an interval",
        Expr::Geometry(_) | Expr::BBox { .. } => "a geometry",
        Expr::Array(_) => "an array",
        Expr::Property { .. } => "a property that is not a boolean",
        _ => return None,
    })
}

/// The operand a property name stands for.
fn property_operand(name: &str) -> Operand {
    match name {
        "id" => Operand::Typed(Ty::Text, Frag::raw("i.id")),
        "collection" => Operand::Typed(Ty::Text, Frag::raw("i.collection")),
        "geometry" => Operand::Typed(Ty::Geometry, Frag::raw("i.geometry")),
        "datetime" | "properties.datetime" => Operand::ItemTime,
        "start_datetime" | "properties.start_datetime" => {
            Operand::Typed(Ty::Time, Frag::raw(DATETIME_START))
        }
        "end_datetime" | "properties.end_datetime" => {
            Operand::Typed(Ty::Time, Frag::raw("i.datetime_end"))
        }
        other => Operand::Prop(PropRef::new(other.strip_prefix("properties.").unwrap_or(other))),
    }
}

/// The text of a TIMESTAMP or DATE literal.
fn literal_text<'e>(expr: &'e Expr, what: &str) -> Result<&'e str, FilterError> {
    match expr {
        Expr::Literal(s) => Ok(s),
        _ => Err(args_error(what, "takes a string literal")),
    }
}

fn parse_instant(s: &str) -> Result<i64, FilterError> {
    document::parse_datetime(s)
        .map(|t| t.timestamp_micros())
        .ok_or_else(|| FilterError::Temporal(s.to_string()))
}

/// A `YYYY-MM-DD` date as the microseconds of its start (UTC).
fn parse_date(s: &str) -> Result<i64, FilterError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
        .ok_or_else(|| FilterError::Temporal(s.to_string()))
}

/// A CQL2 geometry literal as a GeoPackage blob.
/// The boxes an item's geometry must touch for `expr` to hold, when `expr` (or one of the
/// operands of its top-level `AND`) is a spatial predicate other than `S_DISJOINT` between
/// `geometry` and a literal: each of those implies that the two intersect. The boxes are what
/// the item R-tree can be asked for: the literal's bounds, widened to the whole longitude range
/// when they run past ±180 (as the R-tree stores such items). `None` when nothing bounds it.
pub fn spatial_bounds(expr: &Expr) -> Option<[f64; 4]> {
    let Expr::Operation { op, args } = expr else { return None };
    let op = op.to_ascii_lowercase();
    if op == "and" {
        return args.iter().find_map(|a| spatial_bounds(a));
    }
    let implies_intersection =
        SPATIAL.iter().any(|(s, name, _)| *name == op && *s != Spatial::Disjoint);
    if !implies_intersection || args.len() != 2 {
        return None;
    }
    let is_geometry = |e: &Expr| matches!(e, Expr::Property { property } if property == "geometry");
    let literal = match (&*args[0], &*args[1]) {
        (g, other) | (other, g) if is_geometry(g) => other,
        _ => return None,
    };
    let blob = match literal {
        Expr::Geometry(g) => geometry_blob(g).ok()?,
        Expr::BBox { bbox } => bbox_blob(bbox).ok()?,
        _ => return None,
    };
    let envelope = geometry::envelope(&blob)?;
    Some(geometry::globe_box([
        envelope.min().x,
        envelope.min().y,
        envelope.max().x,
        envelope.max().y,
    ]))
}

fn geometry_blob(g: &cql2::Geometry) -> Result<Vec<u8>, FilterError> {
    // Both variants serialise as GeoJSON (WKT is converted by the cql2 crate).
    let value = serde_json::to_value(g).map_err(|e| FilterError::Geometry(e.to_string()))?;
    on_globe(geometry::footprint(&value).map_err(FilterError::Geometry)?)
}

/// Refuses literals far off the globe (longitudes beyond ±360, latitudes beyond ±90): the
/// geometry predicates degenerate on them.
fn on_globe(footprint: geometry::Footprint) -> Result<Vec<u8>, FilterError> {
    if let Some([minx, miny, maxx, maxy]) = footprint.bounds
        && (minx < -360.0 || maxx > 360.0 || miny < -90.0 || maxy > 90.0)
    {
        return Err(FilterError::Geometry(
            "coordinates must be longitudes within ±360 and latitudes within ±90".into(),
        ));
    }
    Ok(footprint.blob)
}

/// A BBOX literal (4 or 6 numbers) as a GeoPackage blob; across the antimeridian, two boxes.
fn bbox_blob(items: &[Box<Expr>]) -> Result<Vec<u8>, FilterError> {
    let numbers = items
        .iter()
        .map(|item| match **item {
            Expr::Float(x) if x.is_finite() => Ok(x),
            _ => Err(FilterError::Geometry("a BBOX takes 4 or 6 finite numbers".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let [minx, miny, maxx, maxy] = match numbers[..] {
        [a, b, c, d] => [a, b, c, d],
        [a, b, _, d, e, _] => [a, b, d, e],
        _ => return Err(FilterError::Geometry("a BBOX takes 4 or 6 numbers".into())),
    };
    if miny > maxy {
        return Err(FilterError::Geometry("a BBOX's minimum latitude is above its maximum".into()));
    }
    let ring = |x0: f64, x1: f64| {
        serde_json::json!([[[x0, miny], [x1, miny], [x1, maxy], [x0, maxy], [x0, miny]]])
    };
    let value = if minx > maxx {
        serde_json::json!({"type": "MultiPolygon", "coordinates": [ring(minx, 180.0), ring(-180.0, maxx)]})
    } else {
        serde_json::json!({"type": "Polygon", "coordinates": ring(minx, maxx)})
    };
    on_globe(geometry::footprint(&value).map_err(FilterError::Geometry)?)
}

/// An array literal as JSON values.
fn array_literal(items: &[Box<Expr>], depth: usize) -> Result<Vec<Json>, FilterError> {
    if depth > MAX_DEPTH {
        return Err(FilterError::TooDeep);
    }
    items
        .iter()
        .map(|item| {
            Ok(match &**item {
                Expr::Null => Json::Null,
                Expr::Bool(b) => Json::Bool(*b),
                Expr::Float(x) => {
                    let n = if x.fract() == 0.0 && x.abs() <= 9_007_199_254_740_992.0 {
                        serde_json::Number::from(*x as i64)
                    } else {
                        serde_json::Number::from_f64(*x).ok_or(FilterError::Number)?
                    };
                    Json::Number(n)
                }
                Expr::Literal(s) => Json::String(s.clone()),
                Expr::Timestamp { timestamp } => {
                    Json::String(literal_text(timestamp, "TIMESTAMP")?.to_string())
                }
                Expr::Date { date } => Json::String(literal_text(date, "DATE")?.to_string()),
                Expr::Array(inner) => Json::Array(array_literal(inner, depth + 1)?),
                _ => {
                    return Err(FilterError::Unsupported(
                        "arrays holding anything but literal values".into(),
                    ));
                }
            })
        })
        .collect()
}

/// A CQL2 LIKE pattern (`%`, `_`, `\` escape) as a case-sensitive SQLite GLOB pattern.
fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    let literal = |out: &mut String, c: char| match c {
        '*' | '?' | '[' => {
            out.push('[');
            out.push(c);
            out.push(']');
        }
        c => out.push(c),
    };
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '\\' => literal(&mut out, chars.next().unwrap_or('\\')),
            c => literal(&mut out, c),
        }
    }
    out
}

/// CASEI: lowercase with Unicode rules.
pub fn casei(s: &str) -> String {
    s.to_lowercase()
}

/// ACCENTI: strip diacritics (decompose, drop combining marks, recompose).
pub fn accenti(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    s.nfd().filter(|c| !is_combining_mark(*c)).nfc().collect()
}

// ------------------------------------------------------------------------------------------
// SQL functions
// ------------------------------------------------------------------------------------------

/// Registers the SQL functions translated filters call:
///
/// - `stacdb_s_intersects(a, b)` and the other seven `stacdb_s_*` predicates over GeoPackage
///   blobs (NULL when either is NULL or not a geometry);
/// - `stacdb_casei(text)`, `stacdb_accenti(text)`;
/// - `stacdb_timestamp(text)`: a datetime string as microseconds, NULL when it is not one;
/// - `stacdb_mod(a, b)`, `stacdb_div(a, b)`, `stacdb_pow(a, b)` (NULL on division by zero and
///   for results that are not finite).
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    for (spatial, _, function) in SPATIAL {
        conn.create_scalar_function(function, 2, flags, move |ctx| spatial_function(ctx, spatial))?;
    }
    let text_fn = |f: fn(&str) -> String| {
        move |ctx: &Context<'_>| -> rusqlite::Result<Option<String>> {
            Ok(match ctx.get_raw(0) {
                ValueRef::Text(t) => Some(f(&String::from_utf8_lossy(t))),
                _ => None,
            })
        }
    };
    conn.create_scalar_function("stacdb_casei", 1, flags, text_fn(casei))?;
    conn.create_scalar_function("stacdb_accenti", 1, flags, text_fn(accenti))?;
    conn.create_scalar_function("stacdb_timestamp", 1, flags, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Text(t) => std::str::from_utf8(t)
                .ok()
                .and_then(document::parse_datetime)
                .map(|t| t.timestamp_micros()),
            _ => None,
        })
    })?;
    let number_fn = |f: fn(f64, f64) -> Option<Value>| {
        move |ctx: &Context<'_>| -> rusqlite::Result<Value> {
            let number = |n: usize| match ctx.get_raw(n) {
                ValueRef::Integer(i) => Some(i as f64),
                ValueRef::Real(r) => Some(r),
                _ => None,
            };
            Ok(match (number(0), number(1)) {
                (Some(a), Some(b)) => f(a, b).unwrap_or(Value::Null),
                _ => Value::Null,
            })
        }
    };
    conn.create_scalar_function(
        "stacdb_mod",
        2,
        flags,
        number_fn(|a, b| if b == 0.0 { None } else { finite(a % b) }),
    )?;
    conn.create_scalar_function(
        "stacdb_div",
        2,
        flags,
        number_fn(|a, b| {
            let q = (a / b).trunc();
            (b != 0.0 && q.is_finite() && q.abs() < 9.2e18).then_some(Value::Integer(q as i64))
        }),
    )?;
    conn.create_scalar_function("stacdb_pow", 2, flags, number_fn(|a, b| finite(a.powf(b))))?;
    Ok(())
}

fn finite(x: f64) -> Option<Value> {
    x.is_finite().then_some(Value::Real(x))
}

fn spatial_function(ctx: &Context<'_>, spatial: Spatial) -> rusqlite::Result<Option<bool>> {
    let ValueRef::Blob(a) = ctx.get_raw(0) else {
        return Ok(None);
    };
    if !matches!(ctx.get_raw(1), ValueRef::Blob(_)) {
        return Ok(None);
    }
    // The second argument is usually a literal: SQLite keeps it parsed between rows.
    let b: Arc<Option<geo::Geometry<f64>>> =
        ctx.get_or_create_aux(1, |value| -> Result<_, String> {
            Ok(match value {
                ValueRef::Blob(blob) => geometry::from_blob(blob).ok(),
                _ => None,
            })
        })?;
    let (Some(_), Ok(a)) = (b.as_ref(), geometry::from_blob(a)) else {
        return Ok(None);
    };
    // geo's relate may panic on degenerate input; such a row is unknown rather than an error.
    let holds = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        with_prepared(&b, |prepared| spatial.holds(&a.relate(prepared)))
    }));
    Ok(holds.ok().flatten())
}

/// The literal of a spatial test, prepared once (its edges indexed) for every row the test
/// reads: without it a many-vertex literal was re-processed for each row, a minute per row for
/// 20,000 vertices. geo's prepared geometries cannot cross threads, so they are kept per thread
/// (SQLite calls a function on the thread running the statement), keyed by the statement's
/// parsed literal, which the cache holds so that its address cannot be reused meanwhile.
fn with_prepared<T>(
    literal: &Arc<Option<geo::Geometry<f64>>>,
    f: impl FnOnce(&geo::PreparedGeometry<'static, geo::Geometry<f64>>) -> T,
) -> Option<T> {
    type Prepared =
        (Arc<Option<geo::Geometry<f64>>>, geo::PreparedGeometry<'static, geo::Geometry<f64>>);
    thread_local! {
        static PREPARED: std::cell::RefCell<Option<Prepared>> = const { std::cell::RefCell::new(None) };
    }
    PREPARED.with(|cell| {
        let mut cell = cell.borrow_mut();
        if !cell.as_ref().is_some_and(|(held, _)| Arc::ptr_eq(held, literal)) {
            let geometry = literal.as_ref().as_ref()?.clone();
            *cell = Some((literal.clone(), geo::PreparedGeometry::from(geometry)));
        }
        cell.as_ref().map(|(_, prepared)| f(prepared))
    })
}
