//! `spinner`: a guest that never yields, to show a CPU limit preempts a
//! spinning instance instead of losing a core. `GET /spin` loops forever in a
//! busy loop the optimizer cannot remove, and never answers; the runtime has to
//! interrupt it (epoch deadline / request timeout). `GET /spin?ms=N` spins for
//! about N ms of wall time and then answers, for tests of a budget that is not
//! exceeded. Other paths answer `200` at once.

use std::hint::black_box;

use guest_http::{path_of, path_with_query, query_param, respond};
use wasip2::clocks::monotonic_clock;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

const TEXT: &str = "text/plain; charset=utf-8";

struct Spinner;

impl Guest for Spinner {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = path_with_query(&request);
        if path_of(&target) != "/spin" {
            return respond(
                out,
                200,
                TEXT,
                b"spinner is up; GET /spin to spin forever\n",
            );
        }
        match query_param(&target, "ms") {
            None => spin_forever(),
            Some(ms) => match ms.parse::<u64>() {
                Ok(ms) => {
                    let rounds = spin_for(ms);
                    respond(
                        out,
                        200,
                        TEXT,
                        format!("spun {ms} ms ({rounds} rounds)\n").as_bytes(),
                    );
                }
                Err(_) => respond(out, 400, TEXT, b"spinner: ms must be a whole number\n"),
            },
        }
    }
}

wasip2::http::proxy::export!(Spinner);

/// Never returns and never calls the host: only epoch interruption (or fuel)
/// can stop it. `black_box` makes every round observable, so the loop stays.
fn spin_forever() -> ! {
    let mut rounds: u64 = 0;
    loop {
        rounds = black_box(rounds.wrapping_add(1));
    }
}

fn spin_for(ms: u64) -> u64 {
    let deadline = monotonic_clock::now().saturating_add(ms.saturating_mul(1_000_000));
    let mut rounds: u64 = 0;
    while monotonic_clock::now() < deadline {
        // Work between clock reads, so most of the time is spent in the guest.
        for _ in 0..10_000 {
            rounds = black_box(rounds.wrapping_add(1));
        }
    }
    rounds
}
