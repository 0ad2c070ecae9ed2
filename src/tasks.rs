//! Background maintenance: retention of the audit log.

use std::time::Duration;

use crate::{service::audit, startup::AppState};

/// How often maintenance runs.
const INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Events deleted per transaction, so a large purge never holds the write
/// lock for long.
const PURGE_BATCH: u64 = 5_000;

/// Runs maintenance now and then every [`INTERVAL`] until the runtime stops.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            run_once(&state).await;
        }
    })
}

/// One maintenance pass; failures are logged and retried next time.
pub async fn run_once(state: &AppState) {
    let Ok(retention) = chrono::Duration::from_std(state.config.audit_retention) else {
        return;
    };
    let cutoff = crate::db::now() - retention;
    match audit::purge_before(&state.db, cutoff, PURGE_BATCH).await {
        Ok(0) => tracing::debug!("audit retention: nothing to purge"),
        Ok(purged) => tracing::info!(purged, %cutoff, "audit retention: run finished"),
        Err(err) => tracing::warn!(error = %err, "audit retention: run failed"),
    }
}
