//! The STAC API free-text search parameter `q`, translated into an FTS5 query.
//!
//! [`to_fts5`] turns the user's `q` string into an expression for `items_fts MATCH ?`
//! (bound as a parameter, never spliced into SQL).
//!
//! # What the specification says
//!
//! The STAC API *Free-Text Search* extension (`stac-api-extensions/freetext-search`,
//! conformance classes `…/v1.0.0-rc.1/…#free-text` and `…#advanced-free-text`) defines:
//!
//! - **Basic** (aligned with OGC API - Records `q`): matching is case-insensitive; in `GET`
//!   the search terms are separated by commas and *any* of them must be present (OR); spaces
//!   inside a comma-separated term have no special meaning, so `EO,Earth Observation` looks
//!   for `EO` or for `Earth Observation`.
//! - **Advanced**: a bare word is a term; `"climate model"` is an exact phrase; terms
//!   separated only by spaces are combined with `OR`, which is the **default** operator;
//!   `OR` and `AND` may be written explicitly; parentheses group (`(quick OR brown) AND fox`);
//!   a leading `+` marks a term that must be included and a leading `-` a term that must be
//!   excluded (`quick +brown -fox`).
//!
//! The specification gives no explicit precedence table and no escape syntax; the choices
//! below fill those gaps and are the documented behaviour of this module.
//!
//! # The grammar implemented
//!
//! From loosest to tightest binding:
//!
//! 1. `,` — separates OR-ed segments (basic syntax). When a list at some level (the whole
//!    query or one parenthesised group) contains a comma, each of its comma-separated
//!    segments that consists only of plain words (no quotes, parentheses, `+`/`-`, `AND`,
//!    `OR`, `NOT`) is one phrase, as in the basic syntax: `EO,Earth Observation` is
//!    `"EO" OR "Earth Observation"`. Any other segment uses the advanced syntax. Empty
//!    segments (`a,,b`, a trailing comma) are ignored.
//! 2. `OR`, or mere whitespace (the default operator) — disjunction.
//! 3. `AND` — conjunction; binds tighter than `OR`, so `a b AND c` is `a OR (b AND c)`.
//! 4. Prefixes `+term`, `-term` and `NOT term` (`NOT` is an extension: a synonym of `-`).
//!    A `+`/`-` is a prefix only at the start of a word and directly followed by a term,
//!    a quote or `(`; anywhere else it is ordinary text (`sentinel-2`, `a - b`).
//! 5. Words, `"quoted phrases"` and `( … )` groups.
//!
//! `AND`, `OR` and `NOT` are operators only when written in upper case and unquoted
//! (`"AND"` or `and` are search terms); a word directly after a `+`/`-` prefix is always a
//! term. Control characters count as whitespace. A phrase cannot contain `"`.
//!
//! ## Included and excluded terms
//!
//! FTS5 has no unary NOT, so `+`/`-` follow the Lucene reading of
//! `quick +brown -fox` (which is where that example syntax comes from): within one OR list
//! (the query or one group), if any entry is `+`-prefixed, a row must match **all** the
//! `+` entries and the plain entries do not change which rows match (they are optional);
//! otherwise it must match **any** of the plain entries. In both cases it must match
//! **none** of the `-`/`NOT` entries. So `quick +brown -fox` is `brown NOT fox` and
//! `a -b c` is `(a OR c) NOT b`. Inside an `AND` chain, `+` is redundant and `-x` excludes:
//! `a AND -b` is `a NOT b`. A list or chain with excluded entries and nothing to exclude
//! them from (`-fox`, `a AND (-b)`) is refused with [`FreeTextError::OnlyExclusions`].
//!
//! ## Terms with nothing to index
//!
//! The index uses the `unicode61` tokenizer, which keeps only letters, digits and
//! private-use characters. A term or phrase containing none of those (`***`, `--`, `🙂`,
//! `""`) could never match a row (FTS5 treats it as an empty phrase, which would make a
//! whole `AND` fail), so it is **dropped** before translation, as if it were not written:
//! `*** fox` is `fox`, `a AND ***` is `a`. If nothing searchable remains the query is refused
//! with [`FreeTextError::NoSearchableTerms`].
//!
//! # Safety
//!
//! The input is tokenised and parsed here; the output is rebuilt from the syntax tree, and
//! every term or phrase is emitted as an FTS5 string literal (`"…"` with `"` doubled), so
//! FTS5 syntax in user text (`NEAR(`, `*`, `^`, `col:term`, `+`, …) is searched as text.
//! A term containing punctuation becomes an FTS5 phrase of its tokens (`title:x` looks for
//! `title` followed by `x`). Input is limited to [`MAX_QUERY_CHARS`] characters and
//! [`MAX_DEPTH`] nested parentheses; and since FTS5's own expression parser has a small fixed
//! stack, an expression that would overflow it (deeply nested exclusions) is refused with
//! [`FreeTextError::TooComplex`] instead of failing in SQLite. The result is therefore always
//! accepted by FTS5 (tested against the bundled SQLite with hostile and random input).

use std::fmt::Write as _;

/// The longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 1_000;

/// The deepest accepted nesting of parentheses.
pub const MAX_DEPTH: usize = 32;

/// Why a free-text query was refused. Columns are 1-based character positions in `q`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FreeTextError {
    /// The query is empty or only whitespace.
    #[error("the free-text query is empty")]
    Empty,
    /// The query is longer than [`MAX_QUERY_CHARS`].
    #[error("the free-text query is too long: {chars} characters, at most {max} are allowed")]
    TooLong {
        /// The query's length in characters.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// Parentheses are nested deeper than [`MAX_DEPTH`].
    #[error("parentheses nested too deeply at column {column}: at most {max} levels are allowed")]
    TooDeep {
        /// Where the parenthesis that went too deep is.
        column: usize,
        /// The limit.
        max: usize,
    },
    /// A `"` opens a phrase that is never closed.
    #[error("unterminated quote: the phrase opened at column {column} has no closing '\"'")]
    UnterminatedQuote {
        /// Where the opening quote is.
        column: usize,
    },
    /// A `(` is never closed.
    #[error("unbalanced parenthesis: the '(' at column {column} is never closed")]
    UnclosedParenthesis {
        /// Where the `(` is.
        column: usize,
    },
    /// A `)` closes nothing.
    #[error("unbalanced parenthesis: the ')' at column {column} has no matching '('")]
    UnmatchedParenthesis {
        /// Where the `)` is.
        column: usize,
    },
    /// `()` with nothing inside.
    #[error("empty parentheses at column {column}")]
    EmptyParentheses {
        /// Where the `(` is.
        column: usize,
    },
    /// An operator (`AND`, `OR`, `NOT`) lacks an operand on one side.
    #[error("dangling operator: '{operator}' at column {column} lacks a term {side} it")]
    DanglingOperator {
        /// The operator, as written.
        operator: &'static str,
        /// Where the operator is.
        column: usize,
        /// `"before"` or `"after"`.
        side: &'static str,
    },
    /// A list or `AND` chain has only excluded (`-`/`NOT`) entries, so there is nothing to
    /// exclude them from (FTS5 cannot match "everything except").
    #[error(
        "the term excluded at column {column} is not combined with any included term: \
         a query or group needs at least one term that is not excluded"
    )]
    OnlyExclusions {
        /// Where the first excluded entry is.
        column: usize,
    },
    /// The query nests groups and exclusions too deeply for FTS5's expression parser,
    /// whose stack is fixed (a few dozen nested operators), even within [`MAX_DEPTH`].
    #[error(
        "the free-text query nests groups and exclusions too deeply for the full-text index; \
         use fewer nested parentheses"
    )]
    TooComplex,
    /// No term of the query contains a letter or digit, so nothing can be searched.
    #[error("the free-text query has no searchable term (no letters or digits)")]
    NoSearchableTerms,
}

/// Translates a free-text query (the STAC API `q` parameter, advanced syntax with the basic
/// comma-separated form) into an FTS5 query string for `items_fts MATCH ?`.
///
/// See the [module documentation](self) for the grammar and semantics. The result only ever
/// contains FTS5 string literals, parentheses and the operators `AND`, `OR` and `NOT`.
///
/// ```
/// use stacdb::search::freetext::to_fts5;
///
/// assert_eq!(to_fts5("climate model").unwrap(), r#"("climate" OR "model")"#);
/// assert_eq!(to_fts5(r#""climate model""#).unwrap(), r#""climate model""#);
/// assert_eq!(to_fts5("quick +brown -fox").unwrap(), r#"("brown" NOT "fox")"#);
/// assert_eq!(to_fts5("EO,Earth Observation").unwrap(), r#"("EO" OR "Earth Observation")"#);
/// assert!(to_fts5("(a OR b").is_err());
/// ```
pub fn to_fts5(q: &str) -> Result<String, FreeTextError> {
    let chars = q.chars().count();
    if chars > MAX_QUERY_CHARS {
        return Err(FreeTextError::TooLong { chars, max: MAX_QUERY_CHARS });
    }
    let tokens = lex(q)?;
    if tokens.is_empty() {
        return Err(FreeTextError::Empty);
    }
    let mut parser = Parser { tokens, pos: 0 };
    let group = parser.group(1, 0, false)?;
    let mut fts = lower_group(&group)?.ok_or(FreeTextError::NoSearchableTerms)?;
    if parser_stack(&fts) > FTS5_STACK_BUDGET {
        // AND and OR commute: parsing a deep operand first costs FTS5 less stack.
        deepest_first(&mut fts);
        if parser_stack(&fts) > FTS5_STACK_BUDGET {
            return Err(FreeTextError::TooComplex);
        }
    }
    let mut out = String::new();
    emit(&fts, &mut out);
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Phrase(String),
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    And,
    Or,
    Not,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    column: usize,
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

fn lex(q: &str) -> Result<Vec<Token>, FreeTextError> {
    let chars: Vec<char> = q.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    // A word right after a `+`/`-` prefix is a term even if it spells an operator.
    let mut after_prefix = false;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if is_space(c) {
            i += 1;
            continue;
        }
        let prefixed = std::mem::take(&mut after_prefix);
        let tok = match c {
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '"' => {
                let Some(len) = chars[i + 1..].iter().position(|&c| c == '"') else {
                    return Err(FreeTextError::UnterminatedQuote { column });
                };
                let text = chars[i + 1..i + 1 + len]
                    .iter()
                    .map(|&c| if c.is_control() { ' ' } else { c })
                    .collect();
                i += len + 2;
                Tok::Phrase(text)
            }
            '+' | '-' if chars.get(i + 1).is_some_and(|&n| starts_operand(n)) => {
                i += 1;
                after_prefix = true;
                if c == '+' { Tok::Plus } else { Tok::Minus }
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !is_space(chars[i])
                    && !matches!(chars[i], '(' | ')' | ',' | '"')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.as_str() {
                    "AND" if !prefixed => Tok::And,
                    "OR" if !prefixed => Tok::Or,
                    "NOT" if !prefixed => Tok::Not,
                    _ => Tok::Word(word),
                }
            }
        };
        tokens.push(Token { tok, column });
    }
    Ok(tokens)
}

/// Whether `c`, right after a `+`/`-`, makes that sign a prefix.
fn starts_operand(c: char) -> bool {
    !is_space(c) && !matches!(c, ')' | ',' | '+' | '-')
}

// ---------------------------------------------------------------------------------------
// Parser: tokens → syntax tree

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modifier {
    Plain,
    Required,
    Excluded,
}

#[derive(Debug)]
enum Ast {
    /// A bare word.
    Term(String),
    /// A quoted phrase.
    Phrase(String),
    /// A parenthesised group.
    Group(Group),
}

/// An OR list: comma-separated segments of OR-ed `AND` chains.
#[derive(Debug)]
struct Group {
    segments: Vec<Vec<Chain>>,
    has_comma: bool,
}

/// Operands joined by `AND` (often just one).
#[derive(Debug)]
struct Chain {
    operands: Vec<Unary>,
}

#[derive(Debug)]
struct Unary {
    modifier: Modifier,
    operand: Ast,
    column: usize,
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn column(&self) -> usize {
        self.tokens.get(self.pos).map_or(0, |t| t.column)
    }

    /// Parses a list up to the end (top level) or the closing `)` (nested, not consumed).
    fn group(&mut self, open: usize, depth: usize, nested: bool) -> Result<Group, FreeTextError> {
        let mut group = Group { segments: Vec::new(), has_comma: false };
        loop {
            let segment = self.segment(depth)?;
            if !segment.is_empty() {
                group.segments.push(segment);
            }
            match self.peek() {
                Some(Tok::Comma) => {
                    group.has_comma = true;
                    self.pos += 1;
                }
                Some(Tok::RParen) if nested => return Ok(group),
                Some(Tok::RParen) => {
                    return Err(FreeTextError::UnmatchedParenthesis { column: self.column() });
                }
                None if nested => return Err(FreeTextError::UnclosedParenthesis { column: open }),
                None => return Ok(group),
                Some(_) => unreachable!("a segment ends at ',', ')' or the end"),
            }
        }
    }

    /// Parses `AND` chains joined by `OR` or whitespace, up to `,`, `)` or the end.
    fn segment(&mut self, depth: usize) -> Result<Vec<Chain>, FreeTextError> {
        let mut chains = Vec::new();
        loop {
            match self.peek() {
                None | Some(Tok::Comma | Tok::RParen) => return Ok(chains),
                Some(Tok::Or) => {
                    let column = self.column();
                    if chains.is_empty() {
                        return Err(dangling("OR", column, "before"));
                    }
                    self.pos += 1;
                    if !self.operand_follows() {
                        return Err(dangling("OR", column, "after"));
                    }
                }
                Some(Tok::And) => return Err(dangling("AND", self.column(), "before")),
                Some(_) => chains.push(self.chain(depth)?),
            }
        }
    }

    /// Whether the next token can start an operand (after a binary operator).
    fn operand_follows(&self) -> bool {
        matches!(
            self.peek(),
            Some(Tok::Word(_) | Tok::Phrase(_) | Tok::LParen | Tok::Plus | Tok::Minus | Tok::Not)
        )
    }

    fn chain(&mut self, depth: usize) -> Result<Chain, FreeTextError> {
        let mut operands = vec![self.unary(depth)?];
        while let Some(Tok::And) = self.peek() {
            let column = self.column();
            self.pos += 1;
            if !self.operand_follows() {
                return Err(dangling("AND", column, "after"));
            }
            operands.push(self.unary(depth)?);
        }
        Ok(Chain { operands })
    }

    fn unary(&mut self, depth: usize) -> Result<Unary, FreeTextError> {
        let column = self.column();
        let modifier = match self.peek() {
            Some(Tok::Plus) => Modifier::Required,
            Some(Tok::Minus) => Modifier::Excluded,
            Some(Tok::Not) => {
                if !matches!(
                    self.tokens.get(self.pos + 1).map(|t| &t.tok),
                    Some(Tok::Word(_) | Tok::Phrase(_) | Tok::LParen)
                ) {
                    return Err(dangling("NOT", column, "after"));
                }
                Modifier::Excluded
            }
            _ => Modifier::Plain,
        };
        if modifier != Modifier::Plain {
            self.pos += 1;
        }
        let operand = self.primary(depth)?;
        Ok(Unary { modifier, operand, column })
    }

    /// Parses a term, phrase or group; `depth` is the number of enclosing parentheses.
    fn primary(&mut self, depth: usize) -> Result<Ast, FreeTextError> {
        let column = self.column();
        let Some(tok) = self.peek().cloned() else {
            unreachable!("callers check that an operand follows")
        };
        self.pos += 1;
        match tok {
            Tok::Word(w) => Ok(Ast::Term(w)),
            Tok::Phrase(p) => Ok(Ast::Phrase(p)),
            Tok::LParen => {
                let depth = depth + 1;
                if depth > MAX_DEPTH {
                    return Err(FreeTextError::TooDeep { column, max: MAX_DEPTH });
                }
                let group = self.group(column, depth, true)?;
                // `group` stopped at the matching `)`.
                self.pos += 1;
                if group.segments.is_empty() {
                    return Err(FreeTextError::EmptyParentheses { column });
                }
                Ok(Ast::Group(group))
            }
            other => unreachable!("callers check that an operand follows, got {other:?}"),
        }
    }
}

fn dangling(operator: &'static str, column: usize, side: &'static str) -> FreeTextError {
    FreeTextError::DanglingOperator { operator, column, side }
}

// ---------------------------------------------------------------------------------------
// Lowering: syntax tree → FTS5 expression

#[derive(Debug, Clone, PartialEq, Eq)]
enum Fts {
    Phrase(String),
    And(Vec<Fts>),
    Or(Vec<Fts>),
    Not(Box<Fts>, Box<Fts>),
}

/// Whether `unicode61` would find a token in `text`: a letter, digit or private-use char.
fn indexable(text: &str) -> bool {
    text.chars().any(|c| {
        c.is_alphanumeric()
            || matches!(c, '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{FFFFD}' | '\u{100000}'..='\u{10FFFD}')
    })
}

fn phrase(text: &str) -> Option<Fts> {
    indexable(text).then(|| Fts::Phrase(text.to_owned()))
}

fn and(items: Vec<Fts>) -> Fts {
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Fts::And(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    single_or(flat, Fts::And)
}

fn or(items: Vec<Fts>) -> Fts {
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Fts::Or(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    single_or(flat, Fts::Or)
}

/// One item stays itself, several are joined by `make`.
fn single_or(mut items: Vec<Fts>, make: fn(Vec<Fts>) -> Fts) -> Fts {
    if items.len() == 1 { items.pop().expect("one item") } else { make(items) }
}

fn exclude(positive: Fts, excluded: Vec<Fts>) -> Fts {
    if excluded.is_empty() {
        positive
    } else {
        Fts::Not(Box::new(positive), Box::new(or(excluded)))
    }
}

fn lower_ast(ast: &Ast) -> Result<Option<Fts>, FreeTextError> {
    match ast {
        Ast::Term(t) | Ast::Phrase(t) => Ok(phrase(t)),
        Ast::Group(g) => lower_group(g),
    }
}

/// A segment of plain words, which a comma list reads as one phrase (basic syntax).
fn plain_words(segment: &[Chain]) -> Option<String> {
    let mut words = Vec::with_capacity(segment.len());
    for chain in segment {
        match chain.operands.as_slice() {
            [Unary { modifier: Modifier::Plain, operand: Ast::Term(word), .. }] => {
                words.push(word.as_str())
            }
            _ => return None,
        }
    }
    Some(words.join(" "))
}

fn lower_group(group: &Group) -> Result<Option<Fts>, FreeTextError> {
    let (mut required, mut optional, mut excluded) = (Vec::new(), Vec::new(), Vec::new());
    let mut first_excluded = None;
    for segment in &group.segments {
        if group.has_comma
            && let Some(text) = plain_words(segment)
        {
            optional.extend(phrase(&text));
            continue;
        }
        for chain in segment {
            let (modifier, column, fts) = lower_chain(chain)?;
            let Some(fts) = fts else { continue };
            match modifier {
                Modifier::Plain => optional.push(fts),
                Modifier::Required => required.push(fts),
                Modifier::Excluded => {
                    first_excluded.get_or_insert(column);
                    excluded.push(fts);
                }
            }
        }
    }
    let positive = if !required.is_empty() {
        and(required)
    } else if !optional.is_empty() {
        or(optional)
    } else if let Some(column) = first_excluded {
        return Err(FreeTextError::OnlyExclusions { column });
    } else {
        return Ok(None);
    };
    Ok(Some(exclude(positive, excluded)))
}

/// Lowers an `AND` chain; a single operand keeps its prefix for the enclosing list.
fn lower_chain(chain: &Chain) -> Result<(Modifier, usize, Option<Fts>), FreeTextError> {
    if let [single] = chain.operands.as_slice() {
        return Ok((single.modifier, single.column, lower_ast(&single.operand)?));
    }
    let (mut positive, mut excluded) = (Vec::new(), Vec::new());
    let mut first_excluded = None;
    for unary in &chain.operands {
        let Some(fts) = lower_ast(&unary.operand)? else {
            continue;
        };
        if unary.modifier == Modifier::Excluded {
            first_excluded.get_or_insert(unary.column);
            excluded.push(fts);
        } else {
            positive.push(fts);
        }
    }
    let column = chain.operands[0].column;
    if positive.is_empty() {
        return match first_excluded {
            Some(column) => Err(FreeTextError::OnlyExclusions { column }),
            None => Ok((Modifier::Plain, column, None)),
        };
    }
    Ok((Modifier::Plain, column, Some(exclude(and(positive), excluded))))
}

/// How much of FTS5's parser stack we allow the emitted expression to need.
///
/// FTS5's expression parser is a Lemon LALR parser with a fixed stack of 100 entries
/// (`fts5YYSTACKDEPTH`); deeper input fails with "fts5: parser stack overflow". Measured with
/// the bundled SQLite: 99 nested bare parentheses parse, and 32 levels of `"x" NOT (` parse
/// but 33 do not. [`parser_stack`] models that; the budget keeps a margin below 100.
const FTS5_STACK_BUDGET: usize = 90;

/// An upper estimate of the parser stack entries FTS5 needs for [`emit`]'s output: each
/// open parenthesis holds one entry, and each operand already parsed at that level plus its
/// operator hold two more (left-associative lists reduce as they go).
fn parser_stack(fts: &Fts) -> usize {
    match fts {
        Fts::Phrase(_) => 1,
        Fts::And(items) | Fts::Or(items) => {
            1 + items
                .iter()
                .enumerate()
                .map(|(i, item)| if i == 0 { 0 } else { 2 } + parser_stack(item))
                .max()
                .unwrap_or(0)
        }
        Fts::Not(positive, excluded) => 1 + parser_stack(positive).max(2 + parser_stack(excluded)),
    }
}

/// Reorders the operands of every AND and OR so the one needing the most stack comes first.
fn deepest_first(fts: &mut Fts) {
    match fts {
        Fts::Phrase(_) => {}
        Fts::And(items) | Fts::Or(items) => {
            items.iter_mut().for_each(deepest_first);
            items.sort_by_key(|item| std::cmp::Reverse(parser_stack(item)));
        }
        Fts::Not(positive, excluded) => {
            deepest_first(positive);
            deepest_first(excluded);
        }
    }
}

fn emit(fts: &Fts, out: &mut String) {
    let list = |items: &[Fts], op: &str, out: &mut String| {
        out.push('(');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(op);
            }
            emit(item, out);
        }
        out.push(')');
    };
    match fts {
        Fts::Phrase(text) => {
            let _ = write!(out, "\"{}\"", text.replace('"', "\"\""));
        }
        Fts::And(items) => list(items, " AND ", out),
        Fts::Or(items) => list(items, " OR ", out),
        Fts::Not(positive, excluded) => {
            out.push('(');
            emit(positive, out);
            out.push_str(" NOT ");
            emit(excluded, out);
            out.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn ok(q: &str) -> String {
        to_fts5(q).unwrap_or_else(|e| panic!("{q:?} was refused: {e}"))
    }

    fn err(q: &str) -> FreeTextError {
        match to_fts5(q) {
            Ok(fts) => panic!("{q:?} was accepted as {fts:?}"),
            Err(e) => e,
        }
    }

    /// An in-memory FTS5 table defined like `items_fts`, with a few rows.
    fn table() -> Connection {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE VIRTUAL TABLE items_fts USING fts5 (id, title, description, keywords, \
             tokenize = 'unicode61 remove_diacritics 2');",
        )
        .unwrap();
        let rows = [
            (1, "c1", "Climate model output", "Global climate model runs", "climate"),
            (2, "s2", "Sentinel-2 L2A", "Earth observation imagery", "EO, optical"),
            (3, "fox1", "Quick brown fox", "The quick brown fox jumps", "animals"),
            (4, "bear", "Brown bear", "A quick look at bears", "animals"),
            (5, "river", "Fox river", "A model of the river basin", "hydrology"),
            (6, "cafe", "Café Münster", "Straße und Äpfel", "city"),
            (7, "obs", "Observation of the Earth", "climate", "EO"),
        ];
        for (fid, id, title, description, keywords) in rows {
            db.execute(
                "INSERT INTO items_fts (rowid, id, title, description, keywords) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![fid, id, title, description, keywords],
            )
            .unwrap();
        }
        db
    }

    fn run(db: &Connection, fts: &str) -> rusqlite::Result<Vec<i64>> {
        let mut stmt =
            db.prepare("SELECT rowid FROM items_fts WHERE items_fts MATCH ?1 ORDER BY rowid")?;
        stmt.query_map([fts], |row| row.get(0))?.collect()
    }

    fn matches(db: &Connection, q: &str) -> Vec<i64> {
        let fts = ok(q);
        run(db, &fts).unwrap_or_else(|e| panic!("{q:?} → {fts:?} failed in FTS5: {e}"))
    }

    #[test]
    fn translates_terms_and_phrases() {
        assert_eq!(ok("sentinel"), r#""sentinel""#);
        assert_eq!(ok("  sentinel  "), r#""sentinel""#);
        assert_eq!(ok(r#""climate model""#), r#""climate model""#);
        assert_eq!(ok("climate model"), r#"("climate" OR "model")"#);
        assert_eq!(ok("a\tb\nc"), r#"("a" OR "b" OR "c")"#);
        assert_eq!(ok("sentinel-2"), r#""sentinel-2""#);
        assert_eq!(ok(r#"a"b c"d"#), r#"("a" OR "b c" OR "d")"#);
    }

    #[test]
    fn translates_operators() {
        assert_eq!(ok("climate OR model"), r#"("climate" OR "model")"#);
        assert_eq!(ok("climate AND model"), r#"("climate" AND "model")"#);
        assert_eq!(ok("a AND b AND c"), r#"("a" AND "b" AND "c")"#);
        // AND binds tighter than OR and than the implicit OR.
        assert_eq!(ok("a OR b AND c"), r#"("a" OR ("b" AND "c"))"#);
        assert_eq!(ok("a b AND c d"), r#"("a" OR ("b" AND "c") OR "d")"#);
        assert_eq!(ok("(quick OR brown) AND fox"), r#"(("quick" OR "brown") AND "fox")"#);
        assert_eq!(ok("((a))"), r#""a""#);
        assert_eq!(ok("(a b) (c d)"), r#"("a" OR "b" OR "c" OR "d")"#);
        // Operators are upper case only; quoted or lower case they are terms.
        assert_eq!(ok("rock and roll"), r#"("rock" OR "and" OR "roll")"#);
        assert_eq!(ok(r#"a "AND" b"#), r#"("a" OR "AND" OR "b")"#);
    }

    #[test]
    fn translates_prefixes() {
        assert_eq!(ok("quick +brown -fox"), r#"("brown" NOT "fox")"#);
        assert_eq!(ok("+quick +brown"), r#"("quick" AND "brown")"#);
        assert_eq!(ok("a -b c"), r#"(("a" OR "c") NOT "b")"#);
        assert_eq!(ok("a -b -c"), r#"("a" NOT ("b" OR "c"))"#);
        assert_eq!(ok("a NOT b"), r#"("a" NOT "b")"#);
        assert_eq!(ok("a AND NOT b"), r#"("a" NOT "b")"#);
        assert_eq!(ok("a AND -b AND c"), r#"(("a" AND "c") NOT "b")"#);
        assert_eq!(ok("a AND +b"), r#"("a" AND "b")"#);
        assert_eq!(ok(r#"a -"b c""#), r#"("a" NOT "b c")"#);
        assert_eq!(ok("fox -(quick OR brown)"), r#"("fox" NOT ("quick" OR "brown"))"#);
        assert_eq!(ok("(a -b) OR c"), r#"(("a" NOT "b") OR "c")"#);
        // A sign not directly before an operand is text (and here has nothing to index).
        assert_eq!(ok("Landsat 8 - Collection 2"), r#"("Landsat" OR "8" OR "Collection" OR "2")"#);
        assert_eq!(ok("a-b"), r#""a-b""#);
        assert_eq!(ok("--a"), r#""--a""#);
        // After a sign, an operator word is a term.
        assert_eq!(ok("x -AND +OR"), r#"("OR" NOT "AND")"#);
    }

    #[test]
    fn translates_commas() {
        assert_eq!(ok("EO,Earth Observation"), r#"("EO" OR "Earth Observation")"#);
        assert_eq!(ok("EO, Earth  Observation ,x"), r#"("EO" OR "Earth Observation" OR "x")"#);
        assert_eq!(ok("a,,b,"), r#"("a" OR "b")"#);
        assert_eq!(ok("a b,"), r#""a b""#);
        // A segment with operators, quotes or signs keeps the advanced syntax.
        assert_eq!(ok("a AND b, c d"), r#"(("a" AND "b") OR "c d")"#);
        assert_eq!(ok("a -b, c"), r#"(("a" OR "c") NOT "b")"#);
        assert_eq!(ok("(x y, z) AND w"), r#"(("x y" OR "z") AND "w")"#);
    }

    #[test]
    fn escapes_fts5_syntax() {
        assert_eq!(ok("title:fox"), r#""title:fox""#);
        assert_eq!(ok("fox*"), r#""fox*""#);
        assert_eq!(ok("^fox"), r#""^fox""#);
        assert_eq!(ok("NEAR(a b)"), r#"("NEAR" OR "a" OR "b")"#);
        assert_eq!(ok("{title id}:x"), r#"("{title" OR "id}:x")"#);
        assert_eq!(ok(r#""a" "b""#), r#"("a" OR "b")"#);
        assert_eq!(ok("it's;--"), r#""it's;--""#);
        // Control characters are whitespace: a NUL never reaches FTS5.
        assert_eq!(ok("a\0b"), r#"("a" OR "b")"#);
        assert_eq!(ok("\"a\0b\""), r#""a b""#);
    }

    #[test]
    fn drops_terms_without_indexable_characters() {
        assert_eq!(ok("*** fox"), r#""fox""#);
        assert_eq!(ok("a AND ***"), r#""a""#);
        assert_eq!(ok(r#""" fox 🙂"#), r#""fox""#);
        assert_eq!(ok("+*** a"), r#""a""#);
        assert_eq!(ok("(***) OR a"), r#""a""#);
        assert_eq!(ok("a -***"), r#""a""#);
        assert_eq!(ok("\u{E000}"), "\"\u{E000}\"");
        assert_eq!(err("***"), FreeTextError::NoSearchableTerms);
        assert_eq!(err(r#""""#), FreeTextError::NoSearchableTerms);
        assert_eq!(err("🙂 - +"), FreeTextError::NoSearchableTerms);
        assert_eq!(err("(***) AND ***"), FreeTextError::NoSearchableTerms);
    }

    #[test]
    fn refuses_bad_queries() {
        use FreeTextError::*;
        assert_eq!(err(""), Empty);
        assert_eq!(err(" \t\n"), Empty);
        assert_eq!(err("a\"b"), UnterminatedQuote { column: 2 });
        assert_eq!(err("(a OR b"), UnclosedParenthesis { column: 1 });
        assert_eq!(err("(a (b)"), UnclosedParenthesis { column: 1 });
        assert_eq!(err("a OR b)"), UnmatchedParenthesis { column: 7 });
        assert_eq!(err(")"), UnmatchedParenthesis { column: 1 });
        assert_eq!(err("a ()"), EmptyParentheses { column: 3 });
        assert_eq!(err("( , )"), EmptyParentheses { column: 1 });
        let dangling = |operator, column, side| DanglingOperator { operator, column, side };
        assert_eq!(err("AND a"), dangling("AND", 1, "before"));
        assert_eq!(err("a AND"), dangling("AND", 3, "after"));
        assert_eq!(err("a AND OR b"), dangling("AND", 3, "after"));
        assert_eq!(err("a OR"), dangling("OR", 3, "after"));
        assert_eq!(err("OR a"), dangling("OR", 1, "before"));
        assert_eq!(err("a OR OR b"), dangling("OR", 3, "after"));
        assert_eq!(err("a OR , b"), dangling("OR", 3, "after"));
        assert_eq!(err("a, OR b"), dangling("OR", 4, "before"));
        assert_eq!(err("(AND a)"), dangling("AND", 2, "before"));
        assert_eq!(err("a AND )"), dangling("AND", 3, "after"));
        assert_eq!(err("a NOT"), dangling("NOT", 3, "after"));
        assert_eq!(err("NOT NOT a"), dangling("NOT", 1, "after"));
        assert_eq!(err("a NOT -b"), dangling("NOT", 3, "after"));
        assert_eq!(err("-fox"), OnlyExclusions { column: 1 });
        assert_eq!(err("NOT fox"), OnlyExclusions { column: 1 });
        assert_eq!(err("-a -b"), OnlyExclusions { column: 1 });
        assert_eq!(err("a AND (-b)"), OnlyExclusions { column: 8 });
        assert_eq!(err("x -a AND -b"), OnlyExclusions { column: 3 });
        assert_eq!(err("*** AND -b"), OnlyExclusions { column: 9 });
        let long = "a ".repeat(501);
        assert_eq!(err(&long), TooLong { chars: 1002, max: MAX_QUERY_CHARS });
        // Characters, not bytes, are counted.
        assert!(to_fts5(&"é".repeat(MAX_QUERY_CHARS)).is_ok());
        let deep = format!("{}a{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert_eq!(err(&deep), TooDeep { column: MAX_DEPTH + 1, max: MAX_DEPTH });
        // Messages name the position.
        assert_eq!(
            err("(a").to_string(),
            "unbalanced parenthesis: the '(' at column 1 is never closed"
        );
        assert_eq!(
            err("a AND").to_string(),
            "dangling operator: 'AND' at column 3 lacks a term after it"
        );
    }

    #[test]
    fn matches_rows_in_fts5() {
        let db = table();
        let m = |q: &str| matches(&db, q);
        assert_eq!(m("climate"), [1, 7]);
        assert_eq!(m("CLIMATE"), [1, 7]);
        // Phrase versus terms.
        assert_eq!(m(r#""climate model""#), [1]);
        assert_eq!(m("climate model"), [1, 5, 7]);
        assert_eq!(m("climate OR model"), [1, 5, 7]);
        assert_eq!(m("climate AND model"), [1]);
        // Precedence and parentheses.
        assert_eq!(m("(quick OR brown) AND fox"), [3]);
        assert_eq!(m("quick OR brown AND fox"), [3, 4]);
        assert_eq!(m("quick brown AND fox"), [3, 4]);
        assert_eq!(m("bear (river AND model)"), [4, 5]);
        // Included and excluded terms.
        assert_eq!(m("quick +brown -fox"), [4]);
        assert_eq!(m("+quick +fox"), [3]);
        assert_eq!(m("quick -fox"), [4]);
        assert_eq!(m("fox -quick"), [5]);
        assert_eq!(m("fox NOT quick"), [5]);
        assert_eq!(m("fox AND NOT river"), [3]);
        assert_eq!(m("fox -(quick OR brown)"), [5]);
        // Commas: basic syntax, each plain segment a phrase.
        assert_eq!(m("EO,Earth Observation"), [2, 7]);
        assert_eq!(m("Earth Observation"), [2, 7]);
        assert_eq!(m(r#""Earth Observation""#), [2]);
        assert_eq!(m("brown bear, fox river"), [4, 5]);
        assert_eq!(m("(bear, river) AND brown"), [4]);
        // Diacritics and case are folded.
        assert_eq!(m("cafe"), [6]);
        assert_eq!(m("MÜNSTER munster"), [6]);
        assert_eq!(m("apfel"), [6]);
        // FTS5 syntax is text.
        assert_eq!(m("sentinel-2"), [2]);
        assert_eq!(m("title:fox"), Vec::<i64>::new());
        assert_eq!(m("fo*"), Vec::<i64>::new());
        assert_eq!(m("NEAR(quick fox)"), [3, 4, 5]);
        assert_eq!(m("*** fox"), [3, 5]);
        // Sanity check: the same text unescaped would have been FTS5 syntax.
        assert_eq!(run(&db, "title:fox").unwrap(), [3, 5]);
    }

    /// Every query is refused cleanly or gives an expression FTS5 accepts.
    fn assert_safe(db: &Connection, q: &str) {
        if let Ok(fts) = to_fts5(q) {
            assert!(!fts.contains('\0'), "{q:?} → {fts:?}");
            if let Err(e) = run(db, &fts) {
                panic!("{q:?} → {fts:?} failed in FTS5: {e}");
            }
        }
    }

    #[test]
    fn hostile_input_is_refused_or_valid() {
        let db = table();
        let mut nasty: Vec<String> = [
            "'",
            "\"",
            "\"\"",
            "\"\"\"",
            ";",
            "--",
            "-",
            "+",
            "- -",
            "+-a",
            "-+a",
            "NEAR(",
            "NEAR(a b, 2)",
            "NEAR",
            "a NEAR b",
            "*",
            "a*",
            "*a",
            "^",
            "^a",
            ":",
            "title:x",
            "{id title}:x",
            "-title:x",
            "x:",
            "(",
            ")",
            ")(",
            "(()",
            "())",
            "((a)",
            "a))",
            "\0",
            "a\0b",
            "\u{1}\u{7f}\u{9b}",
            "\u{202e}abc",
            "🙂",
            "👩‍👩‍👧",
            "a🙂b",
            "AND",
            "OR",
            "NOT",
            "AND OR NOT",
            "+ - , ( )",
            ",",
            ",,,",
            "a,",
            "'; DROP TABLE items; --",
            "\" OR 1=1 --",
            "a\" OR \"b",
            "\\",
            "\\\"",
            "%",
            "_",
            "ﬁ",
            "İ",
            "ß",
            "\u{301}",
            "a\u{301}",
            "\u{E000}",
            "\u{FEFF}x",
            "x\u{200B}y",
            "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
            "中文 检索",
            "AND\"a\"",
            "-\"a\"",
            "+(",
            "-)",
            "NOT(",
            "a OR -b",
            "(-a)",
            "(+a)",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        nasty.push("(".repeat(10_000));
        nasty.push(format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000)));
        nasty.push("a".repeat(MAX_QUERY_CHARS));
        nasty.push("a".repeat(1_000_000));
        nasty.push("\"".repeat(999));
        nasty.push("a ".repeat(499));
        nasty.push("a AND ".repeat(166) + "a");
        nasty.push("-a ".repeat(300) + "b");
        nasty.push("\"a\" ".repeat(250));
        nasty.push("🙂".repeat(MAX_QUERY_CHARS));
        nasty.push("\u{0}".repeat(MAX_QUERY_CHARS));
        // The deepest nesting allowed, built to give the deepest FTS5 expression.
        let mut deep = String::from("z");
        for i in 0..MAX_DEPTH {
            deep = format!("a{i} AND b -c +({deep})");
        }
        assert!(to_fts5(&deep).is_ok(), "{:?}", to_fts5(&deep));
        nasty.push(deep);
        let mut deep = String::from("z");
        for _ in 0..MAX_DEPTH {
            deep = format!("x -(y {deep})");
        }
        assert_eq!(err(&deep), FreeTextError::TooComplex);
        nasty.push(deep);
        // Exclusions nested as deep as FTS5 can take.
        let mut deep = String::from("z");
        for _ in 0..20 {
            deep = format!("x -(y {deep})");
        }
        assert!(to_fts5(&deep).is_ok(), "{:?}", to_fts5(&deep));
        nasty.push(deep);
        // Alternating AND/OR nesting reordered so that FTS5 parses the deep operand first.
        let mut deep = String::from("z");
        for i in 0..MAX_DEPTH {
            let op = if i % 2 == 0 { "AND" } else { "OR" };
            deep = format!("a{i} {op} b{i} {op} ({deep})");
        }
        assert!(to_fts5(&deep).is_ok(), "{:?}", to_fts5(&deep));
        nasty.push(deep);
        for q in &nasty {
            assert_safe(&db, q);
        }
        assert_eq!(
            err(&"(".repeat(10_000)),
            FreeTextError::TooLong { chars: 10_000, max: MAX_QUERY_CHARS }
        );
    }

    #[test]
    fn random_nasty_strings_are_refused_or_valid() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let db = table();
        let alphabet = [
            "a", "b", "fox", "É", " ", " ", "\t", "\"", "(", ")", ",", "+", "-", "*", "^", ":",
            "'", ";", "AND", "OR", "NOT", "NEAR", "\0", "🙂", "\u{301}", "title:", "{", "}",
        ];
        let mut rng = StdRng::seed_from_u64(0x5eed);
        for _ in 0..5_000 {
            let len = rng.random_range(0..24);
            let q: String =
                (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect();
            assert_safe(&db, &q);
        }
    }
    /// Random deeply nested queries: whatever is accepted must parse in FTS5, including
    /// expressions close to [`FTS5_STACK_BUDGET`].
    #[test]
    fn random_deep_queries_are_refused_or_valid() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        fn gen_query(rng: &mut StdRng, depth: usize) -> String {
            let n = rng.random_range(1..4);
            // Mostly a nested group excluded after other operands: the costliest shape.
            let nested = if rng.random_bool(0.7) { n - 1 } else { rng.random_range(0..n) };
            let mut parts = Vec::new();
            for i in 0..n {
                if i > 0 {
                    parts.push(["AND", "OR", "", ","][rng.random_range(0..4)].to_owned());
                }
                // Mostly valid queries: the first operand is never excluded.
                let prefix = if i > 0 && i == nested && rng.random_bool(0.85) {
                    "-"
                } else {
                    ["", "+", "", "-", "NOT "][rng.random_range(0..if i == 0 { 2 } else { 5 })]
                };
                let operand = if depth > 0 && i == nested {
                    format!("({})", gen_query(rng, depth - 1))
                } else {
                    ["a", "b", "\"c d\"", "***"][rng.random_range(0..if i == 0 { 3 } else { 4 })]
                        .to_owned()
                };
                parts.push(format!("{prefix}{operand}"));
            }
            parts.join(" ")
        }
        let db = table();
        let mut rng = StdRng::seed_from_u64(7);
        let (mut accepted, mut near_budget, mut max_cost, mut complex) = (0, 0, 0, 0);
        for _ in 0..3_000 {
            let depth = rng.random_range(MAX_DEPTH / 2..MAX_DEPTH + 2);
            let q = gen_query(&mut rng, depth);
            assert_safe(&db, &q);
            complex += usize::from(to_fts5(&q) == Err(FreeTextError::TooComplex));
            if to_fts5(&q).is_ok() {
                accepted += 1;
                let lexed = lex(&q).unwrap();
                let group = Parser { tokens: lexed, pos: 0 }.group(1, 0, false).unwrap();
                let mut fts = lower_group(&group).unwrap().unwrap();
                if parser_stack(&fts) > FTS5_STACK_BUDGET {
                    deepest_first(&mut fts);
                }
                max_cost = max_cost.max(parser_stack(&fts));
                if parser_stack(&fts) > FTS5_STACK_BUDGET - 20 {
                    near_budget += 1;
                }
            }
        }
        assert!(
            accepted > 500 && near_budget > 10 && max_cost <= FTS5_STACK_BUDGET,
            "{accepted} accepted, {near_budget} near the budget, {max_cost} at most, \
             {complex} too complex"
        );
    }

    /// The stack model is no looser than FTS5: at the budget FTS5 still parses.
    #[test]
    fn stack_budget_is_within_fts5_limit() {
        let db = table();
        // Right-nested exclusions: three entries per level.
        let levels = (FTS5_STACK_BUDGET - 1) / 3;
        let fts = format!("{}\"a\"{}", "(\"x\" NOT ".repeat(levels), ")".repeat(levels));
        run(&db, &fts).unwrap();
        // Every nesting of these shapes is refused or parses.
        for shape in ["x -(y {})", "x -({})", "x AND -({})", "+x -(y {})", "x NOT ({} y)"] {
            let mut q = String::from("z");
            for _ in 0..=MAX_DEPTH {
                q = shape.replace("{}", &q);
                assert_safe(&db, &q);
            }
        }
        // Nested parentheses: one entry per level.
        let fts =
            format!("{}\"a\"{}", "(".repeat(FTS5_STACK_BUDGET), ")".repeat(FTS5_STACK_BUDGET));
        run(&db, &fts).unwrap();
    }
}
