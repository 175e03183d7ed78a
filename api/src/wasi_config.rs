//! Which ConfigMaps and Secrets serve a pod's `wasi:config/store` (beyond
//! Kubernetes, as Spin's variables): the pod annotation
//! [`ANNOTATION`], a comma-separated list of `ConfigMap/NAME` and
//! `Secret/NAME` in the pod's namespace. Every key of each becomes a config
//! key; a key in a later source replaces the same key in an earlier one.
//! The node authorizer counts these as objects the pod refers to, so the
//! node that runs the pod is sent them, and only that node.

/// The pod annotation naming the sources.
pub const ANNOTATION: &str = "skiff.dev/wasi-config";

/// The kind of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    ConfigMap,
    Secret,
}

/// One source: a ConfigMap or a Secret, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source<'a> {
    pub kind: SourceKind,
    pub name: &'a str,
}

/// The sources the annotation's `value` names, in order; an error, for the
/// user, when it names something else.
pub fn sources(value: &str) -> Result<Vec<Source<'_>>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((kind, name)) = item.split_once('/') else {
            return Err(format!(
                "{item:?} is not KIND/NAME (ConfigMap/NAME or Secret/NAME)"
            ));
        };
        let kind = match kind.to_ascii_lowercase().as_str() {
            "configmap" | "configmaps" | "cm" => SourceKind::ConfigMap,
            "secret" | "secrets" => SourceKind::Secret,
            _ => {
                return Err(format!("{item:?}: the kind must be ConfigMap or Secret"));
            }
        };
        if name.is_empty() || name.contains('/') {
            return Err(format!("{item:?}: the name must be one object's name"));
        }
        out.push(Source { kind, name });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_kind_slash_name_in_order() {
        let got = sources(" ConfigMap/app, secret/db ,cm/more,").expect("parses");
        assert_eq!(
            got,
            [
                Source {
                    kind: SourceKind::ConfigMap,
                    name: "app"
                },
                Source {
                    kind: SourceKind::Secret,
                    name: "db"
                },
                Source {
                    kind: SourceKind::ConfigMap,
                    name: "more"
                },
            ]
        );
        assert_eq!(sources("").expect("empty"), []);
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        assert_eq!(
            sources("app").unwrap_err(),
            "\"app\" is not KIND/NAME (ConfigMap/NAME or Secret/NAME)"
        );
        assert_eq!(
            sources("Pod/x").unwrap_err(),
            "\"Pod/x\": the kind must be ConfigMap or Secret"
        );
        assert_eq!(
            sources("Secret/").unwrap_err(),
            "\"Secret/\": the name must be one object's name"
        );
    }
}
