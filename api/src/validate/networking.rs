//! `networking.k8s.io/v1` Ingress and IngressClass, `discovery.k8s.io/v1`
//! EndpointSlice.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

use super::pod::validate_protocol;
use super::{Errors, child, index, invalid_each, names};
use crate::status::FieldError;

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];

/// Ingress: Kubernetes' `ValidateIngressSpec`.
pub(crate) fn validate_ingress(ing: &Ingress, errs: &mut Errors) {
    let default = Default::default();
    let spec = ing.spec.as_ref().unwrap_or(&default);
    let rules = spec.rules.as_deref().unwrap_or_default();
    if rules.is_empty() && spec.default_backend.is_none() {
        errs.push(FieldError::invalid(
            "spec",
            serde_json::Value::Array(Vec::new()),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = &spec.default_backend {
        validate_backend(backend, "spec.defaultBackend", errs);
    }
    if let Some(class) = spec.ingress_class_name.as_deref() {
        invalid_each(
            "spec.ingressClassName",
            class,
            names::is_dns1123_subdomain(class),
            errs,
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = index("spec.rules", i);
        if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
            validate_host(host, &child(&p, "host"), errs);
        }
        let Some(http) = &rule.http else { continue };
        let http_path = child(&p, "http");
        if http.paths.is_empty() {
            errs.push(FieldError::required(child(&http_path, "paths"), ""));
        }
        for (j, path) in http.paths.iter().enumerate() {
            let pp = index(&child(&http_path, "paths"), j);
            let text = path.path.as_deref().unwrap_or("");
            match path.path_type.as_str() {
                "" => errs.push(FieldError::required(
                    child(&pp, "pathType"),
                    "pathType must be specified",
                )),
                "Exact" | "Prefix" => {
                    if !text.starts_with('/') {
                        errs.push(FieldError::invalid(
                            child(&pp, "path"),
                            text,
                            "must be an absolute path",
                        ));
                    }
                    if text.contains("//") {
                        errs.push(FieldError::invalid(
                            child(&pp, "path"),
                            text,
                            "must not contain '//'",
                        ));
                    }
                }
                "ImplementationSpecific" => {
                    if !text.is_empty() && !text.starts_with('/') {
                        errs.push(FieldError::invalid(
                            child(&pp, "path"),
                            text,
                            "must be an absolute path",
                        ));
                    }
                }
                other => errs.push(FieldError::not_supported(
                    child(&pp, "pathType"),
                    other,
                    PATH_TYPES,
                )),
            }
            validate_backend(&path.backend, &child(&pp, "backend"), errs);
        }
    }
    for (i, tls) in spec.tls.iter().flatten().enumerate() {
        for (j, host) in tls.hosts.iter().flatten().enumerate() {
            validate_host(
                host,
                &index(&child(&index("spec.tls", i), "hosts"), j),
                errs,
            );
        }
    }
}

fn validate_host(host: &str, path: &str, errs: &mut Errors) {
    if host.parse::<IpAddr>().is_ok() {
        errs.push(FieldError::invalid(
            path,
            host,
            "must be a DNS name, not an IP address",
        ));
    }
    let msgs = if host.contains('*') {
        names::is_wildcard_dns1123_subdomain(host)
    } else {
        names::is_dns1123_subdomain(host)
    };
    invalid_each(path, host, msgs, errs);
}

/// Kubernetes' `validateIngressBackend`: a service (by name, with a port name
/// or number) or a resource, not both.
fn validate_backend(backend: &IngressBackend, path: &str, errs: &mut Errors) {
    match (&backend.service, &backend.resource) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (None, Some(resource)) => {
            if resource.kind.is_empty() {
                errs.push(FieldError::required(child(path, "resource.kind"), ""));
            }
            if resource.name.is_empty() {
                errs.push(FieldError::required(child(path, "resource.name"), ""));
            }
        }
        (Some(service), None) => {
            let name_path = child(path, "service.name");
            if service.name.is_empty() {
                errs.push(FieldError::required(name_path, ""));
            } else {
                invalid_each(
                    &name_path,
                    &service.name,
                    names::is_dns1035_label(&service.name),
                    errs,
                );
            }
            let port = service.port.clone().unwrap_or_default();
            let name = port.name.as_deref().unwrap_or("");
            let number = port.number.unwrap_or(0);
            match (name.is_empty(), number == 0) {
                (false, false) => errs.push(FieldError::invalid(
                    path,
                    "",
                    "cannot set both port name & port number",
                )),
                (false, true) => invalid_each(
                    &child(path, "service.port.name"),
                    name,
                    names::is_valid_port_name(name),
                    errs,
                ),
                (true, false) => {
                    for m in names::is_valid_port_num(i64::from(number)) {
                        errs.push(FieldError::invalid(
                            child(path, "service.port.number"),
                            number,
                            m,
                        ));
                    }
                }
                (true, true) => errs.push(FieldError::required(
                    path,
                    "port name or number is required",
                )),
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
    }
}

/// IngressClass: the controller is a domain-prefixed path (`example.com/ingress`).
pub(crate) fn validate_ingress_class(class: &IngressClass, errs: &mut Errors) {
    let controller = class
        .spec
        .as_ref()
        .and_then(|s| s.controller.as_deref())
        .unwrap_or("");
    let path = "spec.controller";
    if controller.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    if controller.len() > 250 {
        errs.push(FieldError::too_long(path, 250));
    }
    match controller.split_once('/') {
        Some((host, rest)) if !host.is_empty() && !rest.is_empty() => {
            for m in names::is_dns1123_subdomain(host) {
                errs.push(FieldError::invalid(path, host, m));
            }
            let ok = rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&b));
            if !ok {
                errs.push(FieldError::invalid(
                    path,
                    rest,
                    names::regex_error("Invalid path", "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+", &[]),
                ));
            }
        }
        _ => errs.push(FieldError::invalid(
            path,
            controller,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )),
    }
}

/// EndpointSlice: Kubernetes' `ValidateEndpointSlice`.
pub(crate) fn validate_endpoint_slice(slice: &EndpointSlice, errs: &mut Errors) {
    let address_type = slice.address_type.as_str();
    if address_type.is_empty() {
        errs.push(FieldError::required("addressType", ""));
    } else if !ADDRESS_TYPES.contains(&address_type) {
        errs.push(FieldError::not_supported(
            "addressType",
            address_type,
            ADDRESS_TYPES,
        ));
    }
    for (i, ep) in slice.endpoints.iter().enumerate() {
        let p = index("endpoints", i);
        let addresses_path = child(&p, "addresses");
        if ep.addresses.is_empty() {
            errs.push(FieldError::required(
                &addresses_path,
                "must contain at least 1 address",
            ));
        } else if ep.addresses.len() > 100 {
            errs.push(FieldError::invalid(
                &addresses_path,
                ep.addresses.len(),
                "must have at most 100 items",
            ));
        }
        for (j, address) in ep.addresses.iter().enumerate() {
            let ap = index(&addresses_path, j);
            match address_type {
                "IPv4" if address.parse::<Ipv4Addr>().is_err() => {
                    errs.push(FieldError::invalid(
                        ap,
                        address.as_str(),
                        "must be a valid IPv4 address",
                    ));
                }
                "IPv6" if address.parse::<Ipv6Addr>().is_err() => {
                    errs.push(FieldError::invalid(
                        ap,
                        address.as_str(),
                        "must be a valid IPv6 address",
                    ));
                }
                "FQDN" => {
                    let name = address.strip_suffix('.').unwrap_or(address);
                    let msgs = names::is_dns1123_subdomain(name);
                    if !msgs.is_empty() {
                        errs.push(FieldError::invalid(ap, name, msgs.join(",")));
                    } else if !name.contains('.') {
                        errs.push(FieldError::invalid(
                            ap,
                            name,
                            "should be a domain with at least two segments separated by dots",
                        ));
                    }
                }
                _ => {}
            }
        }
        if let Some(h) = ep.hostname.as_deref() {
            invalid_each(&child(&p, "hostname"), h, names::is_dns1123_label(h), errs);
        }
        if let Some(n) = ep.node_name.as_deref() {
            invalid_each(
                &child(&p, "nodeName"),
                n,
                names::is_dns1123_subdomain(n),
                errs,
            );
        }
    }
    let mut seen = BTreeSet::new();
    for (i, port) in slice.ports.iter().flatten().enumerate() {
        let p = index("ports", i);
        let name = port.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            invalid_each(
                &child(&p, "name"),
                name,
                names::is_dns1123_label(name),
                errs,
            );
        }
        if !seen.insert(name) {
            errs.push(FieldError::duplicate(child(&p, "name"), name));
        }
        if let Some(n) = port.port {
            for m in names::is_valid_port_num(i64::from(n)) {
                errs.push(FieldError::invalid(child(&p, "port"), n, m));
            }
        }
        validate_protocol(port.protocol.as_deref(), &child(&p, "protocol"), errs);
        if let Some(app) = port.app_protocol.as_deref() {
            invalid_each(
                &child(&p, "appProtocol"),
                app,
                names::is_qualified_name(app),
                errs,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn strings(errs: &Errors) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    fn ingress_errors(spec: Value) -> Vec<String> {
        let ing: Ingress =
            serde_json::from_value(json!({"metadata": {"name": "i"}, "spec": spec})).unwrap();
        let mut errs = Errors::new();
        validate_ingress(&ing, &mut errs);
        strings(&errs)
    }

    #[test]
    fn ingresses() {
        let good = json!({"rules": [{"host": "hello.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}],
            "tls": [{"hosts": ["*.example.com"], "secretName": "tls"}]});
        assert!(ingress_errors(good).is_empty());
        assert_eq!(
            ingress_errors(json!({})),
            ["spec: Invalid value: []: either `defaultBackend` or `rules` must be specified"]
        );
        assert_eq!(
            ingress_errors(json!({"rules": [{"host": "10.0.0.1", "http": {"paths": [
                {"path": "api", "pathType": "Exact", "backend": {"service": {"name": "web"}}},
                {"path": "/", "pathType": "Regex", "backend": {"service": {"name": "web", "port": {"name": "http", "number": 80}}}}]}}]})),
            [
                "spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
                "spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path",
                "spec.rules[0].http.paths[0].backend: Required value: port name or number is required",
                "spec.rules[0].http.paths[1].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
                "spec.rules[0].http.paths[1].backend: Invalid value: \"\": cannot set both port name & port number",
            ]
        );
    }

    #[test]
    fn endpoint_slices() {
        let slice: EndpointSlice = serde_json::from_value(json!({"metadata": {"name": "web-abc"}, "addressType": "IPv5",
            "endpoints": [{"addresses": []}], "ports": [{"name": "http", "port": 0}, {"name": "http", "port": 8080}]})).unwrap();
        let mut errs = Errors::new();
        validate_endpoint_slice(&slice, &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "addressType: Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
                "endpoints[0].addresses: Required value: must contain at least 1 address",
                "ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "ports[1].name: Duplicate value: \"http\"",
            ]
        );
        let slice: EndpointSlice = serde_json::from_value(json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.2.3"], "conditions": {"ready": true}}, {"addresses": ["fe80::1"]}]})).unwrap();
        let mut errs = Errors::new();
        validate_endpoint_slice(&slice, &mut errs);
        assert_eq!(
            strings(&errs),
            ["endpoints[1].addresses[0]: Invalid value: \"fe80::1\": must be a valid IPv4 address"]
        );
    }

    #[test]
    fn ingress_classes() {
        let class = |c: Value| -> IngressClass {
            serde_json::from_value(json!({"metadata": {"name": "c"}, "spec": c})).unwrap()
        };
        let mut errs = Errors::new();
        validate_ingress_class(
            &class(json!({"controller": "skiff.dev/ingress"})),
            &mut errs,
        );
        assert!(errs.is_empty());
        validate_ingress_class(&class(json!({"controller": "nginx"})), &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "spec.controller: Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")"
            ]
        );
    }
}
