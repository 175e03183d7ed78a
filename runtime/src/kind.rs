//! Which kind of container a component is, read from its exports.

use std::fmt;

use wasmtime::component::Component;

use crate::error::{Result, RuntimeError};

/// The kind of container, from what the component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exports `wasi:http/incoming-handler@0.2.x`: an instance per request.
    Http,
    /// Exports `wasi:cli/run@0.2.x`: runs until it returns.
    Command,
}

impl Kind {
    /// `"http"` or `"command"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Command => "command",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const HTTP_EXPORT: &str = "wasi:http/incoming-handler@0.2.";
const RUN_EXPORT: &str = "wasi:cli/run@0.2.";

/// Refuse bytes that are not a component before handing them to the compiler, with
/// a message a user can act on.
pub(crate) fn check_is_component(bytes: &[u8]) -> Result<()> {
    if wasmparser::Parser::is_component(bytes) {
        Ok(())
    } else if wasmparser::Parser::is_core_wasm(bytes) {
        Err(RuntimeError::CoreModule)
    } else {
        Err(RuntimeError::NotWasm)
    }
}

/// The kind of `component`; HTTP wins if it exports both.
pub(crate) fn detect(engine: &wasmtime::Engine, component: &Component) -> Result<Kind> {
    let ty = component.component_type();
    let names: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    if names.iter().any(|n| n.starts_with(HTTP_EXPORT)) {
        Ok(Kind::Http)
    } else if names.iter().any(|n| n.starts_with(RUN_EXPORT)) {
        Ok(Kind::Command)
    } else {
        Err(RuntimeError::UnsupportedKind {
            exports: names.join(", "),
        })
    }
}
