//! Controllers of Services: their endpoints (EndpointSlices and the legacy
//! Endpoints) and the status of LoadBalancer Services and Ingresses.

pub mod endpoint_slice;
pub mod endpoints;
pub mod ingress_status;
pub mod service_endpoints;
pub mod service_load_balancer;
pub mod service_triggers;
