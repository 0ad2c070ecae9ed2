//! `audit export`: the log, oldest first, on standard output.

use std::io::Write;

use session_manager::service::audit;

use super::args::ExportFormat;

const CSV_COLUMNS: [&str; 14] = [
    "seq",
    "id",
    "created_at",
    "event_type",
    "status",
    "message",
    "actor_id",
    "user_id",
    "session_id",
    "ip_address",
    "user_agent",
    "metadata",
    "prev_hash",
    "hash",
];

/// Streams the log to standard output, a page at a time.
pub async fn export(
    db: &sea_orm::DatabaseConnection,
    since: Option<chrono::DateTime<chrono::Utc>>,
    format: ExportFormat,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if format == ExportFormat::Csv {
        writeln!(out, "{}", CSV_COLUMNS.join(","))?;
    }
    let count = audit::for_each_event(db, since, |event| match format {
        ExportFormat::Ndjson => {
            let line = serde_json::json!({
                "seq": event.seq,
                "id": event.id,
                "createdAt": event.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "eventType": event.event_type,
                "status": event.status.as_str(),
                "message": event.message,
                "actorId": event.actor_id,
                "userId": event.user_id,
                "sessionId": event.session_id,
                "ipAddress": event.ip_address,
                "userAgent": event.user_agent,
                "metadata": event.metadata,
                "prevHash": event.prev_hash,
                "hash": event.hash,
            });
            writeln!(out, "{line}")
        }
        ExportFormat::Csv => {
            let opt = |id: Option<uuid::Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
            let fields = [
                event.seq.to_string(),
                event.id.to_string(),
                event
                    .created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                event.event_type.clone(),
                event.status.as_str().to_owned(),
                event.message.clone(),
                opt(event.actor_id),
                opt(event.user_id),
                opt(event.session_id),
                event.ip_address.clone().unwrap_or_default(),
                event.user_agent.clone().unwrap_or_default(),
                event.metadata.to_string(),
                event.prev_hash.clone(),
                event.hash.clone(),
            ];
            let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            writeln!(out, "{}", row.join(","))
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    out.flush()?;
    eprintln!("exported {count} events");
    Ok(())
}

/// Writes the stored checkpoints and purge records, oldest first, one
/// JSON object a line (what `audit verify --checkpoint` reads).
pub async fn export_checkpoints(db: &sea_orm::DatabaseConnection) -> anyhow::Result<()> {
    let checkpoints = audit::all_checkpoints(db)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for checkpoint in &checkpoints {
        writeln!(out, "{}", serde_json::to_string(checkpoint)?)?;
    }
    out.flush()?;
    eprintln!(
        "exported {} checkpoints and purge records",
        checkpoints.len()
    );
    Ok(())
}

/// RFC 4180 quoting; a leading formula character is neutralised so a
/// spreadsheet never runs what an attacker put in a User-Agent.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
