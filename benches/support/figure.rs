//! One measured figure as a benchmark hands it to the one-table harness
//! (`benches/cluster.rs`): the scenario and its size, the figure as printed,
//! the budget from DESIGN.md where one exists, and a peer's figure, measured in
//! the same run or published by others (and then marked so).
//!
//! Shared by the benchmarks through `benches/support/mod.rs`; a benchmark names it
//! as `crate::support::figure::Figure`, so that the harness, which includes the
//! benchmarks as modules, collects one type.

use super::table::format_grid;

/// One line of the harness's table.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    pub scenario: String,
    /// How much work the figure is for ("100 pods", "1,000 nodes").
    pub size: String,
    /// The figure as printed, with its unit; "not measured yet" when there is none.
    pub figure: String,
    /// DESIGN.md's budget for this row, as printed.
    pub budget: Option<String>,
    /// The figure against the budget, oriented so that at most 1.00 meets it.
    pub budget_ratio: Option<f64>,
    pub peer: Option<Peer>,
}

/// What the figure is compared with.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's figure with its unit and name ("4,410 /s wasmtime serve").
    pub figure: String,
    /// Whether this run measured it, or it is a published figure of another
    /// system on other hardware.
    pub measured: bool,
    /// Skiff's figure divided by the peer's (for a throughput, above 1 is
    /// better; for a latency or a size, below 1 is better).
    pub ratio: Option<f64>,
}

impl Figure {
    pub fn new(scenario: impl Into<String>, size: impl Into<String>, figure: String) -> Self {
        Figure {
            scenario: scenario.into(),
            size: size.into(),
            figure,
            ..Figure::default()
        }
    }

    /// A scenario the harness does not measure yet: a row that says so, never a figure.
    pub fn not_measured(scenario: &str, size: &str, budget: Option<&str>) -> Self {
        Figure {
            scenario: scenario.into(),
            size: size.into(),
            figure: "not measured yet".into(),
            budget: budget.map(String::from),
            ..Figure::default()
        }
    }

    pub fn budget(mut self, budget: impl Into<String>, ratio: f64) -> Self {
        self.budget = Some(budget.into());
        self.budget_ratio = ratio.is_finite().then_some(ratio);
        self
    }

    /// A peer measured in this run.
    pub fn measured_peer(mut self, figure: impl Into<String>, ratio: f64) -> Self {
        self.peer = Some(Peer {
            figure: figure.into(),
            measured: true,
            ratio: ratio.is_finite().then_some(ratio),
        });
        self
    }

    /// A published figure of another system (not measured here).
    pub fn published_peer(mut self, figure: impl Into<String>, ratio: Option<f64>) -> Self {
        self.peer = Some(Peer {
            figure: figure.into(),
            measured: false,
            ratio: ratio.filter(|r| r.is_finite()),
        });
        self
    }
}

/// The harness's table: scenario, size, figure, budget, its ratio, peer, its ratio.
pub fn format_figures(figures: &[Figure]) -> String {
    let ratio = |r: Option<f64>| {
        r.map(|x| {
            if x != 0.0 && x.abs() < 0.1 {
                format!("{x:.4}")
            } else {
                format!("{x:.2}")
            }
        })
        .unwrap_or_default()
    };
    let mut lines = vec![
        [
            "scenario",
            "size",
            "figure",
            "budget",
            "vs budget",
            "peer",
            "vs peer",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for f in figures {
        let (peer, peer_ratio) = match &f.peer {
            Some(p) => (
                format!(
                    "{} ({})",
                    p.figure,
                    if p.measured { "same run" } else { "published" }
                ),
                ratio(p.ratio),
            ),
            None => (String::new(), String::new()),
        };
        lines.push(vec![
            f.scenario.clone(),
            f.size.clone(),
            f.figure.clone(),
            f.budget.clone().unwrap_or_default(),
            ratio(f.budget_ratio),
            peer,
            peer_ratio,
        ]);
    }
    format_grid(&lines)
}

/// `1234567.0` as "1,234,567".
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
