//! Skiff's Ingress controller as the API sees it: the IngressClass `skiff`
//! (the cluster's default class) and which Ingresses belong to it. The control
//! plane creates the class, writes the Ingresses' status and streams them to
//! the nodes, whose proxies serve them on their HTTP port.

use crate::json::Pointer as _;
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

/// Whether `class` (an IngressClass) is marked the default.
pub fn is_default_class(class: &Value) -> bool {
    crate::meta::annotations(class)
        .and_then(|a| a.get(IS_DEFAULT_CLASS_ANNOTATION))
        .and_then(Value::as_str)
        == Some("true")
}

/// Kubernetes' DefaultIngressClass admission: a new Ingress that names no
/// class (neither `spec.ingressClassName` nor the deprecated annotation) gets
/// the default class; of several defaults, the newest.
pub fn set_default_class(ingress: &mut Value, classes: &[Value]) {
    let names_one = ingress
        .at("/spec/ingressClassName")
        .is_some_and(|c| !c.is_null())
        || crate::meta::annotations(ingress).is_some_and(|a| a.contains_key(CLASS_ANNOTATION));
    if names_one {
        return;
    }
    let newest = classes
        .iter()
        .filter(|c| is_default_class(c))
        .max_by_key(|c| (crate::meta::creation_timestamp(c), crate::meta::name(c)));
    let Some(name) = newest.and_then(|c| crate::meta::name(c)) else {
        return;
    };
    if let Some(spec) = ingress.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("ingressClassName".into(), Value::from(name));
    }
}

/// Whether Skiff serves `ingress`: its `spec.ingressClassName` (or, when that
/// is unset, the deprecated annotation) names `skiff`, or it names no class
/// and so falls to the default class, which is Skiff's.
pub fn is_skiff_ingress(ingress: &Value) -> bool {
    let class = ingress
        .at("/spec/ingressClassName")
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

    #[test]
    fn a_new_ingress_without_a_class_gets_the_default_one() {
        let mut other = skiff_ingress_class();
        other["metadata"]["name"] = json!("other");
        other["metadata"]["annotations"] = json!({});
        let classes = [skiff_ingress_class(), other];
        let mut ingress = json!({"metadata": {"name": "i"}, "spec": {}});
        set_default_class(&mut ingress, &classes);
        assert_eq!(ingress["spec"]["ingressClassName"], "skiff");

        let mut named = json!({"metadata": {"name": "i"}, "spec": {"ingressClassName": "nginx"}});
        set_default_class(&mut named, &classes);
        assert_eq!(named["spec"]["ingressClassName"], "nginx");
        let mut annotated = json!({"metadata": {"name": "i",
            "annotations": {CLASS_ANNOTATION: "nginx"}}, "spec": {}});
        set_default_class(&mut annotated, &classes);
        assert!(annotated["spec"].get("ingressClassName").is_none());
        let mut no_default = json!({"metadata": {"name": "i"}, "spec": {}});
        set_default_class(&mut no_default, &classes[1..]);
        assert!(no_default["spec"].get("ingressClassName").is_none());
    }
}
