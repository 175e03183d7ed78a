//! LimitRange rules for pods, as Kubernetes' LimitRanger admission
//! (`plugin/pkg/admission/limitranger/admission.go`): defaults filled into
//! containers that state no request or limit, then min, max and
//! maxLimitRequestRatio per container and per pod, with Kubernetes' words. Pure.

use std::cmp::Ordering;

use serde_json::{Map, Value};
use skiff_api::json::Pointer as _;
use skiff_api::quantity::Quantity;

use crate::admission::resources::{ResourceList, compare, list_at, pod_total, show};

/// The annotation that says what LimitRanger filled in.
const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The Container items' defaults of `ranges`, each range in turn
/// (`PodMutateLimitFunc`): missing requests and limits are filled, stated
/// ones are kept. Records what was set in [`ANNOTATION`].
pub fn apply_defaults(ranges: &[Value], pod: &mut Value) {
    let mut notes = Vec::new();
    for range in ranges {
        let (requests, limits) = container_defaults(range);
        if requests.is_empty() && limits.is_empty() {
            continue;
        }
        for (list, what) in [
            ("containers", "container"),
            ("initContainers", "init container"),
        ] {
            let Some(Value::Array(containers)) = pod.pointer_mut(&format!("/spec/{list}")) else {
                continue;
            };
            for c in containers {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let set_requests = fill(c, "requests", &requests);
                let set_limits = fill(c, "limits", &limits);
                if !set_requests.is_empty() {
                    notes.push(format!(
                        "{} request for {what} {name}",
                        set_requests.join(", ")
                    ));
                }
                if !set_limits.is_empty() {
                    notes.push(format!("{} limit for {what} {name}", set_limits.join(", ")));
                }
            }
        }
    }
    if notes.is_empty() {
        return;
    }
    let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(map) = annotations.as_object_mut() {
        map.insert(
            ANNOTATION.into(),
            format!("LimitRanger plugin set: {}", notes.join("; ")).into(),
        );
    }
}

/// `defaultContainerResourceRequirements`: (defaultRequest, default) of the
/// range's Container items.
fn container_defaults(range: &Value) -> (ResourceList, ResourceList) {
    let mut requests = ResourceList::new();
    let mut limits = ResourceList::new();
    for item in items(range).filter(|i| item_type(i) == "Container") {
        requests.extend(list_at(item, "/defaultRequest"));
        limits.extend(list_at(item, "/default"));
    }
    (requests, limits)
}

/// Sets each of `defaults` missing from the container's `resources.<field>`;
/// returns the names set, sorted.
fn fill(container: &mut Value, field: &str, defaults: &ResourceList) -> Vec<String> {
    if defaults.is_empty() {
        return Vec::new();
    }
    let Some(map) = container.as_object_mut() else {
        return Vec::new();
    };
    let resources = map
        .entry("resources")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(resources) = resources.as_object_mut() else {
        return Vec::new();
    };
    let list = resources
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(list) = list.as_object_mut() else {
        return Vec::new();
    };
    let mut set = Vec::new();
    for (k, v) in defaults {
        if !list.contains_key(k) {
            list.insert(k.clone(), Value::String(v.clone()));
            set.push(k.clone());
        }
    }
    set
}

fn items(range: &Value) -> impl Iterator<Item = &Value> {
    range
        .at("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn item_type(item: &Value) -> &str {
    item.get("type").and_then(Value::as_str).unwrap_or_default()
}

/// `PodValidateLimitFunc` for one range: every violation, in Kubernetes' words.
pub fn validate(range: &Value, pod: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    for item in items(range) {
        let kind = item_type(item);
        let mut check = |requests: &ResourceList, limits: &ResourceList| {
            for (r, enforced) in list_at(item, "/min") {
                errs.extend(min_constraint(kind, &r, &enforced, requests, limits));
            }
            for (r, enforced) in list_at(item, "/max") {
                errs.extend(max_constraint(kind, &r, &enforced, requests, limits));
            }
            for (r, enforced) in list_at(item, "/maxLimitRequestRatio") {
                errs.extend(ratio_constraint(kind, &r, &enforced, requests, limits));
            }
        };
        match kind {
            "Container" => {
                for list in ["containers", "initContainers"] {
                    for c in pod
                        .at(&format!("/spec/{list}"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        check(
                            &list_at(c, "/resources/requests"),
                            &list_at(c, "/resources/limits"),
                        );
                    }
                }
            }
            "Pod" => check(&pod_total(pod, "requests"), &pod_total(pod, "limits")),
            _ => {}
        }
    }
    errs
}

/// `utilerrors.NewAggregate(errs).Error()`: one message as it is, several
/// (duplicates dropped) in brackets.
pub fn aggregate(errs: &[String]) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    for e in errs {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [] => None,
        [one] => Some(one.to_string()),
        many => Some(format!("[{}]", many.join(", "))),
    }
}

fn min_constraint(
    kind: &str,
    r: &str,
    enforced: &str,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let e = show(enforced);
    let Some(req) = requests.get(r) else {
        return Some(format!(
            "minimum {r} usage per {kind} is {e}.  No request is specified"
        ));
    };
    if compare(req, enforced) == Some(Ordering::Less) {
        return Some(format!(
            "minimum {r} usage per {kind} is {e}, but request is {}",
            show(req)
        ));
    }
    if let Some(lim) = limits.get(r)
        && compare(lim, enforced) == Some(Ordering::Less)
    {
        return Some(format!(
            "minimum {r} usage per {kind} is {e}, but limit is {}",
            show(lim)
        ));
    }
    None
}

fn max_constraint(
    kind: &str,
    r: &str,
    enforced: &str,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let e = show(enforced);
    let Some(lim) = limits.get(r) else {
        return Some(format!(
            "maximum {r} usage per {kind} is {e}.  No limit is specified"
        ));
    };
    if compare(lim, enforced) == Some(Ordering::Greater) {
        return Some(format!(
            "maximum {r} usage per {kind} is {e}, but limit is {}",
            show(lim)
        ));
    }
    if let Some(req) = requests.get(r)
        && compare(req, enforced) == Some(Ordering::Greater)
    {
        return Some(format!(
            "maximum {r} usage per {kind} is {e}, but request is {}",
            show(req)
        ));
    }
    None
}

fn ratio_constraint(
    kind: &str,
    r: &str,
    enforced: &str,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let e = show(enforced);
    let milli = |q: Option<&String>| {
        q.and_then(|q| Quantity::parse(q).ok())
            .map_or(0, Quantity::milli_value)
    };
    let req = milli(requests.get(r));
    let lim = milli(limits.get(r));
    if req == 0 {
        return Some(format!(
            "{r} max limit to request ratio per {kind} is {e}, but no request is specified or request is 0"
        ));
    }
    if lim == 0 {
        return Some(format!(
            "{r} max limit to request ratio per {kind} is {e}, but no limit is specified or limit is 0"
        ));
    }
    let observed = lim as f64 / req as f64;
    let max = Quantity::parse(enforced).map_or(0, Quantity::milli_value) as f64 / 1000.0;
    (observed > max).then(|| {
        format!(
            "{r} max limit to request ratio per {kind} is {e}, but provided ratio is {observed:.6}"
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn range(items: Value) -> Value {
        json!({"spec": {"limits": items}})
    }

    #[test]
    fn defaults_fill_only_what_a_container_leaves_out() {
        let ranges = [range(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "128Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "64Mi"}}]))];
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a"},
            {"name": "b", "resources": {"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}}}]}});
        apply_defaults(&ranges, &mut pod);
        assert_eq!(
            pod.at("/spec/containers/0/resources").unwrap(),
            &json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}})
        );
        assert_eq!(
            pod.at("/spec/containers/1/resources").unwrap(),
            &json!({"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "1Gi"}})
        );
        assert_eq!(
            pod.at("/metadata/annotations/kubernetes.io~1limit-ranger")
                .unwrap(),
            "LimitRanger plugin set: cpu, memory request for container a; cpu, memory limit for container a; cpu request for container b; cpu limit for container b"
        );
    }

    #[test]
    fn bounds_are_checked_per_container_and_per_pod_in_kubernetes_words() {
        let r = range(json!([
            {"type": "Container", "max": {"memory": "1Gi"}, "min": {"cpu": "50m"}},
            {"type": "Pod", "max": {"cpu": "1"}}]));
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "600m"}, "limits": {"memory": "2Gi", "cpu": "600m"}}},
            {"name": "b", "resources": {"requests": {"cpu": "600m"}, "limits": {"memory": "1024Mi", "cpu": "600m"}}}]}});
        assert_eq!(
            validate(&r, &pod),
            vec![
                "maximum memory usage per Container is 1Gi, but limit is 2Gi".to_string(),
                "maximum cpu usage per Pod is 1, but limit is 1200m".to_string(),
            ]
        );
        let bare = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            aggregate(&validate(&r, &bare)).unwrap(),
            "[minimum cpu usage per Container is 50m.  No request is specified, maximum memory usage per Container is 1Gi.  No limit is specified, maximum cpu usage per Pod is 1.  No limit is specified]"
        );
    }

    #[test]
    fn the_limit_to_request_ratio_is_bounded() {
        let r = range(json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]));
        let pod = |req: &str, lim: &str| {
            json!({"spec": {"containers": [{"name": "a",
                "resources": {"requests": {"cpu": req}, "limits": {"cpu": lim}}}]}})
        };
        assert!(validate(&r, &pod("250m", "500m")).is_empty());
        assert_eq!(
            validate(&r, &pod("100m", "500m")),
            vec![
                "cpu max limit to request ratio per Container is 2, but provided ratio is 5.000000"
                    .to_string()
            ]
        );
    }
}
