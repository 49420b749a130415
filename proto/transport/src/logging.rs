//! The tracing subscriber of every fedq binary (`FEDQ_LOG` sets the filter).
//! Spans carry request ids and outcomes, never identifiers, ciphertexts or keys.

fn install(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FEDQ_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// For servers: `info` by default.
pub fn init_tracing() {
    install("info");
}

/// For interactive commands: warnings only by default.
pub fn init_tracing_quiet() {
    install("warn");
}
