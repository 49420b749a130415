//! The tracing subscriber of every fedq binary: `FEDQ_LOG` sets the filter,
//! `FEDQ_LOG_FORMAT=json` writes one JSON object per line (for a log
//! collector) instead of text. Spans carry request ids (the query id the
//! audit log records) and outcomes, never identifiers, ciphertexts or keys.

fn install(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FEDQ_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match std::env::var("FEDQ_LOG_FORMAT").as_deref() {
        // Each line carries its span's fields (query_id, node) at the top
        // level of "span", so a collector joins it to the audit entry.
        Ok("json") => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        Ok("text") | Err(_) => builder.try_init(),
        Ok(other) => {
            eprintln!("warning: FEDQ_LOG_FORMAT={other:?} is neither json nor text; writing text");
            builder.try_init()
        }
    };
}

/// For servers: `info` by default.
pub fn init_tracing() {
    install("info");
}

/// For interactive commands: warnings only by default.
pub fn init_tracing_quiet() {
    install("warn");
}
