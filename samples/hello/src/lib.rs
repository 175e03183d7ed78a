//! `hello`: the smallest HTTP pod. Every request gets `200` and a greeting that
//! names the pod it runs in, read from `POD_NAME` the way Kubernetes' downward
//! API provides it (`unknown` when unset), so a test or a user can see which
//! replica answered.

use guest_http::respond;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Hello;

impl Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let pod = std::env::var("POD_NAME").unwrap_or_default();
        respond(
            out,
            200,
            "text/plain; charset=utf-8",
            greeting(&pod).as_bytes(),
        );
    }
}

wasip2::http::proxy::export!(Hello);

fn greeting(pod: &str) -> String {
    let pod = if pod.is_empty() { "unknown" } else { pod };
    format!("Hello from {pod}!\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_pod_or_unknown() {
        assert_eq!(
            greeting("hello-7d9f-abcde"),
            "Hello from hello-7d9f-abcde!\n"
        );
        assert_eq!(greeting(""), "Hello from unknown!\n");
    }
}
