//! The HTTP query-string parser of `stacdb serve`: GET `/search` and
//! `/collections/{id}/items` with arbitrary parameters, through the axum router (tower
//! `oneshot`) over a small catalog. Property: never a 5xx (a malformed parameter is a 400),
//! and every response is JSON.
#![no_main]

use std::cell::OnceCell;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

thread_local! {
    static APP: OnceCell<(tokio::runtime::Runtime, Router)> = const { OnceCell::new() };
}

fn app() -> (tokio::runtime::Runtime, Router) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let options = stacdb::server::ServeOptions {
        base_url: Some("http://fuzz.example".into()),
        max_limit: 100,
        timeout: std::time::Duration::from_secs(5),
        ..Default::default()
    };
    let router = stacdb::server::router(&stacdb_fuzz::catalog_path(), options).unwrap();
    (runtime, router)
}

/// Bytes a URI's query may hold as they are (RFC 3986 `pchar`, `/`, `?`, and `%`, so that
/// the fuzzer's own escapes, well formed or not, reach the parser); others are escaped.
fn query(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len());
    for &b in data {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (path, data) = match data.split_first() {
        Some((b'!', rest)) => ("/collections/c/items", rest),
        Some((b'#', rest)) => ("/collections/nope/items", rest),
        _ => ("/search", data),
    };
    let uri = format!("{path}?{}", query(data));
    let Ok(request) = Request::get(&uri).body(Body::empty()) else { return };
    APP.with(|cell| {
        let (runtime, router) = cell.get_or_init(app);
        runtime.block_on(async {
            let response = router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            assert!(
                !status.is_server_error(),
                "{status} for GET {uri}: {}",
                String::from_utf8_lossy(&body)
            );
            serde_json::from_slice::<serde_json::Value>(&body)
                .unwrap_or_else(|e| panic!("{status} for GET {uri} is not JSON: {e}"));
        });
    });
});
