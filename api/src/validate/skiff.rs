//! Skiff's own kinds: Component (skiff.dev).

use super::Errors;
use super::decode::ComponentObject;
use crate::component::{ComponentRef, object_name};
use crate::status::FieldError;

/// Component: `spec.name`, `spec.tag` and `spec.digest` are well-formed, and the
/// object is named `<spec.name>.<spec.tag>`.
pub(crate) fn validate_component(c: &ComponentObject, errs: &mut Errors) {
    let Some(spec) = &c.spec else {
        errs.push(FieldError::required("spec", ""));
        return;
    };
    let mut well_formed = true;
    if spec.name.is_empty() {
        well_formed = false;
        errs.push(FieldError::required("spec.name", ""));
    } else if let Some(why) = name_problem(&spec.name) {
        well_formed = false;
        errs.push(FieldError::invalid("spec.name", spec.name.as_str(), why));
    }
    if spec.tag.is_empty() {
        well_formed = false;
        errs.push(FieldError::required("spec.tag", ""));
    } else if spec.tag.contains(':') || ComponentRef::parse(&format!("x:{}", spec.tag)).is_err() {
        well_formed = false;
        errs.push(FieldError::invalid(
            "spec.tag",
            spec.tag.as_str(),
            "must be 1-63 lower case alphanumeric characters, '-' or '.', starting with an alphanumeric character",
        ));
    }
    if spec.digest.is_empty() {
        errs.push(FieldError::required("spec.digest", ""));
    } else {
        match ComponentRef::parse(&spec.digest) {
            Ok(ComponentRef::Digest(_)) => {}
            Ok(ComponentRef::Tagged { .. }) => errs.push(FieldError::invalid(
                "spec.digest",
                spec.digest.as_str(),
                "must be sha256: and 64 lower-case hex digits",
            )),
            Err(why) => errs.push(FieldError::invalid(
                "spec.digest",
                spec.digest.as_str(),
                why.to_string(),
            )),
        }
    }
    let name = c.metadata.name.as_deref().unwrap_or("");
    if well_formed && !name.is_empty() {
        let expected = object_name(&spec.name, &spec.tag);
        if name != expected {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                format!("must be <spec.name>.<spec.tag>, {expected:?}"),
            ));
        }
    }
}

/// Why `name` cannot be a Component's `spec.name`: a reference's name alone,
/// without a tag.
fn name_problem(name: &str) -> Option<String> {
    match ComponentRef::parse(name) {
        Err(why) => Some(why.to_string()),
        Ok(_) if name.contains(':') => Some(format!("component name {name:?} may not contain ':'")),
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn strings(errs: &Errors) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn components() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let comp = |name: &str, spec: Value| -> ComponentObject {
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
        };
        let spec = |n: &str, t: &str, d: &str| json!({"name": n, "tag": t, "digest": d, "size": 1, "exports": [], "kind": "Http"});
        let mut errs = Errors::new();
        validate_component(&comp("hello.v1", spec("hello", "v1", &digest)), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        validate_component(&comp("hello.v2", spec("hello", "v1", &digest)), &mut errs);
        assert_eq!(
            strings(&errs),
            [
                "metadata.name: Invalid value: \"hello.v2\": must be <spec.name>.<spec.tag>, \"hello.v1\""
            ]
        );
        let mut errs = Errors::new();
        validate_component(&comp("x", spec("Hello", "v1:2", "sha256:xyz")), &mut errs);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.name", "spec.tag", "spec.digest"]);
    }
}
