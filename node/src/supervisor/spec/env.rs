//! A container's environment, as the kubelet makes it
//! (`kubelet_pods.go`, `makeEnvironmentVariables`): first `envFrom` (each
//! ConfigMap's or Secret's keys, with the source's `prefix`), then `env` in
//! order, each value either literal with `$(VAR)` expanded against what is
//! defined so far, or from the downward API (`fieldRef`, `resourceFieldRef`)
//! or a key of a ConfigMap or Secret. A later definition of a name replaces
//! the earlier one where it stood. A missing object or key that is not
//! `optional` is an error in the kubelet's words, and the container waits.

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, ResourceFieldSelector};
use skiff_api::quantity::Quantity;

use super::{ConfigError, Result, SpecInputs};
use crate::supervisor::Allocatable;

/// The environment, in order, each name once.
pub(super) fn environment(inputs: &SpecInputs<'_>) -> Result<Vec<(String, String)>> {
    let c = inputs.container;
    let namespace = inputs.pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut env = Env::default();
    for source in c.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        if let Some(r) = &source.config_map_ref {
            let optional = r.optional.unwrap_or(false);
            let cm = match inputs.objects.config_map(namespace, &r.name) {
                Ok(cm) => cm,
                Err(_) if optional => continue,
                Err(e) => return Err(ConfigError::Config(e.to_string())),
            };
            for (k, v) in cm.data.iter().flatten() {
                env.set(format!("{prefix}{k}"), v.clone());
            }
        }
        if let Some(r) = &source.secret_ref {
            let optional = r.optional.unwrap_or(false);
            let secret = match inputs.objects.secret(namespace, &r.name) {
                Ok(s) => s,
                Err(_) if optional => continue,
                Err(e) => return Err(ConfigError::Config(e.to_string())),
            };
            for (k, v) in secret.data.iter().flatten() {
                env.set(format!("{prefix}{k}"), secret_text(&r.name, k, &v.0)?);
            }
        }
    }
    for var in c.env.iter().flatten() {
        if let Some(value) = value(inputs, namespace, var, &env)? {
            env.set(var.name.clone(), value);
        }
    }
    Ok(env.0)
}

/// The ordered environment being built.
#[derive(Default)]
struct Env(Vec<(String, String)>);

impl Env {
    fn set(&mut self, name: String, value: String) {
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// The value of one `env` entry; `None` when an optional source is missing
/// (the variable is then not set at all, as in Kubernetes).
fn value(
    inputs: &SpecInputs<'_>,
    namespace: &str,
    var: &EnvVar,
    earlier: &Env,
) -> Result<Option<String>> {
    let literal = var.value.as_deref().unwrap_or_default();
    let source = match &var.value_from {
        Some(source) if literal.is_empty() => source,
        _ => return Ok(Some(expand(literal, &|name| earlier.get(name)))),
    };
    if let Some(field) = &source.field_ref {
        return field_value(inputs, &field.field_path)
            .map(Some)
            .ok_or_else(|| {
                ConfigError::Config(format!(
                    "env {:?}: unsupported fieldRef.fieldPath {:?}",
                    var.name, field.field_path
                ))
            });
    }
    if let Some(selector) = &source.resource_field_ref {
        return resource_value(
            inputs.pod,
            Some(inputs.container),
            inputs.allocatable,
            selector,
        )
        .map(Some)
        .map_err(|e| ConfigError::Config(format!("env {:?}: {e}", var.name)));
    }
    if let Some(r) = &source.config_map_key_ref {
        let optional = r.optional.unwrap_or(false);
        let cm = match inputs.objects.config_map(namespace, &r.name) {
            Ok(cm) => cm,
            Err(_) if optional => return Ok(None),
            Err(e) => return Err(ConfigError::Config(e.to_string())),
        };
        return match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(ConfigError::Config(format!(
                "couldn't find key {} in ConfigMap {namespace}/{}",
                r.key, r.name
            ))),
        };
    }
    if let Some(r) = &source.secret_key_ref {
        let optional = r.optional.unwrap_or(false);
        let secret = match inputs.objects.secret(namespace, &r.name) {
            Ok(s) => s,
            Err(_) if optional => return Ok(None),
            Err(e) => return Err(ConfigError::Config(e.to_string())),
        };
        return match secret.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => secret_text(&r.name, &r.key, &v.0).map(Some),
            None if optional => Ok(None),
            None => Err(ConfigError::Config(format!(
                "couldn't find key {} in Secret {namespace}/{}",
                r.key, r.name
            ))),
        };
    }
    Ok(Some(String::new()))
}

/// A Secret's value as an environment variable: WASI's environment is text,
/// so bytes that are not UTF-8 are refused rather than changed.
fn secret_text(secret: &str, key: &str, bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        ConfigError::Config(format!(
            "key {key} in Secret {secret} is not UTF-8 text: a WASI environment variable must be; mount it as a file instead"
        ))
    })
}

/// The downward API: the value of `path` in the pod, as Kubernetes resolves
/// it for an environment variable (`podFieldSelectorRuntimeValue`).
pub(super) fn field_value(inputs: &SpecInputs<'_>, path: &str) -> Option<String> {
    let pod = inputs.pod;
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| subscript(path, prefix);
    if let Some(key) = subscript("metadata.labels[") {
        return Some(
            meta.labels
                .as_ref()
                .and_then(|l| l.get(&key))
                .cloned()
                .unwrap_or_default(),
        );
    }
    if let Some(key) = subscript("metadata.annotations[") {
        return Some(
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(&key))
                .cloned()
                .unwrap_or_default(),
        );
    }
    let ip = |ip: Option<std::net::IpAddr>| ip.map(|ip| ip.to_string()).unwrap_or_default();
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| inputs.node_name.to_string()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        // One address of each family at most: the list is the address.
        "status.podIP" | "status.podIPs" => ip(inputs.pod_ip),
        "status.hostIP" | "status.hostIPs" => ip(inputs.host_ip),
        _ => return None,
    })
}

/// The key of a downward API subscript: `metadata.labels['key']` (or with
/// double quotes) -> `key`, for `prefix` `metadata.labels[`.
pub(in crate::supervisor) fn subscript(path: &str, prefix: &str) -> Option<String> {
    let key = path.strip_prefix(prefix)?.strip_suffix(']')?;
    let key = key
        .strip_prefix('\'')
        .and_then(|k| k.strip_suffix('\''))
        .or_else(|| key.strip_prefix('"').and_then(|k| k.strip_suffix('"')))?;
    Some(key.to_string())
}

/// `resourceFieldRef`: a limit or request of the container (or of the one
/// named by `containerName`), divided by `divisor` and rounded up, as
/// `ExtractContainerResourceValue` computes it. A limit the container does not
/// set is the node's allocatable amount (`defaultPodLimitsForDownwardAPI`); a
/// request it does not set is 0.
/// `container` is the one an environment variable belongs to; a volume's
/// file has none and must name one.
pub(in crate::supervisor) fn resource_value(
    pod: &Pod,
    container: Option<&Container>,
    allocatable: &Allocatable,
    selector: &ResourceFieldSelector,
) -> std::result::Result<String, String> {
    let container = match (
        selector.container_name.as_deref().filter(|n| !n.is_empty()),
        container,
    ) {
        (None, Some(container)) => container,
        (None, None) => return Err("resourceFieldRef: containerName is required".into()),
        (Some(name), _) => pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
            .find(|c| c.name == name)
            .ok_or_else(|| format!("resourceFieldRef: no container named {name:?}"))?,
    };
    let divisor = match selector.divisor.as_ref() {
        Some(d) => Quantity::parse(&d.0).map_err(|e| format!("divisor {:?}: {e}", d.0))?,
        None => Quantity::parse("1").map_err(|e| e.to_string())?,
    };
    let (set, resource) = match selector.resource.split_once('.') {
        Some((set @ ("limits" | "requests"), resource)) => (set, resource),
        _ => {
            return Err(format!(
                "unsupported container resource : {}",
                selector.resource
            ));
        }
    };
    let resources = container.resources.as_ref();
    let given = match set {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        _ => resources.and_then(|r| r.requests.as_ref()),
    }
    .and_then(|m| m.get(resource));
    let amount = match given {
        Some(q) => Quantity::parse(&q.0).map_err(|e| format!("{set}.{resource} {:?}: {e}", q.0))?,
        None => Quantity::parse("0").map_err(|e| e.to_string())?,
    };
    let ceil_div = |n: i128, d: i128| -> std::result::Result<String, String> {
        if d <= 0 {
            return Err(format!("divisor {divisor:?} must be positive"));
        }
        Ok((n.div_euclid(d) + i128::from(n.rem_euclid(d) != 0)).to_string())
    };
    match resource {
        "cpu" => {
            let millis = match given {
                None if set == "limits" => i128::from(allocatable.cpu_millis),
                _ => i128::from(amount.milli_value()),
            };
            ceil_div(millis, i128::from(divisor.milli_value()))
        }
        "memory" | "ephemeral-storage" => {
            let bytes = match (given, resource) {
                (None, "memory") if set == "limits" => i128::from(allocatable.memory_bytes),
                (None, _) if set == "limits" => i128::from(allocatable.ephemeral_storage_bytes),
                _ => i128::from(amount.value()),
            };
            ceil_div(bytes, i128::from(divisor.value()))
        }
        r if r.starts_with("hugepages-") => {
            ceil_div(i128::from(amount.value()), i128::from(divisor.value()))
        }
        _ => Err(format!(
            "unsupported container resource : {}",
            selector.resource
        )),
    }
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an undefined
/// reference is left as written, and `$$` is a literal `$`.
pub(super) fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(') {
            match r.find(')') {
                Some(end) => {
                    let name = &r[..end];
                    match lookup(name) {
                        Some(v) if !name.is_empty() => out.push_str(&v),
                        _ => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &r[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    out.push_str(r);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}
