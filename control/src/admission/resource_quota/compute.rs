//! What a ResourceQuota counts, and whether a create fits under it: the usage
//! of one object (Kubernetes' quota evaluators, `pkg/quota/v1/evaluator/core`),
//! the pod constraints, and the admission check with its messages
//! (`plugin/pkg/admission/resourcequota/controller.go`). Pure: the admission
//! and the quota controller both decide here.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::{RESOURCES, ResourceType};

use crate::admission::resources::{
    ResourceList, add_lists, compare, exceeding, list_at, mask, pod_total, pretty,
};

/// Resources every container must state when a quota constrains them
/// (the pod evaluator's "backward compatibility requirement").
const POD_VALIDATION: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Compute resources a pod is charged for, besides its counts.
const POD_COMPUTE: [&str; 6] = POD_VALIDATION;

/// The outcome of checking one create against one quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The quota constrains nothing this object uses.
    Untouched,
    /// Allowed: the quota's `status.used` after the create.
    Charge(ResourceList),
    /// Refused, with Kubernetes' reason (after `<resource> "<name>" is forbidden: `).
    Refused(String),
}

/// The quota's view of one ResourceQuota object.
#[derive(Debug, Clone, Default)]
pub struct Quota {
    pub name: String,
    pub hard: ResourceList,
    pub used: ResourceList,
    /// `spec.scopes` and `spec.scopeSelector`'s expressions.
    pub scopes: Vec<Scope>,
}

/// One scope a quota selects objects by: an entry of `spec.scopes` (operator
/// `Exists`) or of `spec.scopeSelector.matchExpressions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub name: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    pub values: Vec<String>,
}

impl Scope {
    /// A scope listed in `spec.scopes`.
    pub fn exists(name: &str) -> Scope {
        Scope {
            name: name.to_string(),
            operator: "Exists".to_string(),
            values: Vec::new(),
        }
    }
}

impl Quota {
    /// Reads `status.hard` and `status.used` (what admission enforces: the
    /// controller copies `spec.hard` there once it has counted).
    pub fn from_status(obj: &Value) -> Quota {
        Quota {
            name: meta::name(obj).unwrap_or_default().to_string(),
            hard: list_at(obj, "/status/hard"),
            used: list_at(obj, "/status/used"),
            scopes: scopes(obj),
        }
    }
}

/// `count/<resource>` (core) or `count/<resource>.<group>`.
pub fn object_count_name(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        format!("count/{}", rt.plural)
    } else {
        format!("count/{}.{}", rt.plural, rt.group)
    }
}

/// The resource names before `count/` existed, for the kinds that have one.
fn legacy_count_name(rt: &ResourceType) -> Option<&'static str> {
    if !rt.group.is_empty() {
        return None;
    }
    Some(match rt.plural {
        "pods" => "pods",
        "services" => "services",
        "configmaps" => "configmaps",
        "secrets" => "secrets",
        "persistentvolumeclaims" => "persistentvolumeclaims",
        "replicationcontrollers" => "replicationcontrollers",
        "resourcequotas" => "resourcequotas",
        _ => return None,
    })
}

fn is(rt: &ResourceType, plural: &str) -> bool {
    rt.group.is_empty() && rt.plural == plural
}

/// Whether a quota resource name is one that objects of `rt` are charged for
/// (`MatchingResources` of its evaluator).
pub fn charges(rt: &ResourceType, resource: &str) -> bool {
    if resource == object_count_name(rt) || Some(resource) == legacy_count_name(rt) {
        return true;
    }
    if is(rt, "pods") {
        return POD_COMPUTE.contains(&resource);
    }
    if is(rt, "services") {
        return matches!(resource, "services.nodeports" | "services.loadbalancers");
    }
    if is(rt, "persistentvolumeclaims") {
        return resource == "requests.storage";
    }
    false
}

/// The namespaced kinds a quota with these resources counts.
pub fn kinds_for(hard: &ResourceList) -> Vec<&'static ResourceType> {
    RESOURCES
        .iter()
        .filter(|rt| rt.namespaced && hard.keys().any(|r| charges(rt, r)))
        .collect()
}

/// `QuotaV1Pod`: a pod that has ended, or that is stuck terminating past its
/// grace period (its node lost, say), is not charged.
pub fn pod_counts(pod: &Value, now: Timestamp) -> bool {
    if matches!(
        pod.at("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    let deleted = meta::deletion_timestamp(pod).and_then(|t| t.parse::<Timestamp>().ok());
    let grace = pod
        .at("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    if let (Some(deleted), Some(grace)) = (deleted, grace) {
        let ends = deleted.checked_add(jiff::SignedDuration::from_secs(grace));
        if ends.is_ok_and(|ends| now > ends) {
            return false;
        }
    }
    true
}

/// What one object adds to a quota's usage (its evaluator's `Usage`).
pub fn usage(rt: &ResourceType, obj: &Value) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert(object_count_name(rt), "1".into());
    if let Some(legacy) = legacy_count_name(rt) {
        out.insert(legacy.into(), "1".into());
    }
    if is(rt, "pods") {
        let requests = pod_total(obj, "requests");
        let limits = pod_total(obj, "limits");
        for r in ["cpu", "memory"] {
            if let Some(v) = requests.get(r) {
                out.insert(r.into(), v.clone());
                out.insert(format!("requests.{r}"), v.clone());
            }
            if let Some(v) = limits.get(r) {
                out.insert(format!("limits.{r}"), v.clone());
            }
        }
    } else if is(rt, "services") {
        let ports = obj
            .at("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        match obj.at("/spec/type").and_then(Value::as_str) {
            Some("NodePort") => {
                out.insert("services.nodeports".into(), ports.to_string());
            }
            Some("LoadBalancer") => {
                let allocate = obj
                    .at("/spec/allocateLoadBalancerNodePorts")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let node_ports = if allocate {
                    ports
                } else {
                    obj.at("/spec/ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|p| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0)
                        .count()
                };
                out.insert("services.nodeports".into(), node_ports.to_string());
                out.insert("services.loadbalancers".into(), "1".into());
            }
            _ => {}
        }
    } else if is(rt, "persistentvolumeclaims")
        && let Some(storage) = list_at(obj, "/spec/resources/requests").get("storage")
    {
        out.insert("requests.storage".into(), storage.clone());
    }
    out
}

/// `spec.scopes` and the expressions of `spec.scopeSelector`.
fn scopes(quota: &Value) -> Vec<Scope> {
    let listed = quota
        .at("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(Scope::exists);
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let selected = quota
        .at("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(Scope {
                name: e.get("scopeName")?.as_str()?.to_string(),
                operator: e.get("operator")?.as_str()?.to_string(),
                values: strings(e.get("values")),
            })
        });
    listed.chain(selected).collect()
}

/// Whether a quota with `scopes` covers `obj` (`Matches`): scoped quotas
/// cover only pods, and only those every scope selects
/// (`podMatchesScopeFunc`).
pub fn in_scope(scopes: &[Scope], rt: &ResourceType, obj: &Value) -> bool {
    if scopes.is_empty() {
        return true;
    }
    if !is(rt, "pods") {
        return false;
    }
    let terminating = obj
        .at("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0);
    let best_effort = skiff_api::defaults::qos_class(obj) == "BestEffort";
    scopes.iter().all(|s| match s.name.as_str() {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort,
        "NotBestEffort" => !best_effort,
        "PriorityClass" => priority_class_matches(s, obj),
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(obj),
        _ => false,
    })
}

/// The PriorityClass scope: `Exists` selects pods that name a class; the
/// other operators are a label selector over `{PriorityClass: <name>}`,
/// where the key is always present (an unnamed class is `""`).
fn priority_class_matches(scope: &Scope, pod: &Value) -> bool {
    let class = pod
        .at("/spec/priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let listed = scope.values.iter().any(|v| v == class);
    match scope.operator.as_str() {
        "Exists" => !class.is_empty(),
        "In" => listed,
        "NotIn" => !listed,
        _ => false,
    }
}

/// Whether any pod (anti-)affinity term of `pod` looks beyond its own
/// namespace (`namespaces` or a `namespaceSelector`).
fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    let crosses = |term: &Value| {
        term.get("namespaceSelector").is_some_and(|s| !s.is_null())
            || term
                .get("namespaces")
                .and_then(Value::as_array)
                .is_some_and(|n| !n.is_empty())
    };
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let affinity = pod.at(&format!("/spec/affinity/{kind}"));
        let required = affinity
            .and_then(|a| a.get("requiredDuringSchedulingIgnoredDuringExecution"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let preferred = affinity
            .and_then(|a| a.get("preferredDuringSchedulingIgnoredDuringExecution"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|w| w.get("podAffinityTerm"));
        required.chain(preferred).any(crosses)
    })
}

/// What a pod leaves unstated that a quota constrains: each resource with the
/// containers that do not state it, worded as Kubernetes words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must specify {}", missing_list(.0))]
pub struct Unspecified(pub BTreeMap<String, BTreeSet<String>>);

/// `limits.cpu for: a,b; requests.memory for: b`.
fn missing_list(missing: &BTreeMap<String, BTreeSet<String>>) -> String {
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            format!(
                "{r} for: {}",
                names.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    parts.join("; ")
}

/// The pod evaluator's `Constraints`: when a quota constrains cpu or memory,
/// every container must request (or limit) it. `Err` names what is missing
/// from which containers.
pub fn pod_constraints(required: &BTreeSet<&str>, pod: &Value) -> Result<(), Unspecified> {
    let required: BTreeSet<&str> = required
        .iter()
        .copied()
        .filter(|r| POD_VALIDATION.contains(r))
        .collect();
    if required.is_empty() {
        return Ok(());
    }
    let mut missing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for list in ["containers", "initContainers"] {
        for c in pod
            .at(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let requests = list_at(c, "/resources/requests");
            let limits = list_at(c, "/resources/limits");
            let mut has = BTreeSet::new();
            for r in ["cpu", "memory"] {
                if requests.contains_key(r) {
                    has.insert(r.to_string());
                    has.insert(format!("requests.{r}"));
                }
                if limits.contains_key(r) {
                    has.insert(format!("limits.{r}"));
                }
            }
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            for r in &required {
                if !has.contains(*r) {
                    missing
                        .entry(r.to_string())
                        .or_default()
                        .insert(name.to_string());
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Unspecified(missing))
}

/// Whether Kubernetes' quota evaluator for `rt` checks updates as well as
/// creates: a Service can take node ports or a load balancer, a claim can
/// grow. (A pod's only on its `resize` subresource, which Skiff has not; the
/// object counts only on create.)
pub fn checks_updates(rt: &ResourceType) -> bool {
    is(rt, "services") || is(rt, "persistentvolumeclaims")
}

/// What a write adds to a quota's usage: all of `new`'s usage on a create,
/// what `new` uses beyond `old` on an update; zeros left out.
pub fn delta(rt: &ResourceType, old: Option<&Value>, new: &Value) -> ResourceList {
    let used = usage(rt, new);
    match old {
        Some(old) => exceeding(&used, &usage(rt, old)),
        None => exceeding(&used, &ResourceList::new()),
    }
}

/// Checks a write of `obj` (of kind `rt`) that adds `delta` ([`delta`])
/// against `quota`, as the quota admission's `checkRequest` does for one
/// quota.
pub fn check(quota: &Quota, rt: &ResourceType, obj: &Value, delta: &ResourceList) -> Check {
    if !in_scope(&quota.scopes, rt, obj) {
        return Check::Untouched;
    }
    let restricted: BTreeSet<&str> = quota
        .hard
        .keys()
        .map(String::as_str)
        .filter(|r| charges(rt, r))
        .collect();
    if restricted.is_empty() {
        return Check::Untouched;
    }
    if is(rt, "pods")
        && let Err(e) = pod_constraints(&restricted, obj)
    {
        return Check::Refused(format!("failed quota: {}: {e}", quota.name));
    }
    if restricted.iter().any(|r| !quota.used.contains_key(*r)) {
        return Check::Refused(format!(
            "status unknown for quota: {}, resources: {}",
            quota.name,
            restricted.iter().copied().collect::<Vec<_>>().join(",")
        ));
    }
    let requested = mask(delta, quota.hard.keys());
    if requested.is_empty() {
        return Check::Untouched;
    }
    let new_used = add_lists(&quota.used, &requested);
    let exceeded: Vec<String> = requested
        .keys()
        .filter(|r| {
            let (Some(used), Some(hard)) = (new_used.get(*r), quota.hard.get(*r)) else {
                return false;
            };
            compare(used, hard) == Some(Ordering::Greater)
        })
        .cloned()
        .collect();
    if !exceeded.is_empty() {
        return Check::Refused(format!(
            "exceeded quota: {}, requested: {}, used: {}, limited: {}",
            quota.name,
            pretty(&mask(&requested, &exceeded)),
            pretty(&mask(&quota.used, &exceeded)),
            pretty(&mask(&quota.hard, &exceeded)),
        ));
    }
    Check::Charge(new_used)
}

/// `status.used` of a quota over the objects of its namespace: every
/// resource of `hard` that an evaluator counts, zero when nothing uses it
/// (as the quota controller's `CalculateUsage`). `objects` holds the
/// namespace's objects of [`kinds_for`]`(hard)`.
pub fn namespace_usage<'a>(
    hard: &ResourceList,
    scopes: &[Scope],
    objects: impl IntoIterator<Item = (&'a ResourceType, &'a Value)>,
    now: Timestamp,
) -> ResourceList {
    let mut used: ResourceList = RESOURCES
        .iter()
        .flat_map(|rt| hard.keys().filter(move |r| rt.namespaced && charges(rt, r)))
        .map(|r| (r.clone(), "0".to_string()))
        .collect();
    for (rt, obj) in objects {
        if is(rt, "pods") && !pod_counts(obj, now) {
            continue;
        }
        if !in_scope(scopes, rt, obj) {
            continue;
        }
        used = add_lists(&used, &mask(&usage(rt, obj), hard.keys()));
    }
    used
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use skiff_api::resource::by_kind;

    use super::*;

    /// The check of a create.
    fn create(quota: &Quota, rt: &ResourceType, obj: &Value) -> Check {
        check(quota, rt, obj, &delta(rt, None, obj))
    }

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pods() -> &'static ResourceType {
        by_kind("v1", "Pod").unwrap()
    }

    fn pod(name: &str, requests: Value, limits: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": {"containers": [
            {"name": "app", "resources": {"requests": requests, "limits": limits}}]}})
    }

    #[test]
    fn a_third_pod_exceeds_a_quota_of_two_with_kubernetes_words() {
        let quota = Quota {
            name: "q".into(),
            hard: list(&[("pods", "2")]),
            used: list(&[("pods", "2")]),
            scopes: vec![],
        };
        let p = pod("x", json!({}), json!({}));
        assert_eq!(
            create(&quota, pods(), &p),
            Check::Refused(
                "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2".into()
            )
        );
        let quota = Quota {
            used: list(&[("pods", "1")]),
            ..quota
        };
        assert_eq!(
            create(&quota, pods(), &p),
            Check::Charge(list(&[("pods", "2")]))
        );
    }

    #[test]
    fn only_the_exceeded_resources_are_named_and_sums_are_canonical() {
        let quota = Quota {
            name: "compute".into(),
            hard: list(&[
                ("pods", "10"),
                ("requests.memory", "1Gi"),
                ("requests.cpu", "1"),
            ]),
            used: list(&[
                ("pods", "1"),
                ("requests.memory", "960Mi"),
                ("requests.cpu", "0"),
            ]),
            scopes: vec![],
        };
        let p = pod("x", json!({"cpu": "100m", "memory": "128Mi"}), json!({}));
        assert_eq!(
            create(&quota, pods(), &p),
            Check::Refused("exceeded quota: compute, requested: requests.memory=128Mi, used: requests.memory=960Mi, limited: requests.memory=1Gi".into())
        );
        let p = pod("x", json!({"cpu": "100m", "memory": "64Mi"}), json!({}));
        assert_eq!(
            create(&quota, pods(), &p),
            Check::Charge(list(&[
                ("pods", "2"),
                ("requests.cpu", "100m"),
                ("requests.memory", "1Gi")
            ]))
        );
    }

    #[test]
    fn a_cpu_quota_needs_every_container_to_state_cpu() {
        let quota = Quota {
            name: "q".into(),
            hard: list(&[("limits.cpu", "2"), ("requests.memory", "1Gi")]),
            used: list(&[("limits.cpu", "0"), ("requests.memory", "0")]),
            scopes: vec![],
        };
        let p = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"memory": "1Mi"}}},
            {"name": "b", "resources": {}}]}});
        assert_eq!(
            create(&quota, pods(), &p),
            Check::Refused(
                "failed quota: q: must specify limits.cpu for: a,b; requests.memory for: b".into()
            )
        );
    }

    #[test]
    fn a_quota_without_usage_yet_refuses_what_it_constrains() {
        let quota = Quota {
            name: "q".into(),
            hard: list(&[("pods", "2"), ("count/configmaps", "1")]),
            used: ResourceList::new(),
            scopes: vec![],
        };
        assert_eq!(
            create(&quota, pods(), &pod("x", json!({}), json!({}))),
            Check::Refused("status unknown for quota: q, resources: pods".into())
        );
        let secrets = by_kind("v1", "Secret").unwrap();
        assert_eq!(create(&quota, secrets, &json!({})), Check::Untouched);
    }

    #[test]
    fn object_counts_cover_any_kind_and_services_count_node_ports() {
        let deployments = by_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(object_count_name(deployments), "count/deployments.apps");
        let services = by_kind("v1", "Service").unwrap();
        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}});
        assert_eq!(
            usage(services, &svc),
            list(&[
                ("count/services", "1"),
                ("services", "1"),
                ("services.nodeports", "2")
            ])
        );
        let quota = Quota {
            name: "q".into(),
            hard: list(&[("count/deployments.apps", "1")]),
            used: list(&[("count/deployments.apps", "1")]),
            scopes: vec![],
        };
        assert!(
            matches!(create(&quota, deployments, &json!({})), Check::Refused(m) if m.starts_with("exceeded quota: q, requested: count/deployments.apps=1"))
        );
    }

    #[test]
    fn usage_counts_live_pods_only() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let hard = list(&[
            ("pods", "5"),
            ("requests.cpu", "4"),
            ("count/configmaps", "3"),
        ]);
        let running = pod("a", json!({"cpu": "500m"}), json!({}));
        let mut done = pod("b", json!({"cpu": "1"}), json!({}));
        done["status"] = json!({"phase": "Succeeded"});
        let mut stuck = pod("c", json!({"cpu": "1"}), json!({}));
        stuck["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        stuck["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        let mut stopping = pod("d", json!({"cpu": "250m"}), json!({}));
        stopping["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:50Z");
        stopping["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        let objects = [running, done, stuck, stopping];
        let used = namespace_usage(&hard, &[], objects.iter().map(|p| (pods(), p)), now);
        assert_eq!(
            used,
            list(&[
                ("count/configmaps", "0"),
                ("pods", "2"),
                ("requests.cpu", "750m")
            ])
        );
    }

    #[test]
    fn scoped_quotas_cover_only_the_pods_they_select() {
        let scopes = vec![Scope::exists("BestEffort")];
        let best_effort = pod("a", json!({}), json!({}));
        let burstable = pod("b", json!({"cpu": "1"}), json!({}));
        assert!(in_scope(&scopes, pods(), &best_effort));
        assert!(!in_scope(&scopes, pods(), &burstable));
        assert!(!in_scope(
            &scopes,
            by_kind("v1", "Service").unwrap(),
            &json!({})
        ));
    }

    #[test]
    fn priority_class_and_cross_namespace_scopes_select_as_kubernetes() {
        let scope = |operator: &str, values: &[&str]| Scope {
            name: "PriorityClass".into(),
            operator: operator.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let mut high = pod("h", json!({}), json!({}));
        high["spec"]["priorityClassName"] = json!("high");
        let plain = pod("p", json!({}), json!({}));
        let cases = [
            (scope("In", &["high"]), true, false),
            (scope("NotIn", &["high"]), false, true),
            (scope("Exists", &[]), true, false),
            (scope("DoesNotExist", &[]), false, false),
        ];
        for (s, for_high, for_plain) in cases {
            let scopes = [s.clone()];
            assert_eq!(in_scope(&scopes, pods(), &high), for_high, "{s:?} high");
            assert_eq!(in_scope(&scopes, pods(), &plain), for_plain, "{s:?} plain");
        }
        let cross = Scope::exists("CrossNamespacePodAffinity");
        let mut wide = pod("w", json!({}), json!({}));
        wide["spec"]["affinity"] = json!({"podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1,
                "podAffinityTerm": {"topologyKey": "k", "namespaceSelector": {}}}]}});
        let mut local = pod("l", json!({}), json!({}));
        local["spec"]["affinity"] = json!({"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "k"}]}});
        assert!(in_scope(std::slice::from_ref(&cross), pods(), &wide));
        assert!(!in_scope(std::slice::from_ref(&cross), pods(), &local));
    }

    #[test]
    fn an_update_is_charged_only_what_it_adds() {
        let services = by_kind("v1", "Service").unwrap();
        let quota = Quota {
            name: "q".into(),
            hard: list(&[("services.nodeports", "2"), ("count/services", "1")]),
            used: list(&[("services.nodeports", "0"), ("count/services", "1")]),
            scopes: vec![],
        };
        let cluster_ip = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}, {"port": 81}, {"port": 82}]}});
        let mut node_port = cluster_ip.clone();
        node_port["spec"]["type"] = json!("NodePort");
        // The same object again adds nothing, even at the count's limit.
        let same = delta(services, Some(&cluster_ip), &cluster_ip);
        assert!(same.is_empty(), "{same:?}");
        assert_eq!(
            check(&quota, services, &cluster_ip, &same),
            Check::Untouched
        );
        let grown = delta(services, Some(&cluster_ip), &node_port);
        assert_eq!(grown, list(&[("services.nodeports", "3")]));
        assert_eq!(
            check(&quota, services, &node_port, &grown),
            Check::Refused(
                "exceeded quota: q, requested: services.nodeports=3, used: services.nodeports=0, limited: services.nodeports=2"
                    .into()
            )
        );
        node_port["spec"]["ports"] = json!([{"port": 80}]);
        let fits = delta(services, Some(&cluster_ip), &node_port);
        assert_eq!(
            check(&quota, services, &node_port, &fits),
            Check::Charge(list(&[
                ("count/services", "1"),
                ("services.nodeports", "1")
            ]))
        );
        assert!(checks_updates(services) && !checks_updates(pods()));
    }
}
