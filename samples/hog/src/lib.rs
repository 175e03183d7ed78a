//! `hog`: a guest that asks for memory, to show `resources.limits.memory` caps
//! an instance. `GET /grow?mb=N` allocates N MiB, writes every byte of it (so
//! the pages are really in use), and answers with what it holds and the size of
//! its linear memory. Past the limit the allocation fails and Rust aborts: the
//! message `memory allocation of ... bytes failed` goes to stderr and the
//! instance traps. Other paths answer `200` at once.
//!
//! An HTTP pod gets a fresh instance per request, so each request starts from
//! the component's initial memory (about 1 MiB) and holds only what it asked
//! for.

use std::hint::black_box;

use guest_http::{path_of, path_with_query, query_param, respond};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

const TEXT: &str = "text/plain; charset=utf-8";
const MIB: usize = 1 << 20;

struct Hog;

impl Guest for Hog {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = path_with_query(&request);
        if path_of(&target) != "/grow" {
            return respond(out, 200, TEXT, b"hog is up; GET /grow?mb=N to hold N MiB\n");
        }
        let bytes = match requested_bytes(query_param(&target, "mb")) {
            Ok(bytes) => bytes,
            Err(e) => return respond(out, 400, TEXT, format!("hog: {e}\n").as_bytes()),
        };
        let held = vec![0xa5u8; bytes];
        let held = black_box(held);
        let reply = format!(
            "holding {} MiB; linear memory {} MiB\n",
            held.len() / MIB,
            linear_memory_bytes() / MIB
        );
        respond(out, 200, TEXT, reply.as_bytes());
        drop(held);
    }
}

wasip2::http::proxy::export!(Hog);

fn requested_bytes(mb: Option<&str>) -> Result<usize, String> {
    let mb = mb.ok_or("say how much: /grow?mb=N")?;
    let mb: usize = mb
        .parse()
        .map_err(|_| format!("mb must be a whole number, not {mb:?}"))?;
    // Linear memory is 32-bit: 4 GiB is out of reach whatever the limit.
    mb.checked_mul(MIB)
        .filter(|&bytes| u32::try_from(bytes).is_ok())
        .ok_or_else(|| format!("{mb} MiB does not fit in a 32-bit linear memory"))
}

fn linear_memory_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) * 65536;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_request() {
        assert_eq!(requested_bytes(Some("8")), Ok(8 * MIB));
        assert_eq!(requested_bytes(Some("0")), Ok(0));
        assert!(requested_bytes(None).is_err());
        assert!(requested_bytes(Some("lots")).is_err());
        assert!(requested_bytes(Some("4096")).is_err());
    }
}
