//! Search: the STAC API item search, over one catalog file.
//!
//! A [`Request`] (read from a STAC API search body, or from the `stac` crate's
//! `stac::api::Search`) is checked, planned into one SQL statement with bound parameters, and
//! run by [`crate::Catalog::search`], [`crate::Catalog::count`] or
//! [`crate::Catalog::search_each`].
//!
//! - [`request`]: the checked request (bbox, intersects, datetime, ids, collections, filter,
//!   query, q, sortby, fields, limit, token).
//! - [`engine`]: the plan, paging and time limit.
//! - [`freetext`]: the free-text `q` parameter, translated into an FTS5 query.
//! - [`token`]: opaque keyset paging tokens.
//! - [`cql2sql`]: CQL2 filters translated into SQLite SQL with bound parameters, and the SQL
//!   functions (geometry predicates) that SQL calls.
//! - [`stacql`]: the older `query` object, translated through CQL2.
//! - [`fields`]: the fields extension's include and exclude.

pub mod cql2sql;
pub mod engine;
pub mod fields;
pub mod freetext;
pub mod request;
pub mod stacql;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use geo::{BoundingRect, Intersects, Translate};
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;

pub use engine::{Page, SearchOptions};
pub use request::{Filter, Request, SortKey};

use crate::geometry;

/// Why a search was refused. Every variant but [`SearchError::Timeout`] is the client's to
/// fix, and its message says how.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// A parameter that is malformed.
    #[error("{name}: {message}")]
    Parameter {
        /// The parameter, as the STAC API names it.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The `filter` does not parse or translate.
    #[error("filter: {0}")]
    Filter(cql2sql::FilterError),
    /// The `q` does not parse.
    #[error("q: {0}")]
    FreeText(freetext::FreeTextError),
    /// The paging token is malformed, forged or from another search.
    #[error("token: {0}")]
    Token(token::TokenError),
    /// The search ran longer than its time limit.
    #[error(
        "the search took longer than its time limit of {0:?}; narrow it (a bbox, datetime or collections) or raise the limit"
    )]
    Timeout(Duration),
}

/// Registers the SQL functions searches call, on a connection.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    cql2sql::register_functions(conn)?;
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    conn.create_scalar_function("stacdb_search_intersects", 2, flags, |ctx| {
        let ValueRef::Blob(item) = ctx.get_raw(0) else {
            return Ok(false);
        };
        let query: Arc<Option<Query>> = ctx.get_or_create_aux(1, |value| -> Result<_, String> {
            Ok(match value {
                ValueRef::Blob(blob) => Query::new(blob),
                _ => None,
            })
        })?;
        let Some(query) = query.as_ref() else { return Ok(false) };
        Ok(query.hits(item))
    })
}

/// A bbox or intersects geometry, kept parsed between rows.
struct Query {
    geometry: geo::Geometry<f64>,
    bounds: geo::Rect<f64>,
    /// The query as boxes, when it is one box or two (a bbox across the antimeridian).
    boxes: Vec<geo::Rect<f64>>,
}

impl Query {
    fn new(blob: &[u8]) -> Option<Query> {
        let geometry = geometry::from_blob(blob).ok()?;
        let bounds = geometry.bounding_rect()?;
        let boxes = match &geometry {
            geo::Geometry::MultiPolygon(mp) => mp.0.iter().map(as_box).collect::<Option<Vec<_>>>(),
            geo::Geometry::Polygon(p) => as_box(p).map(|b| vec![b]),
            geo::Geometry::Rect(r) => Some(vec![*r]),
            _ => None,
        }
        .unwrap_or_default();
        Some(Query { geometry, bounds, boxes })
    }

    /// Whether the item geometry (a GeoPackage blob) intersects the query.
    ///
    /// Longitudes are read on the globe: an item or query that runs past ±180° (as MODIS
    /// tiles and some climate grids do) is also tested shifted by 360°.
    fn hits(&self, item: &[u8]) -> bool {
        if let Some(envelope) = geometry::envelope(item)
            && envelope.min().x >= -180.0
            && envelope.max().x <= 180.0
        {
            // Decided by the envelope alone: wholly inside one of the query's boxes, or (when
            // nothing needs shifting) apart from the query's bounds.
            if self.boxes.iter().any(|b| contains(b, &envelope)) {
                return true;
            }
            let q = &self.bounds;
            let inside_globe = q.min().x >= -180.0 && q.max().x <= 180.0;
            if inside_globe
                && (envelope.max().x < q.min().x
                    || envelope.min().x > q.max().x
                    || envelope.max().y < q.min().y
                    || envelope.min().y > q.max().y)
            {
                return false;
            }
        }
        let Ok(item) = geometry::from_blob(item) else { return false };
        let Some(bounds) = item.bounding_rect() else { return false };
        let mut shifts = vec![0.0];
        if bounds.max().x > 180.0 || self.bounds.min().x < -180.0 {
            shifts.push(-360.0);
        }
        if bounds.min().x < -180.0 || self.bounds.max().x > 180.0 {
            shifts.push(360.0);
        }
        // geo may panic on degenerate input; such an item does not match.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shifts.iter().any(|&dx| {
                if dx == 0.0 {
                    item.intersects(&self.geometry)
                } else {
                    item.translate(dx, 0.0).intersects(&self.geometry)
                }
            })
        }))
        .unwrap_or(false)
    }
}

fn contains(outer: &geo::Rect<f64>, inner: &geo::Rect<f64>) -> bool {
    outer.min().x <= inner.min().x
        && outer.min().y <= inner.min().y
        && outer.max().x >= inner.max().x
        && outer.max().y >= inner.max().y
}

/// The polygon as a box, when it is an axis-aligned rectangle without holes: five positions,
/// the last the first, and four edges that each run along one axis with non-zero length,
/// alternating (a triangle with a repeated vertex, a bow-tie or a line out and back is not a
/// box, though all its positions are corners of its bounds).
fn as_box(polygon: &geo::Polygon<f64>) -> Option<geo::Rect<f64>> {
    let ring = &polygon.exterior().0;
    if !polygon.interiors().is_empty() || ring.len() != 5 || ring[0] != ring[4] {
        return None;
    }
    let horizontal = |a: &geo::Coord<f64>, b: &geo::Coord<f64>| a.y == b.y && a.x != b.x;
    let vertical = |a: &geo::Coord<f64>, b: &geo::Coord<f64>| a.x == b.x && a.y != b.y;
    let edges: Vec<(bool, bool)> =
        ring.windows(2).map(|w| (horizontal(&w[0], &w[1]), vertical(&w[0], &w[1]))).collect();
    let alternating =
        edges.iter().all(|(h, v)| h != v) && edges.windows(2).all(|pair| pair[0].0 != pair[1].0);
    if !alternating {
        return None;
    }
    let rect = polygon.bounding_rect()?;
    // Four alternating axis-parallel edges closing the ring make a rectangle; check the
    // corners anyway.
    let on_corner = |c: &geo::Coord<f64>| {
        (c.x == rect.min().x || c.x == rect.max().x) && (c.y == rect.min().y || c.y == rect.max().y)
    };
    ring.iter().all(on_corner).then_some(rect)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{LineString, Polygon};

    fn polygon(points: &[(f64, f64)]) -> Polygon<f64> {
        Polygon::new(LineString::from(points.to_vec()), vec![])
    }

    #[test]
    fn only_rectangles_are_boxes() {
        let square = polygon(&[(0., 0.), (10., 0.), (10., 10.), (0., 10.), (0., 0.)]);
        assert!(as_box(&square).is_some());
        let clockwise = polygon(&[(0., 0.), (0., 10.), (10., 10.), (10., 0.), (0., 0.)]);
        assert!(as_box(&clockwise).is_some());
        for not_a_box in [
            // a triangle with a repeated vertex
            &[(0., 0.), (10., 0.), (10., 10.), (10., 10.), (0., 0.)][..],
            // out along the diagonal and back
            &[(0., 0.), (10., 10.), (0., 0.), (10., 10.), (0., 0.)],
            // a bow-tie
            &[(0., 0.), (10., 10.), (10., 0.), (0., 10.), (0., 0.)],
            // a line out and back along an edge
            &[(0., 0.), (10., 0.), (0., 0.), (10., 0.), (0., 0.)],
        ] {
            assert!(as_box(&polygon(not_a_box)).is_none(), "{not_a_box:?}");
        }
    }
}
