//! `crasher`: a guest that fails on purpose, to show a trap ends one instance
//! and never the node. `GET /crash` panics (the panic message goes to stderr,
//! the pod's log, then the instance traps with `unreachable`); other paths
//! answer `200`. `/crash?kind=unreachable` traps without a message and
//! `/crash?kind=overflow` recurses until the engine's call stack is exhausted.
//!
//! `GET /count` answers how many `/count` requests this instance has served,
//! kept in a static: `1` every time in a fresh instance per request, `1`, `2`,
//! `3`... when the pod reuses instances (`skiff.dev/instance-reuse: "true"`),
//! and `1` again after a trap, since a trapped instance is never reused.
//! `/count?leak=1` also leaks a host resource (a `fields` handle it never
//! drops), which a host that reuses instances must notice.
//!
//! With `CRASH_AT_START=1` it fails "at start". An HTTP pod gets a fresh
//! instance per request, and the guest only runs when a request arrives, so
//! "at start" means every request traps before it is handled, `/healthz`
//! included: readiness probes fail and the pod never becomes Ready.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use guest_http::{path_of, path_with_query, query_param, respond};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, ResponseOutparam};

/// `/count` requests this instance has served.
static COUNT: AtomicU64 = AtomicU64::new(0);

struct Crasher;

impl Guest for Crasher {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if std::env::var("CRASH_AT_START").as_deref() == Ok("1") {
            panic!("crasher: CRASH_AT_START=1, trapping before any request is handled");
        }
        let target = path_with_query(&request);
        if path_of(&target) == "/count" {
            let n = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
            if query_param(&target, "leak") == Some("1") {
                std::mem::forget(Fields::new());
            }
            return respond(
                out,
                200,
                "text/plain; charset=utf-8",
                format!("{n}\n").as_bytes(),
            );
        }
        if path_of(&target) != "/crash" {
            return respond(
                out,
                200,
                "text/plain; charset=utf-8",
                b"crasher is up; GET /crash to make it trap\n",
            );
        }
        match query_param(&target, "kind").unwrap_or("panic") {
            "unreachable" => unreachable_trap(),
            "overflow" => {
                let depth = recurse(black_box(0));
                panic!("crasher: recursion returned at depth {depth}");
            }
            _ => panic!("crasher: asked to crash at {target}"),
        }
    }
}

wasip2::http::proxy::export!(Crasher);

fn unreachable_trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Recurses without bound, until the engine's call stack is exhausted.
/// `black_box` keeps the optimizer from turning it into a loop; frames stay
/// small so the engine's stack limit is hit before the shadow stack in linear
/// memory runs out.
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    recurse(black_box(depth + 1)).wrapping_add(black_box(depth))
}
