//! Samples and their summaries: median, minimum, maximum and percentiles, and the Markdown table
//! with the Berth/peer ratio per figure.

use serde_json::{Value, json};

/// One measured figure: its samples for Berth and, when a peer runs it, for the peer.
#[derive(Debug, Clone)]
pub struct Figure {
    /// The scenario, e.g. `1. push`.
    pub scenario: String,
    /// What is measured, e.g. `256 MiB layer`.
    pub name: String,
    /// The unit, e.g. `MB/s`.
    pub unit: String,
    /// Whether more is better (throughput) or less is (latency, memory).
    pub higher_is_better: bool,
    /// Berth's samples.
    pub berth: Vec<f64>,
    /// The peer's samples (empty when no peer runs it).
    pub peer: Vec<f64>,
    /// A target to compare with, in words.
    pub target: String,
}

/// The value at quantile `q` (0..=1) of `samples` (nearest rank).
pub fn quantile(samples: &[f64], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

fn fmt(x: Option<f64>) -> String {
    match x {
        None => "—".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn summary(samples: &[f64]) -> String {
    if samples.is_empty() {
        return "—".into();
    }
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{} ({}–{})",
        fmt(quantile(samples, 0.5)),
        fmt(Some(min)),
        fmt(Some(max))
    )
}

impl Figure {
    /// Berth's median over the peer's: above 1 means Berth is ahead when more is better.
    pub fn ratio(&self) -> Option<f64> {
        let b = quantile(&self.berth, 0.5)?;
        let p = quantile(&self.peer, 0.5)?;
        // A ratio of signed or zero figures means nothing.
        (p > 0.0 && b >= 0.0).then(|| b / p)
    }

    /// The figure and every sample, as JSON.
    pub fn json(&self) -> Value {
        json!({
            "scenario": self.scenario, "name": self.name, "unit": self.unit,
            "higher_is_better": self.higher_is_better, "target": self.target,
            "berth": self.berth, "peer": self.peer,
            "berth_median": quantile(&self.berth, 0.5), "peer_median": quantile(&self.peer, 0.5),
            "ratio": self.ratio(),
        })
    }
}

/// The Markdown table of all figures.
pub fn table(figures: &[Figure]) -> String {
    let mut out = String::from(
        "| scenario | figure | unit | Berth median (min–max) | Distribution median (min–max) | Berth/Distribution | target |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for f in figures {
        let ratio = f.ratio().map_or("—".into(), |r| format!("{r:.2}×"));
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            f.scenario,
            f.name,
            f.unit,
            summary(&f.berth),
            summary(&f.peer),
            ratio,
            f.target
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_ratios() {
        let s = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(quantile(&s, 0.5), Some(3.0));
        assert_eq!(quantile(&s, 0.99), Some(5.0));
        assert_eq!(quantile(&s, 0.0), Some(1.0));
        assert_eq!(quantile(&[], 0.5), None);
        let f = Figure {
            scenario: "1".into(),
            name: "x".into(),
            unit: "MB/s".into(),
            higher_is_better: true,
            berth: vec![200.0, 100.0, 300.0],
            peer: vec![100.0],
            target: "≥ 1×".into(),
        };
        assert_eq!(f.ratio(), Some(2.0));
        assert!(table(&[f]).contains("| 1 | x | MB/s | 200 (100–300) | 100 (100–100) | 2.00× | ≥ 1× |"));
    }
}
