//! Quay's severity levels and how advisories map onto them: a CVSS vector (v2, v3.x or v4) is
//! scored and bucketed as Quay does, except that 10.0 is Critical (Quay calls it Unknown); without
//! a vector, the ecosystem's own label (Debian's `low`…`high`, GitHub's `MODERATE`, Ubuntu's
//! priorities, Red Hat's `Important`) is mapped by name.

use std::str::FromStr;

/// A severity, most severe first; the discriminant is Quay's index (the `level` of a
/// `vulnerability_found` notification means "this index or lower").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// CVSS 9.0–10.0.
    Critical = 0,
    /// CVSS 7.0–8.9.
    High = 1,
    /// CVSS 4.0–6.9.
    Medium = 2,
    /// CVSS 0.1–3.9.
    Low = 3,
    /// Not worth fixing (Debian `unimportant`, Ubuntu `negligible`).
    Negligible = 4,
    /// No usable rating.
    Unknown = 5,
}

impl Severity {
    /// All levels, most severe first.
    pub const ALL: [Severity; 6] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Negligible,
        Severity::Unknown,
    ];

    /// Quay's name, e.g. `High`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "Critical",
            Severity::High => "High",
            Severity::Medium => "Medium",
            Severity::Low => "Low",
            Severity::Negligible => "Negligible",
            Severity::Unknown => "Unknown",
        }
    }

    /// Quay's index: 0 (Critical) … 5 (Unknown).
    pub fn index(self) -> u8 {
        self as u8
    }

    /// The level of a CVSS base score. Quay's table ends at `[9, 10)`, so a perfect 10.0 became
    /// Unknown there; here it is Critical.
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s.is_nan() || s <= 0.0 || s > 10.0 => Severity::Unknown,
            s if s < 4.0 => Severity::Low,
            s if s < 7.0 => Severity::Medium,
            s if s < 9.0 => Severity::High,
            _ => Severity::Critical,
        }
    }

    /// The base score of a CVSS vector (`CVSS:3.1/AV:N/…`, `CVSS:4.0/…`, or a v2 vector), if it
    /// parses.
    pub fn score_vector(vector: &str) -> Option<f64> {
        let vector = vector.trim();
        if let Ok(parsed) = cvss::Cvss::from_str(vector) {
            return Some(parsed.score());
        }
        cvss::v2::Vector::from_str(vector).ok().map(|v| v.score().value())
    }

    /// An ecosystem's own label, by name (case-insensitive).
    pub fn from_label(label: &str) -> Severity {
        match label.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" => Severity::Low,
            "negligible" | "unimportant" => Severity::Negligible,
            _ => Severity::Unknown,
        }
    }

    /// Parses Quay's name.
    pub fn from_name(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
