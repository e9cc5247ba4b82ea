//! The older STAC API `query` object (the "query" extension, STACQL), still sent by many
//! clients: `{"eo:cloud_cover": {"lt": 10}, "platform": {"in": ["a", "b"]}}`.
//!
//! Each property's operators are rewritten into CQL2 JSON and translated like a `filter`, so
//! both share one meaning (property names, types, NULL handling):
//!
//! | STACQL | CQL2 |
//! |---|---|
//! | `eq`, `neq` | `=`, `<>` |
//! | `lt`, `lte`, `gt`, `gte` | `<`, `<=`, `>`, `>=` |
//! | `startsWith`, `endsWith`, `contains` | `LIKE 'v%'`, `LIKE '%v'`, `LIKE '%v%'` (with `%`, `_` and `\` in `v` escaped) |
//! | `in` | `IN (…)`, or for an array property, any element in the list |
//!
//! A string value that spells a number (`"10"`) also compares as that number, since many
//! clients send every value as a string.
//!
//! All the conditions, over every property and operator, must hold.

use serde_json::{Map, Value, json};

use super::SearchError;
use super::cql2sql::{self, SqlFilter};

/// Translates a `query` object into SQL over a row of `items` aliased `i`.
pub fn translate(query: &Map<String, Value>) -> Result<SqlFilter, SearchError> {
    let bad = |message: String| SearchError::Parameter { name: "query", message };
    let mut conditions = Vec::new();
    for (property, operators) in query {
        let Value::Object(operators) = operators else {
            return Err(bad(format!(
                "'{property}' must map to an object of operators, such as {{\"eq\": 1}}"
            )));
        };
        if operators.is_empty() {
            return Err(bad(format!("'{property}' has no operators")));
        }
        let target = json!({ "property": property });
        for (operator, value) in operators {
            let scalar = |value: &Value| match value {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(value.clone()),
                _ => {
                    Err(bad(format!("'{property}': {operator} needs a string, number or boolean")))
                }
            };
            let text = |value: &Value| match value {
                Value::String(s) => Ok(like_escape(s)),
                _ => Err(bad(format!("'{property}': {operator} needs a string"))),
            };
            // Many clients send every value as a string: one that reads as a number also
            // compares as that number, so `{"eo:cloud_cover": {"lt": "10"}}` works.
            let comparison = |op: &str| -> Result<Value, SearchError> {
                let as_given = json!({ "op": op, "args": [target, scalar(value)?] });
                Ok(match numeric_string(value) {
                    Some(n) => {
                        json!({"op": "or", "args": [as_given, {"op": op, "args": [target, n]}]})
                    }
                    None => as_given,
                })
            };
            let condition = match operator.as_str() {
                "eq" => comparison("=")?,
                "neq" => comparison("<>")?,
                "lt" => comparison("<")?,
                "lte" => comparison("<=")?,
                "gt" => comparison(">")?,
                "gte" => comparison(">=")?,
                "startsWith" => {
                    json!({"op": "like", "args": [target, format!("{}%", text(value)?)]})
                }
                "endsWith" => json!({"op": "like", "args": [target, format!("%{}", text(value)?)]}),
                "contains" => {
                    json!({"op": "like", "args": [target, format!("%{}%", text(value)?)]})
                }
                "in" => {
                    let Value::Array(values) = value else {
                        return Err(bad(format!("'{property}': in needs an array")));
                    };
                    if values.is_empty() {
                        return Err(bad(format!("'{property}': in needs at least one value")));
                    }
                    let values = values.iter().map(scalar).collect::<Result<Vec<_>, _>>()?;
                    let listed = json!({"op": "in", "args": [target, values]});
                    if is_column(property) {
                        listed
                    } else {
                        // An array property matches when any of its elements is in the list.
                        json!({"op": "or", "args": [
                            listed,
                            {"op": "a_overlaps", "args": [target, values]},
                        ]})
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown operator '{other}' (use eq, neq, lt, lte, gt, gte, startsWith, endsWith, contains or in)"
                    )));
                }
            };
            conditions.push(condition);
        }
    }
    let expr = match conditions.len() {
        0 => return Ok(SqlFilter { sql: "1".into(), params: Vec::new() }),
        1 => conditions.pop().unwrap_or(Value::Null),
        _ => json!({"op": "and", "args": conditions}),
    };
    let expr = cql2sql::parse_json(&expr.to_string()).map_err(|e| bad(e.to_string()))?;
    cql2sql::translate(&expr).map_err(|e| bad(e.to_string()))
}

/// Whether the name is one of the item's own fields (never an array), not a property.
fn is_column(name: &str) -> bool {
    // As `cql2sql` names them: `properties.` reaches the columns only for the times.
    let time = name.strip_prefix("properties.").unwrap_or(name);
    matches!(name, "id" | "collection" | "geometry")
        || matches!(time, "datetime" | "start_datetime" | "end_datetime")
}

/// The number a string value spells, when it spells a finite one.
fn numeric_string(value: &Value) -> Option<Value> {
    let n: f64 = value.as_str()?.trim().parse().ok()?;
    serde_json::Number::from_f64(n).filter(|_| n.is_finite()).map(Value::Number)
}

/// Escapes the CQL2 LIKE wildcards (`%`, `_`) and the escape character `\` itself.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(query: Value) -> Result<SqlFilter, SearchError> {
        translate(query.as_object().unwrap())
    }

    #[test]
    fn every_operator_translates_with_bound_values() {
        for op in ["eq", "neq", "lt", "lte", "gt", "gte"] {
            let f = sql(json!({"eo:cloud_cover": {op: 10}})).unwrap();
            assert!(!f.sql.contains("10"), "{op}: {}", f.sql);
        }
        for op in ["startsWith", "endsWith", "contains"] {
            let f = sql(json!({"platform": {op: "'; DROP TABLE items; --"}})).unwrap();
            assert!(!f.sql.contains("DROP"), "{op}: {}", f.sql);
        }
        let f = sql(json!({"platform": {"in": ["a", "b"]}, "gsd": {"gte": 1, "lt": 2}})).unwrap();
        assert!(f.sql.contains("AND"));
        // `in` on the item's own fields, which are never arrays
        for field in ["id", "collection", "properties.collection", "naip:state"] {
            sql(json!({field: {"in": ["a", "b"]}})).unwrap_or_else(|e| panic!("{field}: {e}"));
        }
    }

    #[test]
    fn wildcards_in_values_are_literal() {
        assert_eq!(like_escape("50%_a\\b"), "50\\%\\_a\\\\b");
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        let message = |q: Value| sql(q).unwrap_err().to_string();
        assert!(message(json!({"a": {"like": 1}})).contains("unknown operator 'like'"));
        assert!(message(json!({"a": 5})).contains("'a' must map to an object"));
        assert!(message(json!({"a": {}})).contains("no operators"));
        assert!(message(json!({"a": {"in": []}})).contains("at least one value"));
        assert!(message(json!({"a": {"in": 3}})).contains("needs an array"));
        assert!(message(json!({"a": {"eq": [1]}})).contains("needs a string, number"));
        assert!(message(json!({"a": {"startsWith": 1}})).contains("needs a string"));
    }
}
