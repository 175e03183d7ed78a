//! `settings`: an HTTP pod that reads its configuration through
//! `wasi:config/store`, which Skiff fills from the ConfigMaps and Secrets the
//! pod's `skiff.dev/wasi-config` annotation names (see `wit/README.md`).
//!
//! - `GET /` answers `200` with every key, one `key=value` line each, sorted;
//! - `GET /KEY` answers `200` with the value of `KEY`, or `404` when it has none;
//! - `GET /healthz` answers `200 ok`.

use guest_http::{path_of, path_with_query, respond};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

wit_bindgen::generate!({
    path: "../../wit/deps/config",
    world: "wasi:config/imports@0.2.0-rc.1",
    generate_all,
});

use wasi::config::store;

struct Settings;

impl Guest for Settings {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = path_with_query(&request);
        let path = path_of(&target);
        let text = "text/plain; charset=utf-8";
        match path.trim_start_matches('/') {
            "healthz" => respond(out, 200, text, b"ok\n"),
            "" => match store::get_all() {
                Ok(all) => respond(out, 200, text, listing(all).as_bytes()),
                Err(e) => respond(out, 500, text, format!("{e:?}\n").as_bytes()),
            },
            key => match store::get(key) {
                Ok(Some(value)) => respond(out, 200, text, value.as_bytes()),
                Ok(None) => respond(out, 404, text, format!("no key {key:?}\n").as_bytes()),
                Err(e) => respond(out, 500, text, format!("{e:?}\n").as_bytes()),
            },
        }
    }
}

wasip2::http::proxy::export!(Settings);

/// `key=value` lines, sorted by key.
fn listing(mut all: Vec<(String, String)>) -> String {
    all.sort();
    all.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_keys_sorted_one_per_line() {
        let all = vec![
            ("mode".to_string(), "fast".to_string()),
            ("level".to_string(), "3".to_string()),
        ];
        assert_eq!(listing(all), "level=3\nmode=fast\n");
        assert_eq!(listing(Vec::new()), "");
    }
}
