//! `skiff get TYPE[/NAME] [NAME...]`: list objects as kubectl does, from the
//! server's tables (`as=Table`), or as YAML, JSON or names; `-w` keeps
//! printing rows as objects change.

use anyhow::bail;
use serde_json::Value;

use crate::client::ClusterArgs;
use crate::printer::{self, OutputFormat, RowStream, TabWriter, TableLayout, TableOptions};
use skiff_client::discovery::{Discovery, Resource};
use skiff_client::watch::Watch;
use skiff_client::{ACCEPT_JSON, ACCEPT_TABLE, ApiClient, StatusError, query};

/// Display one or many objects
///
/// TYPE is a plural, singular, kind or short name (pods, pod, Pod, po; svc,
/// deploy, rs, ds, ns, no, ev, cm, ...), several joined by commas, or `all`.
///
/// Examples:
///   skiff get pods
///   skiff get deploy,svc -n demo -o wide
///   skiff get pod/hello -o yaml
///   skiff get pods -A -l app=web
///   skiff get pods -w
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// TYPE[,TYPE...] [NAME...], or TYPE/NAME...
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub targets: Vec<String>,
    /// Namespace to look in [default: the kubeconfig context's, else default].
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Look in every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Label selector (`app=web`, `tier in (a,b)`, `!canary`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (`status.phase=Running`, `metadata.name=hello`).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Output format: wide, yaml, json or name [default: a table].
    #[arg(short, long, value_enum)]
    pub output: Option<OutputFormat>,
    /// After listing, watch for changes and print each.
    #[arg(short, long)]
    pub watch: bool,
    /// Leave out the table header.
    #[arg(long)]
    pub no_headers: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// One type to get, and the names asked for (none: list them all).
struct Target<'a> {
    resource: &'a Resource,
    names: Vec<String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.cluster.connect()?;
    let discovery = Discovery::load(&client).await?;
    let targets = targets(&discovery, &args.targets)?;
    if args.all_namespaces && targets.iter().any(|t| !t.names.is_empty()) {
        bail!("a resource cannot be retrieved by name across all namespaces");
    }
    let get = Get {
        client: &client,
        args: &args,
    };
    if args.watch {
        return get.watch(&targets).await;
    }
    match args.output {
        None | Some(OutputFormat::Wide) => get.tables(&targets).await,
        Some(format) => get.objects(&targets, format).await,
    }
}

/// Reads `TYPE[,TYPE] [NAME...]` or `TYPE/NAME...` into targets.
fn targets<'a>(discovery: &'a Discovery, typed: &[String]) -> anyhow::Result<Vec<Target<'a>>> {
    let mut out: Vec<Target<'a>> = Vec::new();
    if typed[0].contains('/') {
        for arg in typed {
            let Some((kind, name)) = arg
                .split_once('/')
                .filter(|(k, n)| !k.is_empty() && !n.is_empty())
            else {
                bail!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'skiff get resource/<resource_name>' instead of 'skiff get resource resource/<resource_name>'): {arg:?}"
                );
            };
            let resource = discovery.by_name(kind)?;
            match out.iter_mut().find(|t| t.resource == resource) {
                Some(t) => t.names.push(name.to_string()),
                None => out.push(Target {
                    resource,
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(out);
    }
    let names: Vec<String> = typed[1..].to_vec();
    if let Some(bad) = names.iter().find(|n| n.contains('/')) {
        bail!(
            "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form: {bad:?}"
        );
    }
    for kind in typed[0].split(',').filter(|k| !k.is_empty()) {
        for resource in discovery.resolve(kind)? {
            if !out.iter().any(|t| t.resource == resource) {
                out.push(Target {
                    resource,
                    names: names.clone(),
                });
            }
        }
    }
    Ok(out)
}

struct Get<'a> {
    client: &'a ApiClient,
    args: &'a Args,
}

impl Get<'_> {
    /// The namespace of requests for `r`: none for cluster-scoped kinds or
    /// with `-A`.
    fn namespace(&self, r: &Resource) -> Option<&str> {
        if !r.namespaced || self.args.all_namespaces {
            None
        } else {
            Some(self.client.namespace(self.args.namespace.as_deref()))
        }
    }

    fn list_path(&self, r: &Resource, extra: &[(&str, String)]) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(s) = &self.args.selector {
            params.push(("labelSelector", s.clone()));
        }
        if let Some(s) = &self.args.field_selector {
            params.push(("fieldSelector", s.clone()));
        }
        params.extend(extra.iter().cloned());
        format!("{}{}", r.collection_path(self.namespace(r)), query(&params))
    }

    /// Tables, one per type, a blank line between them.
    async fn tables(&self, targets: &[Target<'_>]) -> anyhow::Result<()> {
        let mut errors: Vec<anyhow::Error> = Vec::new();
        let mut printed = false;
        for target in targets {
            let r = target.resource;
            let mut tables = Vec::new();
            if target.names.is_empty() {
                tables.push(self.client.get_table(&self.list_path(r, &[])).await?);
            } else {
                for name in &target.names {
                    let path = r.object_path(self.namespace(r), name);
                    match self.client.get_table(&path).await {
                        Ok(table) => tables.push(table),
                        Err(e) if e.is::<StatusError>() => errors.push(e),
                        Err(e) => return Err(e),
                    }
                }
            }
            let rows: Vec<&Value> = tables.iter().flat_map(printer::rows).collect();
            let Some(first) = tables.first() else {
                continue;
            };
            if rows.is_empty() {
                continue;
            }
            if printed {
                println!();
            }
            printed = true;
            let layout = TableLayout::new(first, self.table_options(r, targets.len() > 1));
            let mut writer = TabWriter::for_tables();
            if !self.args.no_headers {
                writer.row(layout.headers().iter().cloned());
            }
            for row in rows {
                writer.row(layout.cells(row));
            }
            print!("{}", writer.render());
        }
        if !printed && errors.is_empty() {
            eprintln!("{}", self.nothing_found(targets));
        }
        finish(errors)
    }

    fn table_options(&self, r: &Resource, several_types: bool) -> TableOptions {
        TableOptions {
            wide: self.args.output == Some(OutputFormat::Wide),
            with_namespace: self.args.all_namespaces && r.namespaced,
            name_prefix: several_types.then(|| r.type_name()),
        }
    }

    /// kubectl's message for an empty result.
    fn nothing_found(&self, targets: &[Target<'_>]) -> String {
        let namespaced = targets.iter().any(|t| t.resource.namespaced);
        match (namespaced, self.args.all_namespaces) {
            (true, false) => format!(
                "No resources found in {} namespace.",
                self.client.namespace(self.args.namespace.as_deref())
            ),
            _ => "No resources found".to_string(),
        }
    }

    /// `-o yaml|json|name`: one object as itself, several as a `List`.
    async fn objects(&self, targets: &[Target<'_>], format: OutputFormat) -> anyhow::Result<()> {
        let mut items: Vec<(&Resource, Value)> = Vec::new();
        let mut errors = Vec::new();
        let mut single = targets.len() == 1;
        for target in targets {
            let r = target.resource;
            if target.names.is_empty() {
                single = false;
                let list = self.client.get_json(&self.list_path(r, &[])).await?;
                for mut item in list["items"].as_array().cloned().unwrap_or_default() {
                    set_type(&mut item, r);
                    items.push((r, item));
                }
            } else {
                single &= target.names.len() == 1;
                for name in &target.names {
                    let path = r.object_path(self.namespace(r), name);
                    match self.client.get_json(&path).await {
                        Ok(item) => items.push((r, item)),
                        Err(e) if e.is::<StatusError>() => errors.push(e),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if format == OutputFormat::Name {
            for (r, item) in &items {
                println!("{}", name_line(r, item));
            }
            if items.is_empty() && errors.is_empty() {
                eprintln!("{}", self.nothing_found(targets));
            }
            return finish(errors);
        }
        let value = if single && items.len() == 1 {
            items.pop().map(|(_, item)| item).unwrap_or(Value::Null)
        } else if items.is_empty() && !errors.is_empty() {
            return finish(errors);
        } else {
            printer::list(items.into_iter().map(|(_, item)| item).collect())
        };
        print_object(&value, format)?;
        finish(errors)
    }

    /// `-w`: the current state, then every change, until interrupted.
    async fn watch(&self, targets: &[Target<'_>]) -> anyhow::Result<()> {
        let [target] = targets else {
            bail!("you may only specify a single resource type with --watch");
        };
        if target.names.len() > 1 {
            bail!(
                "watch is only supported on individual resources and resource collections, but {} resources were found",
                target.names.len()
            );
        }
        let r = target.resource;
        let by_name: Vec<(&str, String)> = target
            .names
            .first()
            .map(|n| {
                let mut selector = format!("metadata.name={n}");
                if let Some(s) = &self.args.field_selector {
                    selector = format!("{s},{selector}");
                }
                vec![("fieldSelector", selector)]
            })
            .unwrap_or_default();
        let mut base: Vec<(&str, String)> = Vec::new();
        if let Some(s) = &self.args.selector {
            base.push(("labelSelector", s.clone()));
        }
        if by_name.is_empty() {
            if let Some(s) = &self.args.field_selector {
                base.push(("fieldSelector", s.clone()));
            }
        } else {
            base.extend(by_name);
        }
        let collection = r.collection_path(self.namespace(r));
        let table_mode = matches!(self.args.output, None | Some(OutputFormat::Wide));
        let accept = if table_mode {
            ACCEPT_TABLE
        } else {
            ACCEPT_JSON
        };

        // The current state first, as `get` prints it.
        let listed = self
            .client
            .request(
                http::Method::GET,
                &format!("{collection}{}", query(&base)),
                accept,
                None,
                bytes::Bytes::new(),
            )
            .await?
            .json()?;
        let mut resource_version = listed["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut stream = RowStream::new();
        let mut layout = None;
        let mut header_printed = false;
        if table_mode {
            let l = TableLayout::new(&listed, self.table_options(r, false));
            let rows: Vec<Vec<String>> = printer::rows(&listed).map(|row| l.cells(row)).collect();
            if rows.is_empty() {
                eprintln!("{}", self.nothing_found(targets));
            } else {
                let mut writer = TabWriter::for_tables();
                if !self.args.no_headers {
                    writer.row(l.headers().iter().cloned());
                    stream.seed(l.headers());
                }
                for cells in &rows {
                    writer.row(cells.iter().cloned());
                    stream.seed(cells);
                }
                print!("{}", writer.render());
                header_printed = true;
            }
            if listed["columnDefinitions"].is_array() {
                layout = Some(l);
            }
        } else {
            for mut item in listed["items"].as_array().cloned().unwrap_or_default() {
                set_type(&mut item, r);
                print_watched(&item, r, self.args.output)?;
            }
        }

        loop {
            let mut params = base.clone();
            params.push(("watch", "1".to_string()));
            if !resource_version.is_empty() {
                params.push(("resourceVersion", resource_version.clone()));
            }
            let path = format!("{collection}{}", query(&params));
            let mut watch = Watch::open(self.client, &path, accept).await?;
            while let Some(event) = watch.next().await? {
                if let Some(rv) = event.object["metadata"]["resourceVersion"].as_str() {
                    resource_version = rv.to_string();
                }
                if event.kind == "BOOKMARK" {
                    continue;
                }
                if !table_mode {
                    print_watched(&event.object, r, self.args.output)?;
                    continue;
                }
                if layout.is_none() && event.object["columnDefinitions"].is_array() {
                    layout = Some(TableLayout::new(
                        &event.object,
                        self.table_options(r, false),
                    ));
                }
                let Some(l) = &layout else { continue };
                for row in printer::rows(&event.object) {
                    if !header_printed && !self.args.no_headers {
                        println!("{}", stream.line(l.headers()));
                    }
                    header_printed = true;
                    println!("{}", stream.line(&l.cells(row)));
                }
            }
            // The server ended the watch (its timeout): resume where it was.
        }
    }
}

/// Prints one object seen by a watch in a non-table format.
fn print_watched(object: &Value, r: &Resource, output: Option<OutputFormat>) -> anyhow::Result<()> {
    match output {
        Some(OutputFormat::Name) => println!("{}", name_line(r, object)),
        Some(OutputFormat::Yaml) => print!("---\n{}", printer::to_yaml(object)?),
        Some(format) => print_object(object, format)?,
        None => {}
    }
    Ok(())
}

fn print_object(value: &Value, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Yaml => print!("{}", printer::to_yaml(value)?),
        _ => print!("{}", printer::to_json(value)?),
    }
    Ok(())
}

/// `pod/hello`, `deployment.apps/web`.
fn name_line(r: &Resource, object: &Value) -> String {
    format!(
        "{}/{}",
        r.type_name(),
        object["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// List items come without `kind` and `apiVersion`; kubectl fills them in.
fn set_type(item: &mut Value, r: &Resource) {
    if let Some(map) = item.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(r.api_version()));
        map.entry("kind")
            .or_insert_with(|| Value::String(r.kind.clone()));
    }
}

/// Prints every error but the last, which becomes the command's error.
fn finish(mut errors: Vec<anyhow::Error>) -> anyhow::Result<()> {
    let Some(last) = errors.pop() else {
        return Ok(());
    };
    for e in errors {
        eprintln!("{e:#}");
    }
    Err(last)
}
