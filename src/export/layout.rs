//! Where every document of a static export goes: the layout template, the tree of catalogs,
//! and its split into parts.
//!
//! The tree is built before any item is written, from one grouped query (`groups`): the root,
//! one node per collection, one node per distinct value of each further template segment (or,
//! for `as-imported`, one per recorded sub-catalog). Items hang from *leaf* nodes; a leaf's
//! items are streamed later in the order of [`Plan::items_sql`] (group, then id), and the
//! `n`-th item of a leaf is placed in the container [`Plan::container`] names.
//!
//! A node lists its child nodes first (in key order), then its items (by id). A node with more
//! than `max_links` entries is split: its entries are cut into consecutive runs of `c` entries,
//! `c` the smallest power of `max_links` that leaves at most `max_links` runs, each run a
//! sub-catalog `part-0001`, `part-0002`, … (split again the same way when `c > max_links`).
//! The split depends only on the number of entries, so it is deterministic, and an insert or a
//! delete moves only the entries at the boundaries of the runs after it.

use std::collections::HashMap;

use rusqlite::Connection;

use super::paths::{escape, join, resolve_case};
use crate::error::{Error, Result};

/// The segment value used for a property that is missing, null or empty.
pub const NONE_SEGMENT: &str = "_none_";

/// A parsed `--layout` template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    /// The segments after the leading `${collection}`.
    segments: Vec<Vec<Piece>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq)]
enum Var {
    Collection,
    Year,
    Month,
    Day,
    Property(String),
}

impl Template {
    /// Parses `${collection}/${year}/${month}` and the like. The first segment must be
    /// `${collection}` alone; each further segment is literal text and `${NAME}` variables.
    pub fn parse(text: &str) -> Result<Template> {
        let bad = |why: String| Error::InvalidArgument(format!("--layout '{text}': {why}"));
        let mut parts = text.split('/');
        if parts.next() != Some("${collection}") {
            return Err(bad("must start with the segment ${collection}".into()));
        }
        let mut segments = Vec::new();
        for segment in parts {
            if segment.is_empty() {
                return Err(bad("has an empty segment".into()));
            }
            let mut pieces = Vec::new();
            let mut rest = segment;
            while !rest.is_empty() {
                match rest.find("${") {
                    Some(0) => {
                        let end = rest
                            .find('}')
                            .ok_or_else(|| bad(format!("unclosed ${{ in segment '{segment}'")))?;
                        let name = &rest[2..end];
                        pieces.push(Piece::Var(match name {
                            "collection" => Var::Collection,
                            "year" => Var::Year,
                            "month" => Var::Month,
                            "day" => Var::Day,
                            "" => return Err(bad("has an empty ${}".into())),
                            _ if name.chars().any(|c| c == '"' || c == '\\' || c.is_control()) => {
                                return Err(bad(format!(
                                    "property name '{name}' holds a quote, backslash or control character"
                                )));
                            }
                            _ => Var::Property(name.to_string()),
                        }));
                        rest = &rest[end + 1..];
                    }
                    Some(i) => {
                        pieces.push(Piece::Literal(rest[..i].to_string()));
                        rest = &rest[i..];
                    }
                    None => {
                        pieces.push(Piece::Literal(rest.to_string()));
                        rest = "";
                    }
                }
            }
            segments.push(pieces);
        }
        Ok(Template { segments })
    }

    /// The default layout: `${collection}` (COLLECTION/ITEM/ITEM.json).
    pub fn default_layout() -> Template {
        Template { segments: Vec::new() }
    }

    /// A human description of segment `i`'s value, e.g. `year=2020`.
    fn describe(&self, i: usize, value: &str) -> String {
        let names: Vec<String> = self.segments[i]
            .iter()
            .filter_map(|p| match p {
                Piece::Var(Var::Collection) => Some("collection".into()),
                Piece::Var(Var::Year) => Some("year".into()),
                Piece::Var(Var::Month) => Some("month".into()),
                Piece::Var(Var::Day) => Some("day".into()),
                Piece::Var(Var::Property(p)) => Some(p.clone()),
                Piece::Literal(_) => None,
            })
            .collect();
        if names.is_empty() { value.to_string() } else { format!("{} = {value}", names.join(", ")) }
    }

    /// SQL text expressions (over `items i`) for the group key: the collection, then each
    /// further segment's value as TEXT.
    fn key_sql(&self) -> Vec<String> {
        let mut keys = vec!["i.collection".to_string()];
        for segment in &self.segments {
            let pieces: Vec<String> = segment.iter().map(piece_sql).collect();
            keys.push(format!("CAST(({}) AS TEXT)", pieces.join(" || ")));
        }
        keys
    }
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn piece_sql(piece: &Piece) -> String {
    // Floor division of microseconds to seconds, correct before 1970 too.
    const SECONDS: &str =
        "((i.datetime_start - (((i.datetime_start % 1000000) + 1000000) % 1000000)) / 1000000)";
    match piece {
        Piece::Literal(text) => sql_string(text),
        Piece::Var(Var::Collection) => "i.collection".into(),
        Piece::Var(Var::Year) => {
            format!("coalesce(strftime('%Y', {SECONDS}, 'unixepoch'), '_none_')")
        }
        Piece::Var(Var::Month) => {
            format!("coalesce(strftime('%m', {SECONDS}, 'unixepoch'), '_none_')")
        }
        Piece::Var(Var::Day) => {
            format!("coalesce(strftime('%d', {SECONDS}, 'unixepoch'), '_none_')")
        }
        Piece::Var(Var::Property(name)) => {
            let path = sql_string(&format!("$.properties.\"{name}\""));
            format!(
                "coalesce(nullif(CASE json_type(i.content, {path}) WHEN 'text' THEN i.content ->> {path} \
                 WHEN 'null' THEN NULL ELSE i.content -> {path} END, ''), {})",
                sql_string(NONE_SEGMENT)
            )
        }
    }
}

/// What a node is.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// The root catalog.
    Root,
    /// A collection; the index into [`Plan::collections`].
    Collection(usize),
    /// A sub-catalog of the layout: its id and description, and for an imported sub-catalog
    /// its stored document (links removed).
    Catalog { id: String, description: String, content: Option<String> },
    /// A part of a split node: its number (1-based) and the node it splits.
    Part { number: usize, of: usize },
}

/// One catalog, collection or part of the tree.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Its directory name (escaped); empty for the root.
    pub name: String,
    /// Its directory relative to the export root ("" for the root).
    pub dir: String,
    /// The node whose document links to it.
    pub parent: Option<usize>,
    /// Logical children (not parts), in order.
    pub children: Vec<usize>,
    /// How many items hang directly from it.
    pub items: u64,
    /// What its document links to: nodes, and runs of its own (or its split owner's) items.
    pub links: Vec<Link>,
    /// For a node with items: where each run of its items lives, by first item index.
    pub containers: Vec<(u64, usize)>,
}

/// An entry of a node's document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Link {
    /// A child catalog, collection or part.
    Node(usize),
    /// Items `start..end` of the leaf node `owner`.
    Items { owner: usize, start: u64, end: u64 },
}

/// A collection of the catalog.
#[derive(Debug, Clone)]
pub(crate) struct CollectionRow {
    pub id: String,
    pub node: usize,
}

/// The whole tree of an export.
#[derive(Debug)]
pub(crate) struct Plan {
    pub nodes: Vec<Node>,
    pub collections: Vec<CollectionRow>,
    /// Leaf node by group key.
    pub groups: HashMap<Vec<String>, usize>,
    /// The SQL that streams every item: the `key_len` group key columns, the sort key within
    /// the group, the id, the collection and the fid, ordered by group key, then sort key.
    pub items_sql: String,
    /// Number of group key columns.
    pub key_len: usize,
}

/// How the tree is shaped.
pub(crate) enum Shape<'a> {
    Template(&'a Template),
    Imported,
}

impl Plan {
    /// Builds the tree from the catalog (inside the caller's read transaction).
    pub fn build(conn: &Connection, shape: Shape<'_>, max_links: usize) -> Result<Plan> {
        let mut plan = Plan {
            nodes: vec![node(Kind::Root, None)],
            collections: Vec::new(),
            groups: HashMap::new(),
            items_sql: String::new(),
            key_len: 0,
        };
        let mut collection_node = HashMap::new();
        {
            let mut stmt =
                conn.prepare("SELECT id, content IS NULL FROM collections ORDER BY id")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                if row.get::<_, bool>(1)? {
                    return Err(Error::InvalidArgument(format!(
                        "collection '{id}' has items but no document; ingest its collection.json"
                    )));
                }
                let index = plan.collections.len();
                let n = plan.add(node(Kind::Collection(index), Some(0)));
                collection_node.insert(id.clone(), n);
                plan.collections.push(CollectionRow { id, node: n });
            }
        }
        match shape {
            Shape::Template(template) => plan.build_template(conn, template, &collection_node)?,
            Shape::Imported => plan.build_imported(conn, &collection_node)?,
        }
        plan.name_and_split(max_links);
        Ok(plan)
    }

    fn add(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        let index = self.nodes.len() - 1;
        if let Some(p) = self.nodes[index].parent {
            self.nodes[p].children.push(index);
        }
        index
    }

    fn build_template(
        &mut self,
        conn: &Connection,
        template: &Template,
        collection_node: &HashMap<String, usize>,
    ) -> Result<()> {
        let keys = template.key_sql();
        let list = keys.join(", ");
        let order: Vec<String> = (1..=keys.len()).map(|i| i.to_string()).collect();
        let order = order.join(", ");
        let sql = format!("SELECT {list}, count(*) FROM items i GROUP BY {order} ORDER BY {order}");
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        // The children of each node by segment value, while building.
        let mut child_by_value: HashMap<(usize, String), usize> = HashMap::new();
        while let Some(row) = rows.next()? {
            let key: Vec<String> =
                (0..keys.len()).map(|i| row.get(i)).collect::<rusqlite::Result<_>>()?;
            let count: i64 = row.get(keys.len())?;
            let mut at = *collection_node.get(&key[0]).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "items name collection '{}', which is missing",
                    key[0]
                ))
            })?;
            for (i, value) in key[1..].iter().enumerate() {
                at = match child_by_value.get(&(at, value.clone())) {
                    Some(&n) => n,
                    None => {
                        let description = format!("{}: {}", key[0], template.describe(i, value));
                        let kind = Kind::Catalog { id: value.clone(), description, content: None };
                        let n = self.add(node(kind, Some(at)));
                        child_by_value.insert((at, value.clone()), n);
                        n
                    }
                };
            }
            self.nodes[at].items = count as u64;
            self.groups.insert(key, at);
        }
        self.key_len = keys.len();
        let order = if keys.len() == 1 {
            // Index order of items_collection_id: no sort.
            "i.collection, i.id".to_string()
        } else {
            format!("{order}, i.id")
        };
        self.items_sql =
            format!("SELECT {list}, i.id, i.id, i.collection, i.fid FROM items i ORDER BY {order}");
        Ok(())
    }

    fn build_imported(
        &mut self,
        conn: &Connection,
        collection_node: &HashMap<String, usize>,
    ) -> Result<()> {
        struct Sub {
            node: i64,
            parent: Option<i64>,
            parent_collection: Option<String>,
            position: i64,
            href: String,
            content: String,
        }
        let mut subs = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT node, parent, parent_collection, position, href, content FROM subcatalogs
                 ORDER BY position, node",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                subs.push(Sub {
                    node: r.get(0)?,
                    parent: r.get(1)?,
                    parent_collection: r.get(2)?,
                    position: r.get(3)?,
                    href: r.get(4)?,
                    content: r.get(5)?,
                });
            }
        }
        // Attach in an order where a parent always exists first: repeat passes (trees are
        // shallow); a sub-catalog whose parent never appears hangs from the root.
        let mut sub_node: HashMap<i64, usize> = HashMap::new();
        // (position, kind order, id) of each child, to order children as imported.
        let mut order_key: HashMap<usize, (i64, String)> = HashMap::new();
        let mut pending: Vec<&Sub> = subs.iter().collect();
        // Collections' recorded parents.
        // (collection, parent sub-catalog, parent collection, position)
        type Recorded = (String, Option<i64>, Option<String>, i64);
        let mut collection_parent: Vec<Recorded> = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT collection, parent, parent_collection, position FROM collection_parents",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                collection_parent.push((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
            }
        }
        while !pending.is_empty() {
            let before = pending.len();
            let mut left = Vec::new();
            for sub in pending {
                let parent = match (&sub.parent, &sub.parent_collection) {
                    (Some(p), _) => sub_node.get(p).copied(),
                    (None, Some(c)) => collection_node.get(c).copied(),
                    (None, None) => Some(0),
                };
                let Some(parent) = parent else {
                    left.push(sub);
                    continue;
                };
                let n = self.imported_catalog(sub.node, &sub.href, &sub.content, parent)?;
                order_key.insert(n, (sub.position, String::new()));
                sub_node.insert(sub.node, n);
            }
            if left.len() == before {
                // Parents that are missing or form a cycle: hang them from the root.
                for sub in left {
                    let n = self.imported_catalog(sub.node, &sub.href, &sub.content, 0)?;
                    order_key.insert(n, (sub.position, String::new()));
                    sub_node.insert(sub.node, n);
                }
                break;
            }
            pending = left;
        }
        // Re-parent collections as recorded.
        for (collection, parent, parent_collection, position) in collection_parent {
            let Some(&n) = collection_node.get(&collection) else { continue };
            let new_parent = match (parent, parent_collection) {
                (Some(p), _) => sub_node.get(&p).copied().unwrap_or(0),
                (None, Some(c)) if c != collection => collection_node.get(&c).copied().unwrap_or(0),
                _ => 0,
            };
            // A collection nested under its own descendant would make a cycle: keep it at the root.
            if self.is_ancestor(n, new_parent) {
                continue;
            }
            self.reparent(n, new_parent);
            order_key.insert(n, (position, collection.clone()));
        }
        // Children in imported order: by position, then by id; collections with no record
        // keep the end, by id.
        for index in 0..self.nodes.len() {
            let mut children = std::mem::take(&mut self.nodes[index].children);
            children.sort_by_cached_key(|c| {
                let (position, _) = order_key.get(c).cloned().unwrap_or((i64::MAX, String::new()));
                (position, self.node_id(*c))
            });
            self.nodes[index].children = children;
        }
        // Leaf groups: an item hangs from its recorded sub-catalog, or from its collection.
        let group_sql = "CASE WHEN p.parent IS NULL THEN 'c' || i.collection \
                         ELSE printf('n%020d', p.parent) END";
        let from =
            "items i LEFT JOIN item_parents p ON p.collection = i.collection AND p.id = i.id";
        let mut stmt = conn
            .prepare(&format!("SELECT {group_sql}, count(*) FROM {from} GROUP BY 1 ORDER BY 1"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get(0)?;
            let count: i64 = row.get(1)?;
            let at = if let Some(c) = key.strip_prefix('c') {
                collection_node.get(c).copied()
            } else {
                key[1..].parse::<i64>().ok().and_then(|n| sub_node.get(&n).copied())
            }
            .ok_or_else(|| Error::InvalidArgument(format!("imported tree: no node for '{key}'")))?;
            self.nodes[at].items = count as u64;
            self.groups.insert(vec![key], at);
        }
        self.key_len = 1;
        self.items_sql = format!(
            "SELECT {group_sql}, printf('%010d', length(i.collection)) || i.collection || i.id, \
             i.id, i.collection, i.fid FROM {from} ORDER BY 1, 2"
        );
        Ok(())
    }

    fn imported_catalog(
        &mut self,
        _node: i64,
        href: &str,
        content: &str,
        parent: usize,
    ) -> Result<usize> {
        let doc: serde_json::Value = serde_json::from_str(content).map_err(crate::stored_json)?;
        let id = doc.get("id").and_then(|v| v.as_str()).unwrap_or("catalog").to_string();
        let description = doc
            .get("description")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| id.clone());
        let n = self.add(node(
            Kind::Catalog { id, description, content: Some(content.to_string()) },
            Some(parent),
        ));
        // The directory name comes from the recorded href: the directory of its catalog file.
        let dir_name = href
            .trim_end_matches('/')
            .rsplit('/')
            .nth(1)
            .filter(|s| !s.is_empty() && *s != "." && *s != "..")
            .map(str::to_string);
        self.nodes[n].name = dir_name.unwrap_or_default();
        Ok(n)
    }

    fn is_ancestor(&self, candidate: usize, mut n: usize) -> bool {
        loop {
            if n == candidate {
                return true;
            }
            match self.nodes[n].parent {
                Some(p) => n = p,
                None => return false,
            }
        }
    }

    fn reparent(&mut self, n: usize, parent: usize) {
        if let Some(old) = self.nodes[n].parent {
            self.nodes[old].children.retain(|&c| c != n);
        }
        self.nodes[n].parent = Some(parent);
        self.nodes[parent].children.push(n);
    }

    /// The id a node's document has.
    pub fn node_id(&self, n: usize) -> String {
        match &self.nodes[n].kind {
            Kind::Root => String::new(),
            Kind::Collection(c) => self.collections[*c].id.clone(),
            Kind::Catalog { id, .. } => id.clone(),
            Kind::Part { number, .. } => part_name(*number),
        }
    }

    /// Names every node's directory, splits nodes with too many entries, and sets every
    /// directory.
    fn name_and_split(&mut self, max_links: usize) {
        let logical = self.nodes.len();
        for index in 0..logical {
            let children = self.nodes[index].children.clone();
            // The text each child's directory name comes from: an imported sub-catalog's
            // recorded directory, else its id.
            let originals: Vec<String> = children
                .iter()
                .map(|&c| {
                    let recorded = &self.nodes[c].name;
                    if recorded.is_empty() { self.node_id(c) } else { recorded.clone() }
                })
                .collect();
            let mut names: Vec<String> = originals.iter().map(|o| escape(o)).collect();
            let refs: Vec<&str> = originals.iter().map(String::as_str).collect();
            resolve_case(&mut names, &refs, &[]);
            for (&c, name) in children.iter().zip(names) {
                self.nodes[c].name = name;
            }
        }
        for index in 0..logical {
            let entries = self.nodes[index].children.len() as u64 + self.nodes[index].items;
            self.split(index, index, 0, entries, max_links as u64);
        }
        // Directories, parents before children (parents were created first, and parts point
        // only at earlier nodes... not always: set them by walking from the root).
        let mut stack = vec![0usize];
        while let Some(n) = stack.pop() {
            let links = self.nodes[n].links.clone();
            for link in links {
                if let Link::Node(c) = link {
                    self.nodes[c].parent = Some(n);
                    self.nodes[c].dir = join(&self.nodes[n].dir, &self.nodes[c].name);
                    stack.push(c);
                }
            }
        }
    }

    /// Gives `container` the entries `start..end` of `owner` (child nodes first, then items),
    /// through parts when there are more than `max` of them.
    fn split(&mut self, owner: usize, container: usize, start: u64, end: u64, max: u64) {
        let n = end - start;
        if n <= max {
            let child_count = self.nodes[owner].children.len() as u64;
            for e in start..end.min(child_count) {
                let c = self.nodes[owner].children[e as usize];
                self.nodes[container].links.push(Link::Node(c));
            }
            let first = start.max(child_count);
            if first < end {
                let (s, e) = (first - child_count, end - child_count);
                self.nodes[container].links.push(Link::Items { owner, start: s, end: e });
                self.nodes[owner].containers.push((s, container));
            }
            return;
        }
        let mut run = max;
        while n.div_ceil(run) > max {
            run = run.saturating_mul(max);
        }
        let parts = n.div_ceil(run);
        for p in 0..parts {
            let part = self.add(node(Kind::Part { number: p as usize + 1, of: owner }, None));
            self.nodes[part].parent = Some(container);
            self.nodes[part].name = part_name(p as usize + 1);
            self.nodes[container].links.push(Link::Node(part));
            let s = start + p * run;
            self.split(owner, part, s, (s + run).min(end), max);
        }
    }

    /// The node whose directory holds item `index` (0-based, in id order) of leaf `owner`,
    /// and the end of the run of items it holds.
    pub fn container(&self, owner: usize, index: u64) -> (usize, u64) {
        let runs = &self.nodes[owner].containers;
        let at = runs.partition_point(|(s, _)| *s <= index) - 1;
        let end = runs.get(at + 1).map_or(self.nodes[owner].items, |(s, _)| *s);
        (runs[at].1, end)
    }

    /// The path of a node's document, relative to the export root.
    pub fn doc_path(&self, n: usize) -> String {
        let file = match self.nodes[n].kind {
            Kind::Collection(_) => "collection.json",
            _ => "catalog.json",
        };
        join(&self.nodes[n].dir, file)
    }
}

fn node(kind: Kind, parent: Option<usize>) -> Node {
    Node {
        kind,
        name: String::new(),
        dir: String::new(),
        parent,
        children: Vec::new(),
        items: 0,
        links: Vec::new(),
        containers: Vec::new(),
    }
}

/// The directory name (and id) of part `number`.
pub fn part_name(number: usize) -> String {
    format!("part-{number:04}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert!(Template::parse("${collection}").unwrap().segments.is_empty());
        let t = Template::parse("${collection}/${year}/${month}").unwrap();
        assert_eq!(t.segments.len(), 2);
        let t = Template::parse("${collection}/y${year}-${platform}").unwrap();
        assert_eq!(
            t.segments[0],
            vec![
                Piece::Literal("y".into()),
                Piece::Var(Var::Year),
                Piece::Literal("-".into()),
                Piece::Var(Var::Property("platform".into()))
            ]
        );
        assert!(Template::parse("${year}/${collection}").is_err());
        assert!(Template::parse("${collection}//${year}").is_err());
        assert!(Template::parse("${collection}/${year").is_err());
        assert!(Template::parse("${collection}/${a\"b}").is_err());
    }
}
