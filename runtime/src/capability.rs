//! Host capabilities: what a pod may use of its host, one unit each, in
//! `capability/`. A capability acts at three moments:
//!
//! - [`link`](Capability::link), once per engine: it adds the host functions
//!   of the interfaces it provides to the engine's one linker;
//! - [`configure`](Capability::configure), once per pod, when the pod starts:
//!   it checks its part of the [`PodSpec`], so that a pod it cannot serve fails
//!   to start instead of failing in every instance;
//! - [`prepare`](Capability::prepare), once per instance: it adds its part of
//!   that instance's state (its WASI context, or a field of [`State`]).
//!
//! [`ALL`] lists them. A new capability is a file in `capability/` and a line
//! in [`ALL`]; if it takes something from the pod's spec, that is a field of
//! [`PodSpec`], and if it keeps state per instance, a field of [`State`].

use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;

use crate::error::Result;
use crate::host::{Host, PodSpec};
use crate::logs::LogBuffer;

pub(crate) mod cli;
pub(crate) mod config;
pub(crate) mod limits;
pub(crate) mod outbound_http;
pub(crate) mod volumes;

/// One thing a pod may use of its host, at the three moments of its life.
pub(crate) trait Capability: Sync {
    /// Once per engine: add the host functions of the interfaces this
    /// capability provides. No two capabilities may provide the same one.
    fn link(&self, _linker: &mut Linker<Host>) -> wasmtime::Result<()> {
        Ok(())
    }

    /// Once per pod, when it starts: check this capability's part of `spec`.
    fn configure(&self, _spec: &PodSpec) -> Result<()> {
        Ok(())
    }

    /// Once per instance: add this capability's part of the instance of `spec`.
    fn prepare(&self, spec: &PodSpec, instance: &mut Instance<'_>) -> Result<()>;
}

/// Every capability, in the order they act.
pub(crate) const ALL: &[&dyn Capability] = &[
    &cli::CliCapability,
    &volumes::VolumesCapability,
    &outbound_http::OutboundHttpCapability,
    &config::ConfigCapability,
    &limits::LimitsCapability,
];

/// One instance while its capabilities prepare it; then it becomes a [`Host`].
pub(crate) struct Instance<'a> {
    /// The pod's log, where the guest's stdout and stderr go.
    pub(crate) logs: &'a LogBuffer,
    /// The WASI context, which several capabilities fill in. It grants
    /// nothing no capability asked for: no sockets, no ambient filesystem, no
    /// inherited env or stdio.
    pub(crate) wasi: WasiCtxBuilder,
    /// What the capabilities keep for the instance.
    pub(crate) state: State,
}

/// The state capabilities keep per instance, one field each; it lives in the
/// instance's [`Host`]. The defaults grant nothing until a capability prepares it.
#[derive(Default)]
pub(crate) struct State {
    /// Where outbound HTTP requests go ([`outbound_http`]).
    pub(crate) outbound: outbound_http::OutboundHooks,
    /// The memory cap ([`limits`]).
    pub(crate) limiter: limits::MemoryLimiter,
    /// The `wasi:config` values ([`config`]).
    pub(crate) config: wasmtime_wasi_config::WasiConfigVariables,
}

/// Link every capability into `linker`.
pub(crate) fn link(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    ALL.iter().try_for_each(|c| c.link(linker))
}

/// Check `spec` with every capability, as the pod starts.
pub(crate) fn configure(spec: &PodSpec) -> Result<()> {
    ALL.iter().try_for_each(|c| c.configure(spec))
}

/// A new instance of `spec`, prepared by every capability.
pub(crate) fn prepare<'a>(spec: &PodSpec, logs: &'a LogBuffer) -> Result<Instance<'a>> {
    let mut instance = Instance {
        logs,
        wasi: WasiCtxBuilder::new(),
        state: State::default(),
    };
    for c in ALL {
        c.prepare(spec, &mut instance)?;
    }
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARGUMENTS: (&str, &str) = (
        "wasi:cli/environment@0.2.0",
        r#"(export "get-arguments" (func (result (list string))))"#,
    );
    const HTTP_FIELDS: (&str, &str) = (
        "wasi:http/types@0.2.0",
        r#"(export "fields" (type (sub resource)))"#,
    );

    /// Whether a component importing `exports` of `interface` links.
    fn links(linker: &Linker<Host>, (interface, exports): (&str, &str)) -> bool {
        let wat = format!(r#"(component (import "{interface}" (instance {exports})))"#);
        let bytes = wat::parse_str(&wat).unwrap_or_else(|e| panic!("{wat}: {e}"));
        let component = wasmtime::component::Component::new(linker.engine(), bytes)
            .unwrap_or_else(|e| panic!("{wat}: {e:#}"));
        linker.instantiate_pre(&component).is_ok()
    }

    fn linker_of(capabilities: &[&dyn Capability]) -> Linker<Host> {
        let mut linker = Linker::new(&wasmtime::Engine::default());
        for c in capabilities {
            c.link(&mut linker).expect("links");
        }
        linker
    }

    #[test]
    fn each_capability_links_its_own_interfaces() {
        let cli = linker_of(&[&cli::CliCapability]);
        assert!(links(&cli, ARGUMENTS));
        assert!(!links(&cli, HTTP_FIELDS));
        let http = linker_of(&[&outbound_http::OutboundHttpCapability]);
        assert!(links(&http, HTTP_FIELDS));
        assert!(!links(&http, ARGUMENTS));
    }

    #[test]
    fn all_capabilities_link_once_each() {
        let mut linker = Linker::new(&wasmtime::Engine::default());
        // The linker refuses a second definition of a name, so this also
        // checks that no two capabilities provide the same interface.
        link(&mut linker).expect("every capability links");
        assert!(links(&linker, ARGUMENTS));
        assert!(links(&linker, HTTP_FIELDS));
        // (A second definition is refused indeed.)
        assert!(cli::CliCapability.link(&mut linker).is_err());
        assert!(
            outbound_http::OutboundHttpCapability
                .link(&mut linker)
                .is_err()
        );
    }
}
