//! The vocabulary of the demo federation's `incidents` table: the synthetic
//! data generator writes these values and `fedq federation init` publishes
//! them as the table's public group-by domains, so both read them from here.

/// Incident categories (public domain of `category`).
#[rustfmt::skip]
pub const CATEGORIES: &[&str] = &["phishing", "ransomware", "fraud", "ddos", "data_breach", "malware", "insider", "other"];

/// Economic sectors (public domain of `sector`).
#[rustfmt::skip]
pub const SECTORS: &[&str] = &["finance", "health", "energy", "government", "retail", "telecom", "transport", "education"];
