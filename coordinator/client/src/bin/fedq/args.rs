//! The command line as clap reads it: commands, arguments, and the checks
//! of values a person types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use fedq_client::DemoArgs;

#[derive(Parser)]
#[command(
    name = "fedq",
    version,
    about = "Privacy-preserving federated lookups and statistics",
    after_help = fedq_proto::exit::TABLE
)]
pub(crate) struct Cli {
    /// The requester's client.toml.
    #[arg(long, global = true, env = "FEDQ_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Print the answers only: no per-node lines, query ids or notes (errors
    /// still go to standard error; the exit code tells the rest).
    #[arg(long, short, global = true)]
    pub(crate) quiet: bool,
    /// No colours (also when NO_COLOR is set, or the output is not a terminal).
    #[arg(long, global = true)]
    pub(crate) no_color: bool,
    #[command(subcommand)]
    pub(crate) command: CliCommand,
}

#[derive(Subcommand)]
pub(crate) enum CliCommand {
    /// Create and manage federations.
    #[command(subcommand)]
    Federation(FederationCommand),
    /// Manage the requester's TFHE keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Does an identifier appear in any partner's records? (hit / no-hit)
    Lookup(LookupArgs),
    /// What statistics can be asked, and at which nodes.
    Catalog {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A differentially private statistic across the federation.
    Stats(StatsArgs),
    /// Privacy budget spent and left at each node, this epoch.
    Budget {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a whole local federation and a few lookups, explaining who learns what.
    Demo(DemoArgs),
    /// Check client.toml and what it names (federation file, TLS files,
    /// signing key) and report every problem with its key path; sends nothing.
    CheckConfig,
    /// Print a shell completion script (e.g. `fedq completions bash >
    /// /etc/bash_completion.d/fedq`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Which parties answer now: the coordinator and, through it, each node.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Tell other agencies working the same target, privately (and list or
    /// cancel the registrations).
    #[command(subcommand)]
    Deconflict(DeconflictCommand),
    /// Standing encrypted lookups: alerted when a node imports the identifier.
    #[command(subcommand)]
    Watch(WatchCommand),
    /// Alerts for this requester: watches with a new hit, and agencies that
    /// registered one of its targets. `--follow` keeps waiting and prints
    /// each new alert.
    Alerts {
        /// Print JSON (one object per line with --follow).
        #[arg(long)]
        json: bool,
        /// Keep the connection open and print alerts as they are raised.
        #[arg(long)]
        follow: bool,
        /// Only alerts with a larger id.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

#[derive(Subcommand)]
pub(crate) enum WatchCommand {
    /// Watch identifiers at every node until a date.
    Add(WatchAddArgs),
    /// Your live watches.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a watch everywhere (its results and alerts are deleted).
    Cancel {
        /// The watch's id, as `add` or `list` print it.
        id: String,
    },
}

#[derive(Args)]
pub(crate) struct WatchAddArgs {
    /// Identifier kind (passport, phone, iban, ...).
    #[arg(long, requires = "value", conflicts_with = "batch")]
    pub(crate) kind: Option<String>,
    /// The identifier.
    #[arg(long, requires = "kind")]
    pub(crate) value: Option<String>,
    /// A batch file (as for `fedq lookup --batch`): one watch per line.
    #[arg(long)]
    pub(crate) batch: Option<PathBuf>,
    /// Purpose, as the nodes' policies admit it for lookups.
    #[arg(long, value_parser = stated)]
    pub(crate) purpose: String,
    /// Case reference (audited at every node).
    #[arg(long = "case", value_parser = stated)]
    pub(crate) case_reference: String,
    /// Legal basis (else `legal_basis` in client.toml).
    #[arg(long)]
    pub(crate) legal_basis: Option<String>,
    /// Last day of the watch (yyyy-mm-dd, UTC, inclusive) or an RFC 3339 time.
    #[arg(long, value_parser = until)]
    pub(crate) until: i64,
}

#[derive(Subcommand)]
pub(crate) enum DeconflictCommand {
    /// Register that your agency works this target, until a date.
    Register(DeconflictRegisterArgs),
    /// Your live registrations.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel one of your registrations (its alerts go with it).
    Cancel {
        /// The registration's id, as `register` or `list` print it.
        id: String,
    },
}

#[derive(Args)]
pub(crate) struct DeconflictRegisterArgs {
    /// Identifier kind (passport, phone, iban, ...).
    #[arg(long)]
    pub(crate) kind: String,
    /// The identifier.
    #[arg(long)]
    pub(crate) value: String,
    /// Your case reference (sealed: only an agency on the same target reads it).
    #[arg(long = "case", value_parser = stated)]
    pub(crate) case_reference: String,
    /// How the other agency reaches your desk (sealed likewise).
    #[arg(long, value_parser = stated)]
    pub(crate) contact: String,
    /// Last day of the registration (yyyy-mm-dd, UTC, inclusive) or an RFC 3339 time.
    #[arg(long, value_parser = until)]
    pub(crate) until: i64,
    /// Purpose, as the nodes' policies admit it for deconfliction.
    #[arg(long, default_value = "deconfliction", value_parser = stated)]
    pub(crate) purpose: String,
    /// Legal basis (else `legal_basis` in client.toml).
    #[arg(long)]
    pub(crate) legal_basis: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `--until`: a date means the end of that day (UTC); a time is taken as is.
fn until(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date
            .and_hms_opt(23, 59, 59)
            .map(|t| t.and_utc().timestamp())
            .ok_or_else(|| "not a valid date".to_owned());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|_| "a date (yyyy-mm-dd) or an RFC 3339 time".to_owned())
}

#[derive(Subcommand)]
pub(crate) enum FederationCommand {
    /// Write a ready local federation: CA, certificates, configs.
    Init {
        /// Output directory.
        #[arg(long)]
        dir: PathBuf,
        /// Node ids, comma-separated (e.g. fr,de,nl).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// First port (coordinator; nodes follow). Default: free ports.
        #[arg(long)]
        base_port: Option<u16>,
        /// The investigator to create (looks identifiers up).
        #[arg(long, default_value = "alice")]
        requester: String,
        /// The researcher to create (asks statistics): by default a node lets
        /// investigators look up and researchers ask statistics, nothing else.
        #[arg(long, default_value = "rosa")]
        researcher: String,
        /// The requester's agency.
        #[arg(long, default_value = "demo-agency")]
        agency: String,
        /// Bucket bits (at most 12 for 1,000,000 records per node).
        #[arg(long, default_value_t = fedq_proto::federation::DEFAULT_BUCKET_BITS)]
        bucket_bits: u8,
        /// Tag bits compared under encryption.
        #[arg(long, default_value_t = fedq_proto::federation::DEFAULT_TAG_BITS)]
        tag_bits: u8,
        /// Minimum padded bucket size.
        #[arg(long, default_value_t = fedq_proto::federation::DEFAULT_PADDED_CANDIDATES)]
        padded_candidates: usize,
        /// How far lookups compress their encrypted tags: packed (batches at
        /// ~3.4 KB per item and node), single (24.6 KB) or none (430 KB).
        /// Less compression leaks less of the nodes' tags to a requester
        /// that can name candidate tables (README, "How a lookup stays
        /// private").
        #[arg(long, default_value_t = fedq_proto::federation::TagCompression::Packed)]
        compression: fedq_proto::federation::TagCompression,
        /// Overwrite an existing federation.
        #[arg(long)]
        force: bool,
    },
    /// Add a requester: certificate, signing key, client.toml, and its entry
    /// (with public key) in federation.toml. Nodes admit it once their policy does.
    AddRequester {
        /// The federation directory (as given to `federation init`).
        #[arg(long)]
        dir: PathBuf,
        /// Requester id (lowercase letters, digits, '-').
        #[arg(long)]
        name: String,
        /// The requester's agency.
        #[arg(long)]
        agency: String,
        /// investigator, researcher or auditor.
        #[arg(long)]
        role: String,
    },
    /// List the federation's parties: coordinator, nodes, requesters.
    List {
        /// The federation's directory.
        #[arg(long)]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a requester from federation.toml: every node and the
    /// coordinator refuse it within seconds, without a restart.
    RemoveRequester {
        /// The federation's directory.
        #[arg(long)]
        dir: PathBuf,
        /// The requester's id.
        #[arg(long)]
        name: String,
    },
    /// Pin a node's OPRF public key in federation.toml: requesters then
    /// refuse fingerprints that node proves under any other key (nobody
    /// relaying the OPRF can answer for it).
    PinOprfKey {
        /// The federation's directory.
        #[arg(long)]
        dir: PathBuf,
        /// The node's id.
        #[arg(long)]
        node: String,
        /// The key, as `fedq-node oprf-key` prints it.
        #[arg(long)]
        key: String,
        /// Drop the keys pinned before (once a rotation has finished).
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Make the TFHE keys (secret key stays in a 0600 file) and register the public key.
    Init {
        /// Make new keys even if some exist.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
pub(crate) struct LookupArgs {
    /// Identifier kind: passport, national_id, phone, email, iban, crypto_wallet, name_dob.
    #[arg(long, requires = "value", conflicts_with = "batch")]
    pub(crate) kind: Option<String>,
    /// The identifier, in any usual spelling.
    #[arg(long, requires = "kind")]
    pub(crate) value: Option<String>,
    /// CSV file of `kind,value` rows (`-`: standard input).
    #[arg(long)]
    pub(crate) batch: Option<PathBuf>,
    /// Purpose of the request.
    #[arg(long, value_parser = stated)]
    pub(crate) purpose: String,
    /// Case reference.
    #[arg(long = "case", value_parser = stated)]
    pub(crate) case_reference: String,
    /// Legal basis (default: legal_basis in client.toml).
    #[arg(long)]
    pub(crate) legal_basis: Option<String>,
    /// Also ask which jurisdictions hit; each node's policy decides whether it
    /// reveals its own answer (others are reported as withheld).
    #[arg(long, requires = "authorization")]
    pub(crate) disclose: bool,
    /// The authorization reference a disclosure is asked under.
    #[arg(long, requires = "disclose")]
    pub(crate) authorization: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Exit 0 even when some node did not answer (results then say
    /// `unknown` where nothing was established); without it, exit 3.
    #[arg(long)]
    pub(crate) allow_partial: bool,
}

#[derive(Args)]
pub(crate) struct StatsArgs {
    /// Table name (see `fedq catalog`).
    #[arg(long)]
    pub(crate) table: String,
    /// count | sum:<column> | mean:<column> | histogram:<column>
    #[arg(long)]
    pub(crate) measure: String,
    /// At most two group-by columns, comma-separated (e.g. category,month).
    #[arg(long)]
    pub(crate) group_by: Option<String>,
    /// Filters such as sector=finance or date>=2025-01-01 (repeatable).
    #[arg(long = "where")]
    pub(crate) filters: Vec<String>,
    /// Pure DP privacy parameter (a positive number).
    #[arg(long, conflicts_with = "rho", required_unless_present = "rho", allow_negative_numbers = true, value_parser = positive)]
    pub(crate) epsilon: Option<f64>,
    /// zCDP privacy parameter (a positive number).
    #[arg(long, allow_negative_numbers = true, value_parser = positive)]
    pub(crate) rho: Option<f64>,
    /// Purpose of the request.
    #[arg(long, value_parser = stated)]
    pub(crate) purpose: String,
    /// Case reference.
    #[arg(long = "case", default_value = "")]
    pub(crate) case_reference: String,
    /// Legal basis (default: legal_basis in client.toml).
    #[arg(long)]
    pub(crate) legal_basis: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Exit 0 even when some node did not contribute; without it, exit 3.
    #[arg(long)]
    pub(crate) allow_partial: bool,
    /// Print, per node, the noise and 95% interval the query would have and
    /// what it would cost; read nothing and spend nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// A privacy parameter: finite and greater than zero (each node also has
/// its own minimum, which it states when it refuses).
fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        Ok(_) => Err("must be a finite number greater than zero".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// A purpose or case reference: something a person wrote, not blank (it is
/// what the audit log and the node's policy read).
fn stated(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}
