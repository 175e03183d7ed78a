//! `kv`: a small key-value store over HTTP whose data lives in files on a
//! volume, so a StatefulSet replica keeps its keys across new instances, pod
//! deletion and node restarts. The directory is `$KV_DIR` (default `/data`, a
//! volume mount: a WASI preopened directory); each key is one file named
//! exactly like the key.
//!
//! - `PUT /KEY` stores the body (at most 1 MiB, else `413`) as the value of
//!   `KEY`: `201` when the key is new, `200` when it replaced a value, both
//!   with `stored`;
//! - `GET /KEY` answers `200` with the stored bytes, `404` when there are none;
//! - `DELETE /KEY` answers `200` `deleted`, or `404`;
//! - `GET /` answers `200` with the keys, one per line, sorted;
//! - `GET /healthz` answers `200 ok` only if the directory is writable (it
//!   writes and removes a probe file), else `503` with the error.
//!
//! A key is 1 to 128 characters of `A-Z a-z 0-9 . _ -` and does not start with
//! `.`; anything else is `400` with the reason. Every response carries
//! `x-kv-pod: $POD_NAME` (empty when unset), so a client can see which replica
//! answered. An I/O error is `500` with the error, never a trap.
//!
//! A value is written to a temporary file `.tmp-...` in the same directory,
//! synced and renamed over the key's file, so a reader sees the old value or
//! the new one, never half of one; a crash leaves at most a stray `.tmp-` file,
//! which is not a key (keys never start with `.`) and so is never listed.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use guest_http::{method, path_of, path_with_query};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

const TEXT: &str = "text/plain; charset=utf-8";
const BINARY: &str = "application/octet-stream";
/// The longest key, in characters.
const MAX_KEY_LEN: usize = 128;
/// The largest value, in bytes.
const MAX_VALUE: usize = 1024 * 1024;
/// What temporary files' names start with; never a key, since keys cannot
/// start with `.`.
const TEMP_PREFIX: &str = ".tmp-";

struct Kv;

impl Guest for Kv {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let dir = std::env::var("KV_DIR").unwrap_or_else(|_| "/data".into());
        let reply = serve(&request, Path::new(&dir));
        let pod = std::env::var("POD_NAME").unwrap_or_default();
        send(out, &reply, &pod);
    }
}

wasip2::http::proxy::export!(Kv);

/// What a request asks for, decided from its method and path alone.
#[derive(Debug, PartialEq)]
enum Route<'a> {
    List,
    Health,
    Get(&'a str),
    Put(&'a str),
    Delete(&'a str),
    /// The path is not a valid key; the reason.
    BadKey(String),
    /// The method does not apply to the path; the methods that do.
    NotAllowed(&'static str),
}

fn route<'a>(method: &str, path: &'a str) -> Route<'a> {
    match (method, path) {
        ("GET", "/") => Route::List,
        ("GET", "/healthz") => Route::Health,
        (_, "/" | "/healthz") => Route::NotAllowed("GET"),
        _ => {
            let key = path.strip_prefix('/').unwrap_or(path);
            if let Err(reason) = check_key(key) {
                return Route::BadKey(reason);
            }
            match method {
                "GET" => Route::Get(key),
                "PUT" => Route::Put(key),
                "DELETE" => Route::Delete(key),
                _ => Route::NotAllowed("GET, PUT, DELETE"),
            }
        }
    }
}

/// `Ok` for a usable key, else why not (one line).
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("empty key".into());
    }
    if key.starts_with('.') {
        return Err(format!("key {key:?} starts with \".\""));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if let Some(c) = key.chars().find(|&c| !allowed(c)) {
        return Err(format!(
            "key {key:?} holds {c:?}; keys are made of A-Z a-z 0-9 . _ -"
        ));
    }
    // Only ASCII is left, so bytes are characters.
    if key.len() > MAX_KEY_LEN {
        return Err(format!(
            "key is {} characters long, the limit is {MAX_KEY_LEN}",
            key.len()
        ));
    }
    Ok(())
}

/// A response before it is sent.
#[derive(Debug, PartialEq)]
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// The `allow` header of a `405`.
    allow: Option<&'static str>,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            content_type: TEXT,
            body: body.into().into_bytes(),
            allow: None,
        }
    }

    fn failed(error: String) -> Self {
        Reply::text(500, format!("kv: {error}\n"))
    }

    fn no_key(key: &str) -> Self {
        Reply::text(404, format!("no key {key:?}\n"))
    }
}

fn serve(request: &IncomingRequest, dir: &Path) -> Reply {
    let method = method(request);
    let target = path_with_query(request);
    match route(&method, path_of(&target)) {
        Route::List => match list_keys(dir) {
            Ok(keys) => Reply::text(200, listing(&keys)),
            Err(e) => Reply::failed(e),
        },
        Route::Health => match probe(dir) {
            Ok(()) => Reply::text(200, "ok\n"),
            Err(e) => Reply::text(503, format!("kv: {e}\n")),
        },
        Route::Get(key) => match get(dir, key) {
            Ok(Some(value)) => Reply {
                status: 200,
                content_type: BINARY,
                body: value,
                allow: None,
            },
            Ok(None) => Reply::no_key(key),
            Err(e) => Reply::failed(e),
        },
        Route::Put(key) => match read_body(request) {
            Ok(Some(value)) => match put(dir, key, &value) {
                Ok(stored) => Reply::text(stored.status(), "stored\n"),
                Err(e) => Reply::failed(e),
            },
            Ok(None) => Reply::text(413, format!("value larger than {MAX_VALUE} bytes\n")),
            Err(e) => Reply::failed(e),
        },
        Route::Delete(key) => match delete(dir, key) {
            Ok(true) => Reply::text(200, "deleted\n"),
            Ok(false) => Reply::no_key(key),
            Err(e) => Reply::failed(e),
        },
        Route::BadKey(reason) => Reply::text(400, format!("{reason}\n")),
        Route::NotAllowed(allow) => Reply {
            allow: Some(allow),
            ..Reply::text(405, format!("{method} not allowed here; use {allow}\n"))
        },
    }
}

/// The keys in `dir`: its regular files whose names are valid keys, sorted
/// (temporary and probe files start with `.`, so they are left out).
fn list_keys(dir: &Path) -> Result<Vec<String>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("list {}: {e}", dir.display()))?;
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("list {}: {e}", dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && check_key(&name).is_ok() {
            keys.push(name);
        }
    }
    keys.sort();
    Ok(keys)
}

/// One key per line.
fn listing(keys: &[String]) -> String {
    keys.iter().map(|key| format!("{key}\n")).collect()
}

/// The value of `key`, `None` when it has none.
fn get(dir: &Path, key: &str) -> Result<Option<Vec<u8>>, String> {
    let file = dir.join(key);
    match fs::read(&file) {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == ErrorKind::NotFound => check_dir(dir).map(|()| None),
        Err(e) => Err(format!("read {}: {e}", file.display())),
    }
}

/// Whether a `PUT` made a key or replaced its value.
#[derive(Debug, PartialEq)]
enum Stored {
    New,
    Replaced,
}

impl Stored {
    fn status(&self) -> u16 {
        match self {
            Stored::New => 201,
            Stored::Replaced => 200,
        }
    }
}

/// Stores `value` as the value of `key`, atomically.
fn put(dir: &Path, key: &str, value: &[u8]) -> Result<Stored, String> {
    let file = dir.join(key);
    let stored = match fs::symlink_metadata(&file) {
        Ok(_) => Stored::Replaced,
        Err(e) if e.kind() == ErrorKind::NotFound => Stored::New,
        Err(e) => return Err(format!("stat {}: {e}", file.display())),
    };
    let (temp, mut out) = create_temp(dir, "")?;
    let written = out
        .write_all(value)
        .and_then(|()| out.sync_all())
        .map_err(|e| format!("write {}: {e}", temp.display()));
    drop(out);
    let renamed = written.and_then(|()| {
        fs::rename(&temp, &file)
            .map_err(|e| format!("rename {} to {}: {e}", temp.display(), file.display()))
    });
    if renamed.is_err() {
        let _ = fs::remove_file(&temp);
    }
    renamed.map(|()| stored)
}

/// Removes `key`; `false` when it had no value.
fn delete(dir: &Path, key: &str) -> Result<bool, String> {
    let file = dir.join(key);
    match fs::remove_file(&file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => check_dir(dir).map(|()| false),
        Err(e) => Err(format!("delete {}: {e}", file.display())),
    }
}

/// A key's file that is not found means no key only when `dir` itself is
/// there: an unmounted volume is an error, not an empty store.
fn check_dir(dir: &Path) -> Result<(), String> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(format!("{} is not a directory", dir.display())),
        Err(e) => Err(format!("open {}: {e}", dir.display())),
    }
}

/// Checks that `dir` takes writes: creates, writes and removes a probe file.
fn probe(dir: &Path) -> Result<(), String> {
    let (path, mut file) = create_temp(dir, "probe-")?;
    let written = file
        .write_all(b"ok\n")
        .map_err(|e| format!("write {}: {e}", path.display()));
    drop(file);
    let removed = fs::remove_file(&path).map_err(|e| format!("remove {}: {e}", path.display()));
    written.and(removed)
}

/// Creates a new, empty file `.tmp-<tag><random>` in `dir`. Concurrent
/// requests run in separate instances, so the name is random and the file is
/// created exclusively.
fn create_temp(dir: &Path, tag: &str) -> Result<(PathBuf, File), String> {
    let mut attempt = 0;
    loop {
        let path = dir.join(format!("{TEMP_PREFIX}{tag}{:016x}", random()));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            Err(e) => return Err(format!("create {}: {e}", path.display())),
        }
    }
}

/// A random number, from the randomly keyed hasher std gets from the host.
fn random() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one(nanos)
}

/// Reads the request body: `None` when it is longer than [`MAX_VALUE`].
fn read_body(request: &IncomingRequest) -> Result<Option<Vec<u8>>, String> {
    let body = request
        .consume()
        .map_err(|()| "request body already consumed".to_string())?;
    let value = {
        let stream = body
            .stream()
            .map_err(|()| "request body stream already taken".to_string())?;
        read_at_most(stream, MAX_VALUE).map_err(|e| format!("read request body: {e}"))?
    };
    // Trailers are not used; finishing the body is enough.
    drop(IncomingBody::finish(body));
    Ok(value)
}

/// Everything `reader` gives, or `None` when that is more than `limit` bytes
/// (it reads no further than one byte past the limit).
fn read_at_most(reader: impl Read, limit: usize) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(&mut bytes)?;
    Ok((bytes.len() <= limit).then_some(bytes))
}

/// The response's headers: `x-kv-pod` always, `allow` on a `405`.
fn header_list(reply: &Reply, pod: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut list = vec![
        ("content-type", reply.content_type.as_bytes().to_vec()),
        ("content-length", reply.body.len().to_string().into_bytes()),
        ("x-kv-pod", pod.as_bytes().to_vec()),
    ];
    if let Some(allow) = reply.allow {
        list.push(("allow", allow.as_bytes().to_vec()));
    }
    list
}

/// Sends `reply`. Like `guest_http::respond`, plus the headers `kv` adds.
fn send(out: ResponseOutparam, reply: &Reply, pod: &str) {
    let headers = Fields::new();
    for (name, value) in header_list(reply, pod) {
        // Only a pod name that is not a valid header value can fail; the
        // response goes out without it rather than not at all.
        let _ = headers.append(name, &value);
    }
    let response = OutgoingResponse::new(headers);
    // Only 100..=599 can fail, and every status here is in range.
    let _ = response.set_status_code(reply.status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = outgoing.write() {
        // A client that went away is nothing the guest can do anything about.
        let _ = stream.write_all(&reply.body);
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_keys() {
        for key in ["a", "A-z_0.9", "config.json", "a.", "-", &"k".repeat(128)] {
            assert_eq!(check_key(key), Ok(()), "{key}");
        }
    }

    #[test]
    fn invalid_keys_say_why_on_one_line() {
        for key in [
            "",
            ".hidden",
            ".tmp-123",
            "..",
            "a/b",
            "a b",
            "a%20b",
            "ключ",
            "a\nb",
            &"k".repeat(129),
        ] {
            let reason = check_key(key).expect_err(key);
            assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
        }
        assert_eq!(
            check_key(&"k".repeat(129)),
            Err("key is 129 characters long, the limit is 128".into())
        );
    }

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(route("GET", "/"), Route::List);
        assert_eq!(route("GET", "/healthz"), Route::Health);
        assert_eq!(route("GET", "/k1"), Route::Get("k1"));
        assert_eq!(route("PUT", "/k1"), Route::Put("k1"));
        assert_eq!(route("DELETE", "/k1"), Route::Delete("k1"));
        assert_eq!(route("POST", "/k1"), Route::NotAllowed("GET, PUT, DELETE"));
        assert_eq!(route("PUT", "/"), Route::NotAllowed("GET"));
        assert_eq!(route("PUT", "/healthz"), Route::NotAllowed("GET"));
        assert!(matches!(route("PUT", "/a/b"), Route::BadKey(_)));
        assert!(matches!(route("GET", "/.tmp-1"), Route::BadKey(_)));
    }

    #[test]
    fn reads_up_to_the_limit() {
        assert_eq!(read_at_most(&b"abc"[..], 3).unwrap(), Some(b"abc".to_vec()));
        assert_eq!(read_at_most(&b""[..], 3).unwrap(), Some(Vec::new()));
        assert_eq!(read_at_most(&b"abcd"[..], 3).unwrap(), None);
        let big = vec![7u8; MAX_VALUE + 1];
        assert_eq!(read_at_most(&big[..], MAX_VALUE).unwrap(), None);
        assert_eq!(
            read_at_most(&big[..MAX_VALUE], MAX_VALUE)
                .unwrap()
                .map(|v| v.len()),
            Some(MAX_VALUE)
        );
    }

    #[test]
    fn every_reply_names_the_pod() {
        let reply = Reply::text(200, "ok\n");
        let headers = header_list(&reply, "kv-1");
        assert!(headers.contains(&("x-kv-pod", b"kv-1".to_vec())));
        assert!(headers.contains(&("content-length", b"3".to_vec())));
        assert!(header_list(&reply, "").contains(&("x-kv-pod", Vec::new())));
        let not_allowed = Reply {
            allow: Some("GET"),
            ..Reply::text(405, "no\n")
        };
        assert!(header_list(&not_allowed, "").contains(&("allow", b"GET".to_vec())));
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "skiff-kv-{name}-{}-{:016x}",
                std::process::id(),
                random()
            ));
            fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn put_makes_then_replaces_a_key() {
        let dir = TempDir::new("put");
        assert_eq!(put(&dir.0, "k", b"one"), Ok(Stored::New));
        assert_eq!(Stored::New.status(), 201);
        assert_eq!(get(&dir.0, "k"), Ok(Some(b"one".to_vec())));
        assert_eq!(put(&dir.0, "k", b"two"), Ok(Stored::Replaced));
        assert_eq!(Stored::Replaced.status(), 200);
        assert_eq!(fs::read(dir.0.join("k")).unwrap(), b"two");
        assert_eq!(put(&dir.0, "empty", b""), Ok(Stored::New));
        assert_eq!(get(&dir.0, "empty"), Ok(Some(Vec::new())));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 2);
    }

    #[test]
    fn get_and_delete_of_a_missing_key() {
        let dir = TempDir::new("missing");
        assert_eq!(get(&dir.0, "nope"), Ok(None));
        assert_eq!(delete(&dir.0, "nope"), Ok(false));
        put(&dir.0, "k", b"v").unwrap();
        assert_eq!(delete(&dir.0, "k"), Ok(true));
        assert_eq!(get(&dir.0, "k"), Ok(None));
        assert_eq!(Reply::no_key("k").body, b"no key \"k\"\n");
    }

    #[test]
    fn listing_leaves_out_temp_files_and_directories_and_sorts() {
        let dir = TempDir::new("list");
        for key in ["b", "a", "C", "a.b"] {
            put(&dir.0, key, b"v").unwrap();
        }
        fs::write(dir.0.join(".tmp-deadbeef"), b"half a val").unwrap();
        fs::write(dir.0.join("not a key"), b"v").unwrap();
        fs::create_dir(dir.0.join("subdir")).unwrap();
        let keys = list_keys(&dir.0).unwrap();
        assert_eq!(keys, ["C", "a", "a.b", "b"]);
        assert_eq!(listing(&keys), "C\na\na.b\nb\n");
        assert_eq!(listing(&[]), "");
    }

    #[test]
    fn probe_needs_a_writable_directory_and_leaves_nothing() {
        let dir = TempDir::new("probe");
        assert_eq!(probe(&dir.0), Ok(()));
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 0);
        let err = probe(&dir.0.join("absent")).unwrap_err();
        assert!(err.contains("absent"), "{err}");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = TempDir::new("nodir");
        let absent = dir.0.join("absent");
        assert!(put(&absent, "k", b"v").is_err());
        assert!(list_keys(&absent).is_err());
        assert!(get(&absent, "k").is_err());
        assert!(delete(&absent, "k").is_err());
    }
}
