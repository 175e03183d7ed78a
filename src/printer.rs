//! Output as kubectl prints it: server-side tables laid out by a Go-style
//! tabwriter, objects as YAML or JSON with keys sorted (kubectl goes through
//! Go maps, which sort), and `type/name` lines.

use serde_json::{Map, Value};

/// Output formats of `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// The table with every column (priority > 0 too).
    Wide,
    Yaml,
    Json,
    /// `type/name` per object.
    Name,
}

/// Aligns tab-separated cells into columns as Go's `text/tabwriter` does: a
/// column's width holds within a block of consecutive lines that have a cell
/// in it; the last cell of a line is not padded.
pub struct TabWriter {
    min_width: usize,
    padding: usize,
    lines: Vec<Vec<String>>,
}

/// How to print a server-side `Table`.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    /// Include priority > 0 columns (`-o wide`).
    pub wide: bool,
    /// Put a NAMESPACE column first (`-A`).
    pub with_namespace: bool,
    /// Prefix names with `type/` (several types in one `get`).
    pub name_prefix: Option<String>,
}

/// The columns of a table as printed: which cells, under which headers.
#[derive(Debug, Clone)]
pub struct TableLayout {
    /// Indexes into a row's `cells`.
    columns: Vec<usize>,
    /// The index of the `name`-format column, for prefixing.
    name_column: Option<usize>,
    headers: Vec<String>,
    options: TableOptions,
}

/// Prints rows that arrive one by one (`get -w`), keeping columns at least as
/// wide as what came before, with kubectl's tabwriter settings.
pub struct RowStream {
    widths: Vec<usize>,
}

/// kubectl's `get` tabwriter: minimum cell width 6, padding 3.
pub const TABLE_MIN_WIDTH: usize = 6;
pub const TABLE_PADDING: usize = 3;

impl TabWriter {
    pub fn new(min_width: usize, padding: usize) -> TabWriter {
        TabWriter {
            min_width,
            padding,
            lines: Vec::new(),
        }
    }

    /// kubectl get's settings.
    pub fn for_tables() -> TabWriter {
        TabWriter::new(TABLE_MIN_WIDTH, TABLE_PADDING)
    }

    /// Adds a line of cells.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.lines.push(cells.into_iter().map(Into::into).collect());
    }

    /// Adds a line written with `\t` between cells.
    pub fn line(&mut self, text: &str) {
        self.row(text.split('\t'));
    }

    /// The aligned text, each line ending in `\n`.
    pub fn render(&self) -> String {
        let mut widths: Vec<Vec<usize>> = self
            .lines
            .iter()
            .map(|l| vec![0; l.len().saturating_sub(1)])
            .collect();
        self.block_widths(0, 0, self.lines.len(), &mut widths);
        let mut out = String::new();
        for (line, widths) in self.lines.iter().zip(&widths) {
            for (i, cell) in line.iter().enumerate() {
                out.push_str(cell);
                if let Some(&width) = widths.get(i) {
                    let len = cell.chars().count();
                    out.extend(std::iter::repeat_n(' ', width.saturating_sub(len)));
                }
            }
            out.push('\n');
        }
        out
    }

    /// Go's `Writer.format`: within lines `start..end`, each run of lines with
    /// a terminated cell in `column` shares one width, then the next column
    /// is laid out within that run.
    fn block_widths(&self, column: usize, start: usize, end: usize, widths: &mut [Vec<usize>]) {
        let has_cell = |i: usize| self.lines[i].len() > column + 1;
        let mut i = start;
        while i < end {
            if !has_cell(i) {
                i += 1;
                continue;
            }
            let mut j = i;
            let mut width = self.min_width;
            while j < end && has_cell(j) {
                width = width.max(self.lines[j][column].chars().count() + self.padding);
                j += 1;
            }
            for w in &mut widths[i..j] {
                w[column] = width;
            }
            self.block_widths(column + 1, i, j, widths);
            i = j;
        }
    }
}

impl TableLayout {
    /// The layout of a `Table` response's column definitions.
    pub fn new(table: &Value, options: TableOptions) -> TableLayout {
        let mut columns = Vec::new();
        let mut headers = Vec::new();
        let mut name_column = None;
        if options.with_namespace {
            headers.push("NAMESPACE".to_string());
        }
        for (i, def) in table["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if def["priority"].as_i64().unwrap_or(0) > 0 && !options.wide {
                continue;
            }
            if def["format"] == "name" && name_column.is_none() {
                name_column = Some(i);
            }
            columns.push(i);
            headers.push(def["name"].as_str().unwrap_or("").to_ascii_uppercase());
        }
        TableLayout {
            columns,
            name_column,
            headers,
            options,
        }
    }

    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The printed cells of one `TableRow`.
    pub fn cells(&self, row: &Value) -> Vec<String> {
        let mut out = Vec::with_capacity(self.headers.len());
        if self.options.with_namespace {
            let ns = row["object"]["metadata"]["namespace"]
                .as_str()
                .unwrap_or("");
            out.push(ns.to_string());
        }
        for &i in &self.columns {
            let mut text = cell_text(&row["cells"][i]);
            if Some(i) == self.name_column
                && let Some(prefix) = &self.options.name_prefix
            {
                text = format!("{prefix}/{text}");
            }
            out.push(text);
        }
        out
    }
}

impl RowStream {
    pub fn new() -> RowStream {
        RowStream { widths: Vec::new() }
    }

    /// Widens the columns to hold `cells`, as if they had been printed (the
    /// lines a [`TabWriter`] printed before the stream began).
    pub fn seed(&mut self, cells: &[String]) {
        let _ = self.line(cells);
    }

    /// One line, padded to the widest cells seen so far in each column.
    pub fn line(&mut self, cells: &[String]) -> String {
        let mut out = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i == last {
                break;
            }
            let want = (cell.chars().count() + TABLE_PADDING).max(TABLE_MIN_WIDTH);
            if self.widths.len() <= i {
                self.widths.push(want);
            }
            self.widths[i] = self.widths[i].max(want);
            out.extend(std::iter::repeat_n(
                ' ',
                self.widths[i] - cell.chars().count(),
            ));
        }
        out
    }
}

/// The rows of a `Table`.
pub fn rows(table: &Value) -> impl Iterator<Item = &Value> {
    table["rows"].as_array().into_iter().flatten()
}

/// A cell as kubectl prints it (`<none>` for null).
pub fn cell_text(cell: &Value) -> String {
    match cell {
        Value::Null => "<none>".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// `value` with every object's keys sorted, as kubectl prints objects.
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                out.insert(key.clone(), sorted(&map[key]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// An object as `-o yaml` prints it.
pub fn to_yaml(value: &Value) -> anyhow::Result<String> {
    Ok(serde_yaml_ng::to_string(&sorted(value))?)
}

/// An object as `-o json` prints it: four-space indents, a final newline.
pub fn to_json(value: &Value) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&sorted(value), &mut serializer)?;
    out.push(b'\n');
    Ok(String::from_utf8(out)?)
}

/// The `v1 List` kubectl prints for several objects.
pub fn list(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": items,
        "metadata": { "resourceVersion": "" },
    })
}

/// An age as kubectl prints it (`5s`, `3m2s`, `4h`), from an RFC 3339 time;
/// `<unknown>` if it does not parse.
pub fn age_since(timestamp: &str) -> String {
    match timestamp.parse::<jiff::Timestamp>() {
        Ok(t) => skiff_api::table::human_duration(jiff::Timestamp::now().duration_since(t)),
        Err(_) => "<unknown>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tabwriter_aligns_like_kubectl() {
        let mut w = TabWriter::for_tables();
        w.row(["NAME", "READY", "STATUS"]);
        w.row(["a", "0/1", "Pending"]);
        w.row(["longer-name", "1/1", "Running"]);
        assert_eq!(
            w.render(),
            "NAME          READY   STATUS\n\
             a             0/1     Pending\n\
             longer-name   1/1     Running\n"
        );
    }

    #[test]
    fn tabwriter_blocks_end_at_lines_without_the_column() {
        let mut w = TabWriter::new(0, 2);
        w.line("Name:\tp");
        w.line("Containers:");
        w.line("  web:");
        w.line("    Image:\thello:v1");
        w.line("    Restart Count:\t0");
        assert_eq!(
            w.render(),
            "Name:  p\nContainers:\n  web:\n    Image:          hello:v1\n    Restart Count:  0\n"
        );
    }

    fn table() -> Value {
        json!({
            "kind": "Table",
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "priority": 0},
                {"name": "Status", "type": "string", "format": "", "priority": 0},
                {"name": "Nominated Node", "type": "string", "format": "", "priority": 1},
            ],
            "rows": [
                {"cells": ["hello", "Pending", null],
                 "object": {"metadata": {"name": "hello", "namespace": "demo"}}},
            ]
        })
    }

    fn render(layout: &TableLayout, table: &Value) -> String {
        let mut writer = TabWriter::for_tables();
        writer.row(layout.headers().iter().cloned());
        for row in rows(table) {
            writer.row(layout.cells(row));
        }
        writer.render()
    }

    #[test]
    fn tables_hide_wide_columns_unless_asked() {
        let t = table();
        let narrow = TableLayout::new(&t, TableOptions::default());
        assert_eq!(render(&narrow, &t), "NAME    STATUS\nhello   Pending\n");
        let wide = TableLayout::new(
            &t,
            TableOptions {
                wide: true,
                with_namespace: true,
                name_prefix: Some("pod".into()),
            },
        );
        assert_eq!(
            render(&wide, &t),
            "NAMESPACE   NAME        STATUS    NOMINATED NODE\n\
             demo        pod/hello   Pending   <none>\n"
        );
    }

    #[test]
    fn streamed_rows_never_shrink_columns() {
        let mut s = RowStream::new();
        assert_eq!(s.line(&["NAME".into(), "AGE".into()]), "NAME   AGE");
        assert_eq!(
            s.line(&["a-long-name".into(), "1s".into()]),
            "a-long-name   1s"
        );
        assert_eq!(s.line(&["b".into(), "2s".into()]), "b             2s");
    }

    #[test]
    fn objects_print_with_sorted_keys() {
        let obj = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}});
        assert_eq!(
            to_yaml(&obj).unwrap(),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"
        );
        assert_eq!(
            to_json(&obj).unwrap(),
            "{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"Pod\",\n    \"metadata\": {\n        \"name\": \"p\"\n    }\n}\n"
        );
    }
}
