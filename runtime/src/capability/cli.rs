//! The cli capability: the pod's arguments, environment (with the downward
//! API), working directory, and stdout and stderr into its log. It also links
//! the rest of WASI 0.2's base (clocks, random, I/O, filesystem, sockets),
//! which wasmtime links as one set; what a pod gets of those is what its WASI
//! context grants, and that grants no filesystem but its volumes and no sockets.

use std::collections::HashMap;

use wasmtime::component::Linker;

use super::{Capability, Instance};
use crate::error::Result;
use crate::host::{Host, PodSpec};
use crate::logs::LogStream;

/// What a pod's program is started with.
#[derive(Debug, Clone, Default)]
pub struct Cli {
    /// Arguments after the program name (`command` + `args`).
    pub args: Vec<String>,
    /// Environment variables, in order; later entries win.
    pub env: Vec<(String, String)>,
    /// Working directory (`workingDir`), if any.
    pub working_dir: Option<String>,
}

pub(crate) struct CliCapability;

impl Capability for CliCapability {
    fn link(&self, linker: &mut Linker<Host>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)
    }

    fn prepare(&self, spec: &PodSpec, instance: &mut Instance<'_>) -> Result<()> {
        let b = &mut instance.wasi;
        // argv[0] is the program name, as a POSIX program expects.
        b.arg(&spec.name);
        b.args(&spec.cli.args);
        b.envs(&environment(spec));
        if let Some(cwd) = &spec.cli.working_dir {
            b.initial_cwd(cwd);
        }
        b.stdout(instance.logs.sink(LogStream::Stdout));
        b.stderr(instance.logs.sink(LogStream::Stderr));
        Ok(())
    }
}

/// The guest's environment: the downward API, then the pod's own variables,
/// each name once with its last value, as Kubernetes resolves a repeated
/// name. WASI hands a guest every entry it is given, and wasi-libc's `getenv`
/// (behind a Rust guest's `std::env::var`) takes the first of a name, so the
/// host picks the winner: else the downward API would hide the pod's own.
fn environment(spec: &PodSpec) -> Vec<(String, String)> {
    let downward = [
        ("POD_NAME", &spec.name),
        ("POD_NAMESPACE", &spec.namespace),
        ("POD_UID", &spec.uid),
    ];
    let all = downward
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .chain(spec.cli.env.iter().cloned());
    let mut env: Vec<(String, String)> = Vec::with_capacity(spec.cli.env.len() + 3);
    let mut at = HashMap::new();
    for (k, v) in all {
        match at.get(&k) {
            Some(&i) => env[i] = (k, v),
            None => {
                at.insert(k.clone(), env.len());
                env.push((k, v));
            }
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(env: &[(&str, &str)]) -> PodSpec {
        PodSpec {
            name: "p".into(),
            namespace: "ns".into(),
            uid: "u-1".into(),
            cli: Cli {
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Cli::default()
            },
            ..PodSpec::default()
        }
    }

    #[test]
    fn the_downward_api_comes_first() {
        let env = environment(&spec(&[("A", "1")]));
        assert_eq!(
            env,
            [
                ("POD_NAME".to_string(), "p".to_string()),
                ("POD_NAMESPACE".into(), "ns".into()),
                ("POD_UID".into(), "u-1".into()),
                ("A".into(), "1".into()),
            ]
        );
    }

    #[test]
    fn the_pod_overrides_the_downward_api_and_itself() {
        let env = environment(&spec(&[("POD_NAME", "mine"), ("A", "1"), ("A", "2")]));
        assert_eq!(
            env,
            [
                ("POD_NAME".to_string(), "mine".to_string()),
                ("POD_NAMESPACE".into(), "ns".into()),
                ("POD_UID".into(), "u-1".into()),
                ("A".into(), "2".into()),
            ]
        );
    }
}
