//! Skiff's Ingress controller as the API sees it: the IngressClass `skiff`
//! (the cluster's default class) and which Ingresses belong to it. The control
//! plane creates the class, writes the Ingresses' status and streams them to
//! the nodes, whose proxies serve them on their HTTP port.

use serde_json::{Value, json};

/// The name of Skiff's IngressClass.
pub const CLASS_NAME: &str = "skiff";
/// `spec.controller` of Skiff's IngressClass.
pub const CONTROLLER: &str = "skiff.dev/ingress";
/// Marks an IngressClass as the one for Ingresses that name none.
pub const IS_DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The class annotation Ingresses used before `spec.ingressClassName`
/// (deprecated, still honoured by Kubernetes' controllers).
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Skiff's IngressClass, as the control plane creates it.
pub fn skiff_ingress_class() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {
            "name": CLASS_NAME,
            "annotations": {IS_DEFAULT_CLASS_ANNOTATION: "true"},
        },
        "spec": {"controller": CONTROLLER},
    })
}

/// Whether Skiff serves `ingress`: its `spec.ingressClassName` (or, when that
/// is unset, the deprecated annotation) names `skiff`, or it names no class
/// and so falls to the default class, which is Skiff's.
pub fn is_skiff_ingress(ingress: &Value) -> bool {
    let class = ingress
        .pointer("/spec/ingressClassName")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .or_else(|| {
            crate::meta::annotations(ingress)?
                .get(CLASS_ANNOTATION)?
                .as_str()
                .filter(|c| !c.is_empty())
        });
    class.is_none_or(|c| c == CLASS_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiff_serves_its_class_and_ingresses_without_one() {
        let ingress = |spec: Value, annotations: Value| json!({"metadata": {"name": "i", "annotations": annotations}, "spec": spec});
        assert!(is_skiff_ingress(&ingress(json!({}), json!({}))));
        assert!(is_skiff_ingress(&ingress(
            json!({"ingressClassName": "skiff"}),
            json!({})
        )));
        assert!(!is_skiff_ingress(&ingress(
            json!({"ingressClassName": "nginx"}),
            json!({})
        )));
        assert!(is_skiff_ingress(&ingress(
            json!({}),
            json!({CLASS_ANNOTATION: "skiff"})
        )));
        assert!(!is_skiff_ingress(&ingress(
            json!({}),
            json!({CLASS_ANNOTATION: "nginx"})
        )));
        // The field wins over the annotation.
        assert!(is_skiff_ingress(&ingress(
            json!({"ingressClassName": "skiff"}),
            json!({CLASS_ANNOTATION: "nginx"})
        )));
        assert_eq!(skiff_ingress_class()["spec"]["controller"], CONTROLLER);
    }
}
