//! Logging set-up.

use tracing::{Level, Metadata};
use tracing_subscriber::{EnvFilter, filter::filter_fn, fmt, prelude::*};

use crate::config::LogFormat;

/// Targets whose `trace` output prints what goes over the wire, and with
/// it bearer tokens and passwords: tungstenite logs every WebSocket frame
/// and message in full at `trace` (`received frame …`, `Received message
/// …`, with `connection_init`'s `authorization` and any inline `signIn`
/// password). Their `debug` output and above (handshake done, close
/// frames) carries no payload. The rest of the HTTP stack was checked at
/// `RUST_LOG=trace` with a bearer header and an inline password: hyper 1
/// emits no tracing events without its unstable `tracing` feature (its
/// `trace!` calls give sizes and header counts only, never header values
/// or bodies), `axum::serve` logs accepted connections, `tower_http` the
/// status and latency (in the request's span, which carries its id); h2
/// is not linked in; SeaORM's and sqlx's statement logging is off
/// (`sqlx_logging(false)`).
const WIRE_TARGETS: [&str; 2] = ["tungstenite", "tokio_tungstenite"];

/// The most verbose level logged for [`WIRE_TARGETS`], whatever `RUST_LOG`
/// asks for.
const WIRE_MAX_LEVEL: Level = Level::DEBUG;

/// Installs the global subscriber; `RUST_LOG` overrides the default level,
/// except that `WIRE_TARGETS` never log beyond `WIRE_MAX_LEVEL` (a
/// second filter that `RUST_LOG` cannot reach). Logs go to standard error,
/// so `print-schema` and `audit export` keep a clean standard output.
/// `colours`: standard error is a terminal (the binary knows).
pub fn init(format: LogFormat, colours: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,tower_http=info"));
    // Colours only for a terminal: escape codes are noise in a log file,
    // and writing them was a twentieth of `/auth/check`'s instructions
    // (the request span's fields are formatted for every request).
    let layer = fmt::layer().with_ansi(colours).with_writer(std::io::stderr);
    // The filters are global (layers of their own), not the fmt layer's
    // per-layer filter: with one output there is nothing to filter per
    // layer, and a per-layer filter's bookkeeping ran on every enter and
    // exit of every request's span.
    let registry = tracing_subscriber::registry()
        .with(filter_fn(is_allowed))
        .with(filter);
    match format {
        LogFormat::Text => registry.with(layer).init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).init(),
    }
}

/// Whether a span or event may be logged at all (before `RUST_LOG` has its
/// say): everything except the wire targets beyond their cap.
pub fn is_allowed(metadata: &Metadata<'_>) -> bool {
    allowed(metadata.target(), *metadata.level())
}

fn allowed(target: &str, level: Level) -> bool {
    let on_the_wire = WIRE_TARGETS.iter().any(|wire| {
        target
            .strip_prefix(wire)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    });
    // More verbose levels compare greater: TRACE > DEBUG > INFO.
    !on_the_wire || level <= WIRE_MAX_LEVEL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_targets_are_capped_at_debug_and_the_rest_pass() {
        let cases = [
            ("tungstenite::protocol", Level::TRACE, false),
            ("tungstenite::protocol::frame", Level::TRACE, false),
            ("tungstenite", Level::TRACE, false),
            ("tokio_tungstenite", Level::TRACE, false),
            ("tokio_tungstenite::compat", Level::TRACE, false),
            ("tungstenite::protocol", Level::DEBUG, true),
            ("tokio_tungstenite", Level::INFO, true),
            ("tungstenite::handshake", Level::WARN, true),
            ("tungstenite_lookalike", Level::TRACE, true),
            ("session_manager::transport::ws", Level::TRACE, true),
            ("hyper::proto::h1::conn", Level::TRACE, true),
            ("sea_orm", Level::TRACE, true),
        ];
        for (target, level, expected) in cases {
            assert_eq!(allowed(target, level), expected, "{target} at {level}");
        }
    }
}
