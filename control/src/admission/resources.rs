//! Resource lists (`{"cpu": "500m", "memory": "64Mi"}`) as quota and limit-range
//! admission read them: parsed, compared, added and printed as Kubernetes'
//! `resource.Quantity` does. Pure.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Value;
use skiff_api::json::Pointer as _;
use skiff_api::quantity::{Quantity, add_quantities, canonical_quantity, sub_quantities};

/// Resource name to quantity, as written (or as summed, in canonical form).
/// Ordered, so that messages list resources as Kubernetes sorts them.
pub type ResourceList = BTreeMap<String, String>;

/// The quantity text of a JSON quantity (a string, or a number as YAML gives).
pub fn quantity_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The resource list at `pointer` in `obj`; entries that are not quantities
/// are left out (validation refuses them before admission sees them).
pub fn list_at(obj: &Value, pointer: &str) -> ResourceList {
    obj.at(pointer)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), quantity_text(v)?)))
        .collect()
}

/// `a` compared with `b`; `None` if either is not a quantity.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    Some(Quantity::parse(a).ok()?.cmp_to(Quantity::parse(b).ok()?))
}

/// `Quantity.String()`.
pub fn show(q: &str) -> String {
    canonical_quantity(q)
}

/// `a + b`; a quantity that does not parse counts as nothing (validation has
/// refused it already), and an overflowing sum keeps `a`.
pub fn add(a: &str, b: &str) -> String {
    add_quantities(a, b)
        .or_else(|| add_quantities(a, "0"))
        .or_else(|| add_quantities("0", b))
        .unwrap_or_else(|| "0".to_string())
}

/// `quota.Add`: every resource of both, summed.
pub fn add_lists(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, v) in b {
        let sum = match out.get(k) {
            Some(existing) => add(existing, v),
            None => show(v),
        };
        out.insert(k.clone(), sum);
    }
    out
}

/// `quota.SubtractWithNonNegativeResult` then `quota.RemoveZeros`: what `a`
/// has beyond `b`, resource by resource, leaving out what is not more.
pub fn exceeding(a: &ResourceList, b: &ResourceList) -> ResourceList {
    a.iter()
        .filter_map(|(k, v)| {
            let rest = match b.get(k) {
                Some(taken) => sub_quantities(v, taken)?,
                None => show(v),
            };
            let positive = compare(&rest, "0") == Some(Ordering::Greater);
            positive.then(|| (k.clone(), rest))
        })
        .collect()
}

/// `quota.Mask`: only the named resources.
pub fn mask<'a>(list: &ResourceList, names: impl IntoIterator<Item = &'a String>) -> ResourceList {
    names
        .into_iter()
        .filter_map(|n| Some((n.clone(), list.get(n)?.clone())))
        .collect()
}

/// `prettyPrint` of the quota admission: `k=v` pairs, sorted, joined by `,`.
pub fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={}", show(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A pod's requests (`resources.requests`) or limits summed as Kubernetes
/// sums them for a pod: the sum over its containers, or the largest of any
/// one init container's when that is larger (init containers run one at a
/// time, before the others).
pub fn pod_total(pod: &Value, field: &str) -> ResourceList {
    let containers = |list: &str| -> Vec<ResourceList> {
        pod.at(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| list_at(c, &format!("/resources/{field}")))
            .collect()
    };
    let mut total = ResourceList::new();
    for c in containers("containers") {
        total = add_lists(&total, &c);
    }
    for init in containers("initContainers") {
        for (k, v) in init {
            let larger = total
                .get(&k)
                .is_none_or(|t| compare(&v, t) == Some(Ordering::Greater));
            if larger {
                total.insert(k, show(&v));
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn exceeding_keeps_only_what_grew() {
        let list = |pairs: &[(&str, &str)]| -> ResourceList {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let new = list(&[
            ("services.nodeports", "3"),
            ("count/services", "1"),
            ("requests.storage", "2Gi"),
        ]);
        let old = list(&[
            ("services.nodeports", "1"),
            ("count/services", "1"),
            ("requests.storage", "3Gi"),
        ]);
        assert_eq!(exceeding(&new, &old), list(&[("services.nodeports", "2")]));
        assert_eq!(
            exceeding(
                &list(&[("services.loadbalancers", "1")]),
                &ResourceList::new()
            ),
            list(&[("services.loadbalancers", "1")])
        );
    }

    #[test]
    fn a_pod_total_sums_containers_and_takes_the_largest_init_container() {
        let pod = json!({"spec": {
            "initContainers": [{"resources": {"requests": {"cpu": "2", "memory": "10Mi"}}}],
            "containers": [
                {"resources": {"requests": {"cpu": "500m", "memory": "64Mi"}}},
                {"resources": {"requests": {"cpu": "250m", "memory": 1048576}}},
                {"name": "none"}]}});
        let total = pod_total(&pod, "requests");
        assert_eq!(total.get("cpu").map(String::as_str), Some("2"));
        assert_eq!(total.get("memory").map(String::as_str), Some("65Mi"));
        assert!(pod_total(&pod, "limits").is_empty());
    }

    #[test]
    fn pretty_prints_sorted_canonical_pairs() {
        let list: ResourceList = [("pods".into(), "2".into()), ("cpu".into(), "1000m".into())]
            .into_iter()
            .collect();
        assert_eq!(pretty(&list), "cpu=1,pods=2");
    }
}
