//! Service cluster IPs and node ports, allocated when a Service is written.
//!
//! Free values are found by scanning the Services in the store plus the values
//! this process handed out recently (so two concurrent creates cannot pick the
//! same one before either is committed).

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::resource::{ResourceType, by_kind};
use skiff_api::status::{ApiError, FieldError};

use super::{Registry, Result};

/// The service CIDR, as Kubernetes' default: 10.96.0.0/12.
const SERVICE_NET: u32 = u32::from_be_bytes([10, 96, 0, 0]);
const SERVICE_NET_SIZE: u32 = 1 << 20;
/// The first addresses are kept for well-known Services (`kubernetes` is .1, DNS .10).
const FIRST_HOST: u32 = 16;

/// The NodePort range.
pub const NODE_PORT_MIN: u16 = 30000;
pub const NODE_PORT_MAX: u16 = 32767;

/// Values handed out by this process and not yet seen in the store.
pub struct Reserved {
    ips: HashSet<u32>,
    ports: HashSet<u16>,
    next_ip: u32,
    next_port: u16,
}

impl Default for Reserved {
    fn default() -> Self {
        Reserved {
            ips: HashSet::new(),
            ports: HashSet::new(),
            next_ip: 0,
            // NodePorts are handed out from a random place in the range, as
            // Kubernetes does, so that clusters sharing a host address (tests,
            // several `skiff up`s) seldom want the same port.
            next_port: rand::random_range(0..NODE_PORT_MAX - NODE_PORT_MIN + 1),
        }
    }
}

/// Allocates what a Service needs; a no-op for other kinds.
pub fn allocate(
    registry: &Registry,
    rt: &ResourceType,
    old: Option<&Value>,
    obj: &mut Value,
) -> Result<()> {
    if rt.kind != "Service" || !rt.group.is_empty() {
        return Ok(());
    }
    let name = skiff_api::meta::name(obj).unwrap_or_default().to_string();
    let uid = skiff_api::meta::uid(obj).unwrap_or_default().to_string();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty == "ExternalName" {
        return Ok(());
    }
    let (used_ips, used_ports) = in_use(registry, &uid)?;
    let mut reserved = registry
        .reserved
        .lock()
        .map_err(|_| ApiError::internal("allocator lock poisoned"))?;

    // Cluster IP: keep the old one, take the requested one if free, or pick one.
    let old_ip = old
        .and_then(|o| o.at("/spec/clusterIP"))
        .and_then(Value::as_str);
    let requested = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let ip = match (requested, old_ip) {
        (None, Some(old)) => old.to_string(),
        (Some(ip), Some(old)) if ip == old => ip,
        (Some(ip), _) if ip == "None" => ip,
        (Some(ip), _) => {
            let parsed: Ipv4Addr = ip.parse().map_err(|_| {
                invalid(
                    &name,
                    FieldError::invalid(
                        "spec.clusterIP",
                        ip.clone(),
                        "must be a valid IP address, (e.g. 10.9.8.7)",
                    ),
                )
            })?;
            let n = u32::from(parsed);
            if !(SERVICE_NET..SERVICE_NET + SERVICE_NET_SIZE).contains(&n) {
                return Err(invalid(
                    &name,
                    FieldError::invalid(
                        "spec.clusterIPs",
                        ip.clone(),
                        "failed to allocate IP: the provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12",
                    ),
                ));
            }
            if used_ips.contains(&n) || reserved.ips.contains(&n) {
                return Err(invalid(
                    &name,
                    FieldError::invalid(
                        "spec.clusterIPs",
                        ip.clone(),
                        "failed to allocate IP: provided IP is already allocated",
                    ),
                ));
            }
            reserved.ips.insert(n);
            ip
        }
        (None, None) => {
            let n = pick_ip(&mut reserved, &used_ips).ok_or_else(|| {
                ApiError::internal("failed to allocate a service IP: the range is full")
            })?;
            Ipv4Addr::from(n).to_string()
        }
    };
    spec.insert("clusterIP".into(), json!(ip));
    spec.insert("clusterIPs".into(), json!([ip]));

    // Node ports for NodePort and LoadBalancer Services.
    let wants_node_ports = ty == "NodePort" || ty == "LoadBalancer";
    let old_ports: Vec<(i64, String, i64)> = old
        .and_then(|o| o.at("/spec/ports"))
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| {
                    Some((
                        p.get("port")?.as_i64()?,
                        p.get("protocol")
                            .and_then(Value::as_str)
                            .unwrap_or("TCP")
                            .to_string(),
                        p.get("nodePort")?.as_i64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for (i, port) in ports.iter_mut().enumerate() {
            let Some(port) = port.as_object_mut() else {
                continue;
            };
            if !wants_node_ports {
                port.remove("nodePort");
                continue;
            }
            let requested = port
                .get("nodePort")
                .and_then(Value::as_i64)
                .filter(|p| *p != 0);
            let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
            let protocol = port
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_string();
            let kept = old_ports
                .iter()
                .find(|(p, proto, _)| *p == number && *proto == protocol)
                .map(|(_, _, n)| *n);
            let node_port = match (requested, kept) {
                (None, Some(kept)) => kept,
                (Some(r), Some(kept)) if r == kept => r,
                (Some(r), _) => {
                    let field = format!("spec.ports[{i}].nodePort");
                    let r16 = u16::try_from(r)
                        .ok()
                        .filter(|p| (NODE_PORT_MIN..=NODE_PORT_MAX).contains(p));
                    let Some(r16) = r16 else {
                        return Err(invalid(
                            &name,
                            FieldError::invalid(
                                field,
                                r,
                                "provided port is not in the valid range. The range of valid ports is 30000-32767",
                            ),
                        ));
                    };
                    if used_ports.contains(&r16) || reserved.ports.contains(&r16) {
                        return Err(invalid(
                            &name,
                            FieldError::invalid(field, r, "provided port is already allocated"),
                        ));
                    }
                    reserved.ports.insert(r16);
                    r
                }
                (None, None) => {
                    i64::from(pick_port(&mut reserved, &used_ports).ok_or_else(|| {
                        ApiError::internal("failed to allocate a node port: the range is full")
                    })?)
                }
            };
            port.insert("nodePort".into(), json!(node_port));
        }
    }
    Ok(())
}

/// Cluster IPs and node ports of every Service but the one with `uid`.
fn in_use(registry: &Registry, uid: &str) -> Result<(HashSet<u32>, HashSet<u16>)> {
    let Some(svc) = by_kind("v1", "Service") else {
        return Ok(Default::default());
    };
    let page = registry.list(svc, None, None, None, &|_| true)?;
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for item in page.items {
        if skiff_api::meta::uid(&item) == Some(uid) {
            continue;
        }
        if let Some(ip) = item
            .at("/spec/clusterIP")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
        {
            ips.insert(u32::from(ip));
        }
        for port in item
            .at("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(p) = port
                .get("nodePort")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
            {
                ports.insert(p);
            }
        }
    }
    Ok((ips, ports))
}

fn pick_ip(reserved: &mut Reserved, used: &HashSet<u32>) -> Option<u32> {
    for _ in 0..SERVICE_NET_SIZE {
        reserved.next_ip = (reserved.next_ip + 1) % (SERVICE_NET_SIZE - FIRST_HOST - 1);
        let n = SERVICE_NET + FIRST_HOST + reserved.next_ip;
        if !used.contains(&n) && !reserved.ips.contains(&n) {
            reserved.ips.insert(n);
            return Some(n);
        }
    }
    None
}

fn pick_port(reserved: &mut Reserved, used: &HashSet<u16>) -> Option<u16> {
    let span = NODE_PORT_MAX - NODE_PORT_MIN + 1;
    for _ in 0..span {
        reserved.next_port = (reserved.next_port + 1) % span;
        let p = NODE_PORT_MIN + reserved.next_port;
        if !used.contains(&p) && !reserved.ports.contains(&p) {
            reserved.ports.insert(p);
            return Some(p);
        }
    }
    None
}

fn invalid(name: &str, cause: FieldError) -> ApiError {
    match by_kind("v1", "Service") {
        Some(svc) => ApiError::invalid(svc, name, vec![cause]),
        None => ApiError::bad_request(cause.to_string()),
    }
}

/// A lock-guarded [`Reserved`].
pub type ReservedLock = Mutex<Reserved>;
