//! The table every benchmark prints: scenario, figure, budget, peer, ratio; and
//! plain aligned columns for a benchmark whose figures need columns of their own.
//! Shared by the benchmarks through `benches/support/mod.rs`.

use std::fmt::Write as _;

/// One line of the benchmark table.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub scenario: String,
    pub figure: String,
    pub budget: Option<String>,
    /// A published figure of a comparable system (filled by later benchmarks).
    pub peer: Option<String>,
    /// figure / budget (or figure / peer): at most 1 meets the budget.
    pub ratio: Option<f64>,
}

/// Formats rows as an aligned table; the peer column appears once a row has one.
pub fn format_table(rows: &[Row]) -> String {
    let with_peer = rows.iter().any(|r| r.peer.is_some());
    let cells = |r: &Row| {
        let mut cells = vec![
            r.scenario.clone(),
            r.figure.clone(),
            r.budget.clone().unwrap_or_default(),
        ];
        if with_peer {
            cells.push(r.peer.clone().unwrap_or_default());
        }
        cells.push(r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default());
        cells
    };
    let mut header: Vec<String> = ["scenario", "figure", "budget"].map(String::from).to_vec();
    if with_peer {
        header.push("peer".into());
    }
    header.push("ratio".into());
    let lines: Vec<Vec<String>> = std::iter::once(header)
        .chain(rows.iter().map(cells))
        .collect();
    format_grid(&lines)
}

/// Formats lines of cells (the first line the header) as left-aligned columns,
/// for a benchmark whose figures need columns of their own.
pub fn format_grid(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .map(|l| l.get(c).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            let _ = write!(text, "{cell:<width$}  ", width = widths[c]);
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}
