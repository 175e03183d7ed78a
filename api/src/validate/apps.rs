//! `apps/v1` workloads: Deployment, ReplicaSet, DaemonSet, StatefulSet.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::pod::{normalized_pod_spec, restart_policy, template_labels, validate_pod_template};
use super::{Errors, child, immutable, label_selector, names, nonnegative};
use crate::json::Pointer as _;
use crate::status::FieldError;

/// Deployment: Kubernetes' `ValidateDeploymentSpec`.
pub(crate) fn validate_deployment(d: &Deployment, obj: &Value, errs: &mut Errors) {
    let default = Default::default();
    let spec = d.spec.as_ref().unwrap_or(&default);
    nonnegative(spec.replicas, "spec.replicas", errs);
    validate_selector(&spec.selector, obj, "deployment", errs);
    validate_template_for_replicas(&spec.template, &spec.selector, obj, "ReplicaSet", errs);
    if let Some(strategy) = &spec.strategy {
        let rolling = strategy.rolling_update.as_ref();
        match strategy.type_.as_deref().unwrap_or("RollingUpdate") {
            "Recreate" => {
                if rolling.is_some() {
                    errs.push(FieldError::forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" => {
                if let Some(r) = rolling {
                    validate_rolling_update(
                        r.max_unavailable.as_ref(),
                        r.max_surge.as_ref(),
                        &IntOrString::String("25%".into()),
                        &IntOrString::String("25%".into()),
                        "spec.strategy.rollingUpdate",
                        errs,
                    );
                }
            }
            other => errs.push(FieldError::not_supported(
                "spec.strategy.type",
                other,
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    nonnegative(spec.min_ready_seconds, "spec.minReadySeconds", errs);
    nonnegative(
        spec.revision_history_limit,
        "spec.revisionHistoryLimit",
        errs,
    );
    if let Some(deadline) = spec.progress_deadline_seconds {
        nonnegative(Some(deadline), "spec.progressDeadlineSeconds", errs);
        if deadline <= min_ready {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
}

/// ReplicaSet: Kubernetes' `ValidateReplicaSetSpec`.
pub(crate) fn validate_replica_set(rs: &ReplicaSet, obj: &Value, errs: &mut Errors) {
    let default = Default::default();
    let spec = rs.spec.as_ref().unwrap_or(&default);
    nonnegative(spec.replicas, "spec.replicas", errs);
    nonnegative(spec.min_ready_seconds, "spec.minReadySeconds", errs);
    // Kubernetes says "deployment" here too.
    validate_selector(&spec.selector, obj, "deployment", errs);
    let template = spec.template.clone().unwrap_or_default();
    validate_template_for_replicas(&template, &spec.selector, obj, "ReplicaSet", errs);
}

/// DaemonSet: Kubernetes' `ValidateDaemonSetSpec`.
pub(crate) fn validate_daemon_set(ds: &DaemonSet, obj: &Value, errs: &mut Errors) {
    let default = Default::default();
    let spec = ds.spec.as_ref().unwrap_or(&default);
    validate_selector(&spec.selector, obj, "daemonset", errs);
    validate_template_for_replicas(&spec.template, &spec.selector, obj, "DaemonSet", errs);
    nonnegative(spec.min_ready_seconds, "spec.minReadySeconds", errs);
    nonnegative(
        spec.revision_history_limit,
        "spec.revisionHistoryLimit",
        errs,
    );
    if let Some(strategy) = &spec.update_strategy {
        match strategy.type_.as_deref().unwrap_or("RollingUpdate") {
            "OnDelete" => {}
            "RollingUpdate" => {
                if let Some(r) = &strategy.rolling_update {
                    validate_rolling_update(
                        r.max_unavailable.as_ref(),
                        r.max_surge.as_ref(),
                        &IntOrString::Int(1),
                        &IntOrString::Int(0),
                        "spec.updateStrategy.rollingUpdate",
                        errs,
                    );
                }
            }
            other => errs.push(FieldError::not_supported(
                "spec.updateStrategy.type",
                other,
                &["RollingUpdate", "OnDelete"],
            )),
        }
    }
}

/// StatefulSet: Kubernetes' `ValidateStatefulSetSpec`.
pub(crate) fn validate_stateful_set(sts: &StatefulSet, obj: &Value, errs: &mut Errors) {
    let default = Default::default();
    let spec = sts.spec.as_ref().unwrap_or(&default);
    match spec.pod_management_policy.as_deref() {
        None | Some("OrderedReady") | Some("Parallel") => {}
        Some("") => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        Some(other) => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    if let Some(strategy) = &spec.update_strategy {
        match strategy.type_.as_deref().unwrap_or("RollingUpdate") {
            "OnDelete" => {
                if let Some(r) = &strategy.rolling_update {
                    errs.push(FieldError::invalid(
                        "spec.updateStrategy.rollingUpdate",
                        super::to_json(r),
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            "RollingUpdate" => {
                if let Some(r) = &strategy.rolling_update {
                    nonnegative(
                        r.partition,
                        "spec.updateStrategy.rollingUpdate.partition",
                        errs,
                    );
                    if let Some(max) = &r.max_unavailable {
                        let p = "spec.updateStrategy.rollingUpdate.maxUnavailable";
                        validate_positive_int_or_percent(max, p, errs);
                        if int_or_percent_value(max) == Some(0) {
                            errs.push(FieldError::invalid(
                                p,
                                int_or_string_json(max),
                                "must be greater than 0",
                            ));
                        }
                        not_more_than_100_percent(max, p, errs);
                    }
                }
            }
            other => errs.push(FieldError::invalid(
                "spec.updateStrategy",
                other,
                "must be 'RollingUpdate' or 'OnDelete'",
            )),
        }
    }
    nonnegative(spec.replicas, "spec.replicas", errs);
    nonnegative(spec.min_ready_seconds, "spec.minReadySeconds", errs);
    nonnegative(
        spec.revision_history_limit,
        "spec.revisionHistoryLimit",
        errs,
    );
    if let Some(ordinals) = &spec.ordinals {
        nonnegative(ordinals.start, "spec.ordinals.start", errs);
    }
    if let Some(service) = spec.service_name.as_deref().filter(|s| !s.is_empty()) {
        super::invalid_each(
            "spec.serviceName",
            service,
            names::is_dns1035_label(service),
            errs,
        );
    }
    validate_selector(&spec.selector, obj, "statefulset", errs);
    check_selector_matches(&spec.selector, has_selector(obj), &spec.template, errs);
    validate_pod_template(&spec.template, "spec.template", errs);
    let policy = restart_policy(&spec.template);
    if policy != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
    if spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .is_some()
    {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in StatefulSet is not Supported",
        ));
    }
}

/// A workload's selector cannot change once created.
pub(crate) fn validate_selector_update(
    old: Option<&LabelSelector>,
    new: Option<&LabelSelector>,
    errs: &mut Errors,
) {
    let default = LabelSelector::default();
    let (old, new) = (old.unwrap_or(&default), new.unwrap_or(&default));
    if !label_selector::same(old, new) {
        errs.push(immutable("spec.selector", super::to_json(new)));
    }
}

pub(crate) fn validate_deployment_update(old: &Deployment, new: &Deployment, errs: &mut Errors) {
    validate_selector_update(
        old.spec.as_ref().map(|s| &s.selector),
        new.spec.as_ref().map(|s| &s.selector),
        errs,
    );
}

pub(crate) fn validate_replica_set_update(old: &ReplicaSet, new: &ReplicaSet, errs: &mut Errors) {
    validate_selector_update(
        old.spec.as_ref().map(|s| &s.selector),
        new.spec.as_ref().map(|s| &s.selector),
        errs,
    );
}

pub(crate) fn validate_daemon_set_update(old: &DaemonSet, new: &DaemonSet, errs: &mut Errors) {
    validate_selector_update(
        old.spec.as_ref().map(|s| &s.selector),
        new.spec.as_ref().map(|s| &s.selector),
        errs,
    );
}

/// Kubernetes' `ValidateStatefulSetUpdate`: only replicas, ordinals, template,
/// update strategy, revision history, PVC retention and minReadySeconds change.
pub(crate) fn validate_stateful_set_update(
    old: &StatefulSet,
    new: &StatefulSet,
    errs: &mut Errors,
) {
    let old_spec = old.spec.clone().unwrap_or_default();
    let mut new_spec = new.spec.clone().unwrap_or_default();
    new_spec.replicas = old_spec.replicas;
    new_spec.template.clone_from(&old_spec.template);
    new_spec
        .update_strategy
        .clone_from(&old_spec.update_strategy);
    new_spec.min_ready_seconds = old_spec.min_ready_seconds;
    new_spec.ordinals.clone_from(&old_spec.ordinals);
    new_spec.revision_history_limit = old_spec.revision_history_limit;
    new_spec
        .persistent_volume_claim_retention_policy
        .clone_from(&old_spec.persistent_volume_claim_retention_policy);
    if !same_stateful_set_spec(&old_spec, &new_spec) {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

fn same_stateful_set_spec(a: &StatefulSetSpec, b: &StatefulSetSpec) -> bool {
    let policy = |s: &StatefulSetSpec| {
        s.pod_management_policy
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "OrderedReady".into())
    };
    let claims = |s: &StatefulSetSpec| {
        let mut v = super::to_json(&s.volume_claim_templates.clone().unwrap_or_default());
        super::pod::prune_empty(&mut v);
        v
    };
    label_selector::same(&a.selector, &b.selector)
        && policy(a) == policy(b)
        && a.service_name.as_deref().unwrap_or("") == b.service_name.as_deref().unwrap_or("")
        && claims(a) == claims(b)
}

/// Whether the body has `spec.selector` at all: the typed form cannot tell an
/// absent selector from `{}`, and Kubernetes answers them differently.
fn has_selector(obj: &Value) -> bool {
    obj.at("/spec/selector").is_some_and(|s| !s.is_null())
}

/// Required, valid, and not empty.
fn validate_selector(selector: &LabelSelector, obj: &Value, kind: &str, errs: &mut Errors) {
    if !has_selector(obj) {
        errs.push(FieldError::required("spec.selector", ""));
        return;
    }
    label_selector::validate(selector, "spec.selector", errs);
    if label_selector::is_empty(selector) {
        errs.push(FieldError::invalid(
            "spec.selector",
            super::to_json(selector),
            format!("empty selector is invalid for {kind}"),
        ));
    }
}

/// Kubernetes' `ValidatePodTemplateSpecForReplicaSet` (and the DaemonSet
/// equivalent): labels match the selector, the template is a valid pod, and
/// its pods restart always.
fn validate_template_for_replicas(
    template: &PodTemplateSpec,
    selector: &LabelSelector,
    obj: &Value,
    kind: &str,
    errs: &mut Errors,
) {
    check_selector_matches(selector, has_selector(obj), template, errs);
    validate_pod_template(template, "spec.template", errs);
    let policy = restart_policy(template);
    if policy != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
    if let Some(deadline) = template
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
    {
        errs.push(FieldError::invalid(
            "spec.template.spec.activeDeadlineSeconds",
            deadline,
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// `spec.template.metadata.labels: Invalid value: {...}: `selector` does not match template `labels``.
/// An absent selector matches nothing and an empty one everything, as
/// `metav1.LabelSelectorAsSelector` makes them.
pub(crate) fn check_selector_matches(
    selector: &LabelSelector,
    present: bool,
    template: &PodTemplateSpec,
    errs: &mut Errors,
) {
    let labels = template_labels(template);
    let matched = present
        && (label_selector::is_empty(selector) || label_selector::matches(selector, &labels));
    if !matched {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            super::to_json(&labels),
            "`selector` does not match template `labels`",
        ));
    }
}

fn int_or_string_json(v: &IntOrString) -> Value {
    match v {
        IntOrString::Int(i) => Value::from(*i),
        IntOrString::String(s) => Value::from(s.as_str()),
    }
}

/// The number, or the percentage's number; `None` for a malformed percentage.
fn int_or_percent_value(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::Int(i) => Some(i64::from(*i)),
        IntOrString::String(s) => s.strip_suffix('%').and_then(|n| n.parse().ok()),
    }
}

fn validate_positive_int_or_percent(v: &IntOrString, path: &str, errs: &mut Errors) {
    match v {
        IntOrString::String(s) => {
            for m in names::is_valid_percent(s) {
                errs.push(FieldError::invalid(path, s.as_str(), m));
            }
        }
        IntOrString::Int(i) => nonnegative(Some(*i), path, errs),
    }
}

fn not_more_than_100_percent(v: &IntOrString, path: &str, errs: &mut Errors) {
    if let IntOrString::String(s) = v
        && int_or_percent_value(v).is_some_and(|p| p > 100)
    {
        errs.push(FieldError::invalid(
            path,
            s.as_str(),
            "must not be greater than 100%",
        ));
    }
}

/// maxUnavailable/maxSurge: valid numbers or percentages, not both zero, and
/// maxUnavailable at most 100%. Absent ones take the kind's defaults.
fn validate_rolling_update(
    max_unavailable: Option<&IntOrString>,
    max_surge: Option<&IntOrString>,
    default_unavailable: &IntOrString,
    default_surge: &IntOrString,
    path: &str,
    errs: &mut Errors,
) {
    let unavailable = max_unavailable.unwrap_or(default_unavailable);
    let surge = max_surge.unwrap_or(default_surge);
    let unavailable_path = child(path, "maxUnavailable");
    validate_positive_int_or_percent(unavailable, &unavailable_path, errs);
    validate_positive_int_or_percent(surge, &child(path, "maxSurge"), errs);
    if int_or_percent_value(unavailable) == Some(0) && int_or_percent_value(surge) == Some(0) {
        errs.push(FieldError::invalid(
            &unavailable_path,
            int_or_string_json(unavailable),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    not_more_than_100_percent(unavailable, &unavailable_path, errs);
}

/// Whether two templates are the same pod once defaults are filled in.
pub(crate) fn same_template(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let meta = |t: &PodTemplateSpec| {
        let mut v = super::to_json(&t.metadata);
        super::pod::prune_empty(&mut v);
        v
    };
    let spec = |t: &PodTemplateSpec| normalized_pod_spec(&t.spec.clone().unwrap_or_default());
    meta(a) == meta(b) && spec(a) == spec(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment_errors(d: Value) -> Vec<String> {
        let typed: Deployment = serde_json::from_value(d.clone()).unwrap();
        let mut errs = Errors::new();
        validate_deployment(&typed, &d, &mut errs);
        errs.iter().map(|e| e.to_string()).collect()
    }

    fn deployment(spec: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": spec})
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "hello:v1"}]}})
    }

    #[test]
    fn selector_rules() {
        assert!(
            deployment_errors(deployment(
                json!({"selector": {"matchLabels": {"app": "web"}}, "template": template()})
            ))
            .is_empty()
        );
        assert_eq!(
            deployment_errors(deployment(json!({"template": template()}))),
            [
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
            ]
        );
        assert_eq!(
            deployment_errors(deployment(json!({"selector": {}, "template": template()}))),
            ["spec.selector: Invalid value: {}: empty selector is invalid for deployment"]
        );
        assert_eq!(
            deployment_errors(deployment(
                json!({"selector": {"matchLabels": {"app": "api"}}, "template": template()})
            )),
            [
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`"
            ]
        );
    }

    #[test]
    fn replicas_and_strategy() {
        let errs = deployment_errors(deployment(json!({
            "replicas": -1, "selector": {"matchLabels": {"app": "web"}}, "template": template(),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
            "minReadySeconds": 10, "progressDeadlineSeconds": 5
        })));
        assert_eq!(
            errs,
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0",
                "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds",
            ]
        );
        let errs = deployment_errors(deployment(json!({
            "selector": {"matchLabels": {"app": "web"}}, "template": template(),
            "strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}
        })));
        assert_eq!(
            errs,
            [
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
            ]
        );
        let errs = deployment_errors(deployment(json!({
            "selector": {"matchLabels": {"app": "web"}}, "template": template(), "strategy": {"type": "BlueGreen"}
        })));
        assert_eq!(
            errs,
            [
                "spec.strategy.type: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\""
            ]
        );
        let errs = deployment_errors(deployment(json!({
            "selector": {"matchLabels": {"app": "web"}}, "template": template(),
            "strategy": {"rollingUpdate": {"maxUnavailable": "150%", "maxSurge": "x"}}
        })));
        assert_eq!(errs.len(), 2);
        assert!(errs[0].starts_with(
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"x\": a valid percent string"
        ));
        assert_eq!(
            errs[1],
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%"
        );
    }

    #[test]
    fn template_rules() {
        let mut t = template();
        t["spec"]["restartPolicy"] = json!("Never");
        t["spec"]["activeDeadlineSeconds"] = json!(10);
        t["spec"]["containers"][0]["name"] = json!("Web");
        let errs = deployment_errors(deployment(
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": t}),
        ));
        let fields: Vec<&str> = errs.iter().map(|e| e.split(": ").next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "spec.template.spec.containers[0].name",
                "spec.template.spec.restartPolicy",
                "spec.template.spec.activeDeadlineSeconds"
            ]
        );
    }

    #[test]
    fn stateful_sets_and_daemon_sets() {
        let sts = json!({"metadata": {"name": "db"}, "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "web"}},
                         "template": template(), "podManagementPolicy": "Random", "updateStrategy": {"type": "Sometimes"}}});
        let typed: StatefulSet = serde_json::from_value(sts.clone()).unwrap();
        let mut errs = Errors::new();
        validate_stateful_set(&typed, &sts, &mut errs);
        let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            [
                "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
                "spec.updateStrategy: Invalid value: \"Sometimes\": must be 'RollingUpdate' or 'OnDelete'",
            ]
        );
        let mut changed = typed.clone();
        if let Some(spec) = changed.spec.as_mut() {
            spec.service_name = Some("other".into());
            spec.replicas = Some(5);
        }
        let mut errs = Errors::new();
        validate_stateful_set_update(&typed, &changed, &mut errs);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .detail
                .starts_with("updates to statefulset spec for fields other than 'replicas'")
        );

        let ds = json!({"metadata": {"name": "agent"}, "spec": {"template": template(), "updateStrategy": {"rollingUpdate": {"maxUnavailable": 0}}}});
        let typed: DaemonSet = serde_json::from_value(ds.clone()).unwrap();
        let mut errs = Errors::new();
        validate_daemon_set(&typed, &ds, &mut errs);
        let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            [
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
            ]
        );
    }

    #[test]
    fn selector_is_immutable() {
        let old: Deployment = serde_json::from_value(deployment(
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": template()}),
        ))
        .unwrap();
        let mut new = old.clone();
        let mut errs = Errors::new();
        validate_deployment_update(&old, &new, &mut errs);
        assert!(errs.is_empty());
        if let Some(spec) = new.spec.as_mut() {
            spec.selector.match_labels = Some([("app".to_string(), "api".to_string())].into());
        }
        validate_deployment_update(&old, &new, &mut errs);
        assert_eq!(
            errs[0].to_string(),
            "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"api\"}}: field is immutable"
        );
    }
}
