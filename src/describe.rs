//! `skiff describe TYPE NAME`: a readable summary of an object and the Events
//! about it, laid out as `kubectl describe` lays it out.

mod pod;

use anyhow::bail;
use serde_json::Value;

use crate::client::ClusterArgs;
use crate::printer::{TabWriter, age_since};
use skiff_client::discovery::{Discovery, Resource};
use skiff_client::{ApiClient, StatusError, query};

/// Show the details of an object, and its Events
///
/// Examples:
///   skiff describe pod hello
///   skiff describe deploy/web -n demo
///   skiff describe pods          # every pod in the namespace
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// TYPE [NAME...], or TYPE/NAME.
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub targets: Vec<String>,
    /// Namespace of the object [default: the kubeconfig context's, else default].
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Lines of `key:\tvalue` cells, indented by level, aligned at the end as
/// kubectl's describe tabwriter aligns them (padding 2).
#[derive(Default)]
pub struct Describe {
    lines: Vec<String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.cluster.connect()?;
    let discovery = Discovery::load(&client).await?;
    let (resource, names) = match args.targets[0].split_once('/') {
        Some((kind, name)) => {
            if args.targets.len() > 1 {
                bail!("describe TYPE/NAME takes no further names");
            }
            (discovery.by_name(kind)?, vec![name.to_string()])
        }
        None => (
            discovery.by_name(&args.targets[0])?,
            args.targets[1..].to_vec(),
        ),
    };
    let namespace = resource
        .namespaced
        .then(|| client.namespace(args.namespace.as_deref()));
    let objects = if names.is_empty() {
        let list = client
            .get_json(&resource.collection_path(namespace))
            .await?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            match namespace {
                Some(ns) => eprintln!("No resources found in {ns} namespace."),
                None => eprintln!("No resources found"),
            }
        }
        items
    } else {
        let mut objects = Vec::new();
        for name in &names {
            objects.push(
                client
                    .get_json(&resource.object_path(namespace, name))
                    .await?,
            );
        }
        objects
    };
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            println!();
            println!();
        }
        let events = events_about(&client, &discovery, resource, object).await?;
        print!("{}", describe(resource, object, &events));
    }
    Ok(())
}

/// The whole description of `object`.
pub fn describe(resource: &Resource, object: &Value, events: &[Value]) -> String {
    let mut d = Describe::default();
    match resource.kind.as_str() {
        "Pod" if resource.group.is_empty() => pod::describe(&mut d, object),
        "ConfigMap" if resource.group.is_empty() => config_map(&mut d, object),
        _ => generic(&mut d, resource, object),
    }
    d.events(events);
    d.render()
}

/// Events whose involvedObject is `object`, oldest first, found with field
/// selectors on its name, namespace and uid.
async fn events_about(
    client: &ApiClient,
    discovery: &Discovery,
    resource: &Resource,
    object: &Value,
) -> anyhow::Result<Vec<Value>> {
    let Ok(events) = discovery.by_kind("v1", "Event") else {
        return Ok(Vec::new());
    };
    let meta = &object["metadata"];
    let text = |key: &str| meta[key].as_str().unwrap_or("").to_string();
    let namespace = text("namespace");
    let mut selector = vec![format!("involvedObject.name={}", text("name"))];
    if !namespace.is_empty() {
        selector.push(format!("involvedObject.namespace={namespace}"));
    }
    selector.push(format!("involvedObject.kind={}", resource.kind));
    let uid = text("uid");
    if !uid.is_empty() {
        selector.push(format!("involvedObject.uid={uid}"));
    }
    let path = format!(
        "{}{}",
        events.collection_path((!namespace.is_empty()).then_some(namespace.as_str())),
        query(&[("fieldSelector", selector.join(","))])
    );
    let list = match client.get_json(&path).await {
        Ok(list) => list,
        // A server without these field selectors: list all and filter here.
        Err(e)
            if e.downcast_ref::<StatusError>()
                .is_some_and(|s| s.code == 400) =>
        {
            let all = client
                .get_json(
                    &events.collection_path((!namespace.is_empty()).then_some(namespace.as_str())),
                )
                .await?;
            let mut all = all;
            let items = all["items"].take();
            let kept: Vec<Value> = items
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| {
                    let io = &e["involvedObject"];
                    io["name"].as_str() == Some(text("name").as_str())
                        && io["kind"].as_str() == Some(resource.kind.as_str())
                        && (uid.is_empty() || io["uid"].as_str() == Some(uid.as_str()))
                })
                .cloned()
                .collect();
            serde_json::json!({ "items": kept })
        }
        Err(e) => return Err(e),
    };
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    items.sort_by_key(|e| last_seen(e).to_string());
    Ok(items)
}

/// What kubectl describes for kinds without a describer of their own: the
/// metadata, then every other top-level field as nested `Key: value` lines.
fn generic(d: &mut Describe, resource: &Resource, object: &Value) {
    d.metadata(object, resource.namespaced);
    for (key, value) in object.as_object().into_iter().flatten() {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if key == "data" && matches!(resource.kind.as_str(), "Secret") {
            d.section(0, "Data");
            for (k, v) in value.as_object().into_iter().flatten() {
                let len = v.as_str().map(decoded_len).unwrap_or(0);
                d.field(1, k, &format!("{len} bytes"));
            }
            continue;
        }
        d.value(0, &smart_label(key), value);
    }
}

/// A ConfigMap as kubectl shows it: each key, a rule, its value.
fn config_map(d: &mut Describe, object: &Value) {
    d.metadata(object, true);
    d.raw(0, "");
    d.raw(0, "Data");
    d.raw(0, "====");
    for (key, value) in object["data"].as_object().into_iter().flatten() {
        d.raw(0, &format!("{key}:"));
        d.raw(0, "----");
        for line in scalar_text(value).lines() {
            d.raw(0, line);
        }
        d.raw(0, "");
    }
    d.raw(0, "");
    d.raw(0, "BinaryData");
    d.raw(0, "====");
    for (key, value) in object["binaryData"].as_object().into_iter().flatten() {
        let len = value.as_str().map(decoded_len).unwrap_or(0);
        d.raw(0, &format!("{key}: {len} bytes"));
    }
    d.raw(0, "");
}

/// The length of base64 data once decoded.
fn decoded_len(b64: &str) -> usize {
    let trimmed = b64.trim_end_matches('=');
    trimmed.len() * 3 / 4
}

/// The time an event was last seen, for sorting.
fn last_seen(event: &Value) -> &str {
    ["lastTimestamp", "eventTime", "firstTimestamp"]
        .iter()
        .find_map(|k| event[*k].as_str().filter(|s| !s.is_empty()))
        .or_else(|| event["metadata"]["creationTimestamp"].as_str())
        .unwrap_or("")
}

/// `containerPort` -> `Container Port`, as kubectl's generic describer labels fields.
pub fn smart_label(key: &str) -> String {
    if !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return key.to_string();
    }
    let mut out = String::new();
    let chars: Vec<char> = key.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let starts_word = i > 0
            && c.is_ascii_uppercase()
            && (chars[i - 1].is_ascii_lowercase()
                || chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase()));
        if starts_word {
            out.push(' ');
        }
        if i == 0 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl Describe {
    /// `key:\tvalue` at `level` (two spaces each); continuation lines of a
    /// multi-line value keep the value's column.
    pub fn field(&mut self, level: usize, key: &str, value: &str) {
        let indent = "  ".repeat(level);
        let mut parts = value.split('\n');
        let first = parts.next().unwrap_or("");
        self.lines.push(format!("{indent}{key}:\t{first}"));
        for rest in parts {
            self.lines.push(format!("{indent}\t{rest}"));
        }
    }

    /// `key:` heading the lines below it.
    pub fn section(&mut self, level: usize, key: &str) {
        self.lines.push(format!("{}{key}:", "  ".repeat(level)));
    }

    /// A raw line (cells already separated by tabs).
    pub fn raw(&mut self, level: usize, text: &str) {
        self.lines.push(format!("{}{text}", "  ".repeat(level)));
    }

    /// A map of strings (labels, annotations), one `key=value` a line.
    pub fn map(&mut self, level: usize, key: &str, map: &Value) {
        let pairs = sorted_pairs(map);
        if pairs.is_empty() {
            self.field(level, key, "<none>");
        } else {
            self.field(level, key, &pairs.join("\n"));
        }
    }

    /// Name, Namespace, Labels, Annotations.
    pub fn metadata(&mut self, object: &Value, namespaced: bool) {
        let meta = &object["metadata"];
        self.field(0, "Name", meta["name"].as_str().unwrap_or(""));
        if namespaced {
            self.field(0, "Namespace", meta["namespace"].as_str().unwrap_or(""));
        }
        self.map(0, "Labels", &meta["labels"]);
        self.map(0, "Annotations", &meta["annotations"]);
        if let Some(at) = meta["deletionTimestamp"].as_str() {
            self.field(0, "Deletion Timestamp", at);
        }
        if let Some(owner) = controller_of(object) {
            self.field(0, "Controlled By", &owner);
        }
    }

    /// A JSON value as nested `Key: value` lines.
    pub fn value(&mut self, level: usize, key: &str, value: &Value) {
        match value {
            Value::Object(map) if map.is_empty() => self.field(level, key, "<none>"),
            Value::Object(map) => {
                self.section(level, key);
                for (k, v) in map {
                    if k == "managedFields" {
                        continue;
                    }
                    self.value(level + 1, &smart_label(k), v);
                }
            }
            Value::Array(items) if items.is_empty() => self.field(level, key, "<none>"),
            Value::Array(items) => {
                self.section(level, key);
                for item in items {
                    match item {
                        Value::Object(map) => {
                            for (k, v) in map {
                                self.value(level + 1, &smart_label(k), v);
                            }
                        }
                        scalar => self.raw(level + 1, &scalar_text(scalar)),
                    }
                }
            }
            scalar => self.field(level, key, &scalar_text(scalar)),
        }
    }

    /// The `Events:` section.
    pub fn events(&mut self, events: &[Value]) {
        if events.is_empty() {
            self.lines.push("Events:\t<none>".to_string());
            return;
        }
        self.lines.push("Events:".to_string());
        self.raw(1, "Type\tReason\tAge\tFrom\tMessage");
        self.raw(1, "----\t------\t----\t----\t-------");
        for e in events {
            let row = [
                e["type"].as_str().unwrap_or("").to_string(),
                e["reason"].as_str().unwrap_or("").to_string(),
                event_age(e),
                event_source(e),
                e["message"].as_str().unwrap_or("").trim().to_string(),
            ];
            self.raw(1, &row.join("\t"));
        }
    }

    pub fn render(&self) -> String {
        let mut w = TabWriter::new(0, 2);
        for line in &self.lines {
            w.line(line);
        }
        w.render()
    }
}

/// `Kind/name` of the controlling owner.
fn controller_of(object: &Value) -> Option<String> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or(""),
                o["name"].as_str().unwrap_or("")
            )
        })
}

/// `key=value` pairs sorted by key.
fn sorted_pairs(map: &Value) -> Vec<String> {
    let mut pairs: Vec<String> = map
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", scalar_text(v)))
        .collect();
    pairs.sort();
    pairs
}

pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".to_string(),
        other => other.to_string(),
    }
}

/// kubectl's event age: `5s`, or `2m (x3 over 10m)` for a repeated event.
fn event_age(e: &Value) -> String {
    let first = ["firstTimestamp", "eventTime"]
        .iter()
        .find_map(|k| e[*k].as_str().filter(|s| !s.is_empty()))
        .or_else(|| e["metadata"]["creationTimestamp"].as_str());
    if let Some(count) = e["series"]["count"].as_i64() {
        let last = e["series"]["lastObservedTime"].as_str().unwrap_or("");
        return format!(
            "{} (x{count} over {})",
            age_since(last),
            first.map(age_since).unwrap_or_default()
        );
    }
    let count = e["count"].as_i64().unwrap_or(1);
    if count > 1 {
        let last = e["lastTimestamp"].as_str().unwrap_or("");
        return format!(
            "{} (x{count} over {})",
            age_since(last),
            first.map(age_since).unwrap_or_default()
        );
    }
    first.map(age_since).unwrap_or_else(|| "<unknown>".into())
}

/// `source.component[, source.host]`, else the reporting controller.
fn event_source(e: &Value) -> String {
    let component = e["source"]["component"].as_str().unwrap_or("");
    if !component.is_empty() {
        return match e["source"]["host"].as_str().filter(|h| !h.is_empty()) {
            Some(host) => format!("{component}, {host}"),
            None => component.to_string(),
        };
    }
    e["reportingController"].as_str().unwrap_or("").to_string()
}

/// An RFC 3339 time as kubectl describe prints it (RFC 1123 with offset,
/// local time).
pub fn describe_time(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(kind: &str, plural: &str) -> Resource {
        Resource {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            namespaced: true,
            short_names: vec![],
            categories: vec![],
            preferred: true,
        }
    }

    #[test]
    fn labels_fields() {
        assert_eq!(smart_label("containerPort"), "Container Port");
        assert_eq!(smart_label("podIP"), "Pod IP");
        assert_eq!(smart_label("data"), "Data");
        assert_eq!(
            smart_label("app.kubernetes.io/name"),
            "app.kubernetes.io/name"
        );
    }

    #[test]
    fn describes_a_config_map_with_events() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "demo", "labels": {"b": "2", "a": "1"}},
            "data": {"greeting": "hello"}});
        let event = json!({"type": "Normal", "reason": "Synced", "message": "all good\n",
            "firstTimestamp": jiff::Timestamp::now().to_string(), "count": 1,
            "source": {"component": "tester"}});
        let text = describe(&resource("ConfigMap", "configmaps"), &cm, &[event]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "Name:         settings",
                "Namespace:    demo",
                "Labels:       a=1",
                "              b=2",
                "Annotations:  <none>",
                "",
                "Data",
                "====",
                "greeting:",
                "----",
                "hello",
                "",
                "",
                "BinaryData",
                "====",
                "",
                "Events:",
                "  Type    Reason  Age   From    Message",
                "  ----    ------  ----  ----    -------",
                "  Normal  Synced  0s    tester  all good",
            ]
        );
    }

    #[test]
    fn describes_other_kinds_field_by_field() {
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80, "targetPort": 8080}]}});
        let text = describe(&resource("Service", "services"), &svc, &[]);
        let squeezed: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        for want in [
            "Spec:",
            "Cluster IP: 10.96.0.10",
            "Ports:",
            "Port: 80",
            "Target Port: 8080",
            "Events: <none>",
        ] {
            assert!(
                squeezed.iter().any(|l| l == want),
                "no {want:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn no_events_reads_none() {
        let text = describe(
            &resource("Secret", "secrets"),
            &json!({"metadata": {"name": "x", "namespace": "d"}}),
            &[],
        );
        assert!(text.ends_with("Events:       <none>\n"), "{text}");
    }
}
