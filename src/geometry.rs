//! GeoJSON geometries to GeoPackage geometry blobs, and the boxes the indexes hold.
//!
//! A GeoPackage geometry blob (OGC GeoPackage 1.3, clause 2.1.3) is a small header — the magic
//! `GP`, a version byte, a flags byte, the SRS id and an envelope — followed by ISO WKB. stacdb
//! writes little-endian blobs in EPSG:4326 with the 2-D envelope `[minx, maxx, miny, maxy]`.
//! Coordinates keep only their 2-D part: the exact document, with any Z values, stays in the
//! item's JSON, and every spatial predicate stacdb answers is 2-D.

use geo::BoundingRect;
use serde::Deserialize;
use serde_json::Value;

/// EPSG code of WGS 84 longitude/latitude, the only CRS STAC geometries use.
pub const SRS_ID: i32 = 4326;

/// A 2-D box, `[minx, miny, maxx, maxy]` as in a STAC bbox.
pub type Bbox = [f64; 4];

/// A geometry converted for storage.
#[derive(Debug, Clone)]
pub struct Footprint {
    /// The GeoPackage geometry blob.
    pub blob: Vec<u8>,
    /// The geometry's 2-D bounds, or `None` when it is empty.
    pub bounds: Option<Bbox>,
}

/// Converts a GeoJSON geometry object into a GeoPackage blob.
///
/// Returns an error message when the value is not a GeoJSON geometry.
pub fn footprint(value: &Value) -> Result<Footprint, String> {
    from_geojson(geojson::Geometry::deserialize(value).map_err(|e| e.to_string())?)
}

/// Converts a GeoJSON geometry given as JSON text into a GeoPackage blob.
pub fn footprint_from_str(text: &str) -> Result<Footprint, String> {
    from_geojson(serde_json::from_str(text).map_err(|e| e.to_string())?)
}

fn from_geojson(geometry: geojson::Geometry) -> Result<Footprint, String> {
    // The geojson crate indexes positions without checking their length (it panics on
    // `[1]`): check them first. Found by fuzzing (fuzz/fuzz_targets/document.rs).
    check_positions(&geometry.value)?;
    let geometry: geo::Geometry<f64> =
        geo::Geometry::try_from(&geometry.value).map_err(|e| e.to_string())?;
    let bounds = geometry.bounding_rect().map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]);
    if let Some(b) = bounds
        && b.iter().any(|v| !v.is_finite())
    {
        return Err("coordinates must be finite numbers".into());
    }
    let mut blob = Vec::with_capacity(64);
    blob.extend_from_slice(b"GP");
    blob.push(0); // version 1.0 of the blob format
    // flags: bit 0 little-endian; bits 1-3 envelope kind (1 = xy); bit 4 empty geometry
    let flags: u8 = match bounds {
        Some(_) => 0b0000_0011,
        None => 0b0001_0001,
    };
    blob.push(flags);
    blob.extend_from_slice(&SRS_ID.to_le_bytes());
    if let Some([minx, miny, maxx, maxy]) = bounds {
        for v in [minx, maxx, miny, maxy] {
            blob.extend_from_slice(&v.to_le_bytes());
        }
    }
    let options = wkb::writer::WriteOptions { endianness: wkb::Endianness::LittleEndian };
    wkb::writer::write_geometry(&mut blob, &geometry, &options).map_err(|e| e.to_string())?;
    Ok(Footprint { blob, bounds })
}

/// Checks that every position of a geometry has at least two numbers (longitude and latitude;
/// more, such as an elevation, are allowed and ignored).
fn check_positions(value: &geojson::GeometryValue) -> Result<(), String> {
    fn positions<'a>(mut all: impl Iterator<Item = &'a geojson::Position>) -> Result<(), String> {
        match all.find(|p| p.len() < 2) {
            Some(p) => Err(format!(
                "a position needs at least 2 numbers (longitude, latitude), found {}",
                p.len()
            )),
            None => Ok(()),
        }
    }
    use geojson::GeometryValue as G;
    match value {
        G::Point { coordinates } => positions(std::iter::once(coordinates)),
        G::MultiPoint { coordinates } | G::LineString { coordinates } => {
            positions(coordinates.iter())
        }
        G::MultiLineString { coordinates } | G::Polygon { coordinates } => {
            positions(coordinates.iter().flatten())
        }
        G::MultiPolygon { coordinates } => positions(coordinates.iter().flatten().flatten()),
        G::GeometryCollection { geometries } => {
            geometries.iter().try_for_each(|g| check_positions(&g.value))
        }
    }
}

/// Reads a GeoPackage blob back into a geometry.
pub fn from_blob(blob: &[u8]) -> Result<geo::Geometry<f64>, String> {
    let offset = header_len(blob)?;
    let wkb = wkb::reader::read_wkb(&blob[offset..]).map_err(|e| e.to_string())?;
    Ok(geo_traits::to_geo::ToGeoGeometry::to_geometry(&wkb))
}

/// The 2-D envelope written in a GeoPackage blob's header, without reading its WKB; `None`
/// when the blob has no envelope (empty geometries) or is not a blob stacdb wrote.
pub fn envelope(blob: &[u8]) -> Option<geo::Rect<f64>> {
    if blob.len() < 40 || &blob[..2] != b"GP" || blob[3] & 1 != 1 || (blob[3] >> 1) & 0b111 == 0 {
        return None;
    }
    let f = |n: usize| f64::from_le_bytes(blob[8 + 8 * n..16 + 8 * n].try_into().unwrap_or([0; 8]));
    let [minx, maxx, miny, maxy] = [f(0), f(1), f(2), f(3)];
    Some(geo::Rect::new(geo::coord! { x: minx, y: miny }, geo::coord! { x: maxx, y: maxy }))
}

/// The length of a GeoPackage blob's header, checked.
fn header_len(blob: &[u8]) -> Result<usize, String> {
    if blob.len() < 8 || &blob[..2] != b"GP" {
        return Err("not a GeoPackage geometry blob".into());
    }
    let envelope = match (blob[3] >> 1) & 0b111 {
        0 => 0,
        1 => 32,
        2 | 3 => 48,
        4 => 64,
        other => return Err(format!("bad envelope indicator {other}")),
    };
    if blob.len() < 8 + envelope {
        return Err("truncated GeoPackage geometry blob".into());
    }
    Ok(8 + envelope)
}

/// The box a bbox covers on the globe, as the catalog indexes it and sums it into extents.
///
/// A box that crosses the antimeridian (minx > maxx), or whose longitudes run past ±180 (as
/// real MODIS tiles do), covers the whole longitude range; latitudes are clamped to ±90 (both
/// edges, so a box lying wholly beyond a pole, as in documents with swapped axes, stays valid).
pub fn globe_box(bbox: Bbox) -> Bbox {
    let [minx, miny, maxx, maxy] = bbox;
    let (minx, maxx) =
        if minx > maxx || minx < -180.0 || maxx > 180.0 { (-180.0, 180.0) } else { (minx, maxx) };
    [minx, miny.clamp(-90.0, 90.0), maxx, maxy.clamp(-90.0, 90.0)]
}

/// The smallest box holding both.
pub fn union(a: Bbox, b: Bbox) -> Bbox {
    [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn polygon_round_trips_through_blob() {
        let value =
            json!({"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 1], [0, 1], [0, 0]]]});
        let footprint = footprint(&value).unwrap();
        assert_eq!(&footprint.blob[..2], b"GP");
        assert_eq!(footprint.bounds, Some([0.0, 0.0, 2.0, 1.0]));
        let geometry = from_blob(&footprint.blob).unwrap();
        assert_eq!(geometry.bounding_rect().unwrap().max().x, 2.0);
    }

    #[test]
    fn three_d_coordinates_keep_their_2d_part() {
        let value = json!({"type": "Point", "coordinates": [1.5, 2.5, 100.0]});
        let footprint = footprint(&value).unwrap();
        assert_eq!(footprint.bounds, Some([1.5, 2.5, 1.5, 2.5]));
    }

    #[test]
    fn rejects_what_is_not_geojson() {
        assert!(footprint(&json!({"type": "Polygon", "coordinates": "x"})).is_err());
        assert!(footprint(&json!({"type": "Circle", "coordinates": [0, 0]})).is_err());
        assert!(footprint(&json!([1, 2])).is_err());
    }

    #[test]
    fn rejects_short_positions_without_panicking() {
        // Found by fuzzing: the geojson crate panicked on positions of fewer than 2 numbers.
        for value in [
            json!({"type": "Point", "coordinates": [1]}),
            json!({"type": "Point", "coordinates": []}),
            json!({"type": "LineString", "coordinates": [[0, 0], [1]]}),
            json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1], [0, 0]]]}),
            json!({"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0]]]]}),
            json!({"type": "GeometryCollection", "geometries": [
                {"type": "MultiPoint", "coordinates": [[0, 0], [2]]}]}),
        ] {
            // (geojson itself refuses a short Point; stacdb's check finds the others)
            let e = footprint(&value).unwrap_err();
            assert!(e.contains("position"), "{value}: {e}");
            let e = footprint_from_str(&value.to_string()).unwrap_err();
            assert!(e.contains("position"), "{value}: {e}");
        }
    }

    #[test]
    fn globe_box_widens_antimeridian_and_out_of_range_boxes() {
        assert_eq!(globe_box([170.0, -10.0, -170.0, 10.0]), [-180.0, -10.0, 180.0, 10.0]);
        assert_eq!(globe_box([170.0, -10.0, 180.14, 10.0]), [-180.0, -10.0, 180.0, 10.0]);
        assert_eq!(globe_box([1.0, -95.0, 2.0, 91.0]), [1.0, -90.0, 2.0, 90.0]);
        // latitude and longitude swapped (stac-spec 0.8.1 sar/envisat.json): wholly past 90
        assert_eq!(globe_box([64.3, 114.5, 71.1, 128.6]), [64.3, 90.0, 71.1, 90.0]);
    }
}
