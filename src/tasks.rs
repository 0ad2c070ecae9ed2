//! Background maintenance: recording expired sessions, retention of ended
//! sessions and of the audit log.

use std::{sync::atomic::Ordering, time::Duration};

use crate::{
    config::Config,
    db,
    metrics::Metrics,
    service::{audit, outbox, session, throttle},
    state::AppState,
};

/// How often maintenance runs.
const INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Rows deleted per statement or transaction, so a large clean-up never
/// holds the write lock for long.
const BATCH: u64 = 1_000;
/// Expiries recorded per round, and rounds per pass at most (a larger
/// backlog is worked off over the following passes, so no pass writes for
/// long; sessions are not deleted before their expiry is recorded), and
/// expiries per transaction.
const EXPIRIES_PER_PASS: u64 = 1_000;
const EXPIRY_ROUNDS: usize = 20;
const EXPIRIES_PER_TRANSACTION: usize = 100;
/// Outbound delivery attempts (`webhookDeliveries`) are kept this long:
/// enough to look into a receiver's trouble, not a second audit log.
const ATTEMPT_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// Runs maintenance now and then every `INTERVAL` until aborted.
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

/// Signs audit checkpoints as `AUDIT_CHECKPOINT_EVERY` and
/// `AUDIT_CHECKPOINT_INTERVAL` say, until aborted: once that many events
/// were committed since the last checkpoint, or that long after the
/// first of them. It learns of events from the event tail (see
/// [`crate::events`]), so an idle server reads nothing. Every replica
/// runs it, and every replica's tail sees every event: the chain-head
/// lock makes them take turns, and one that finds a checkpoint covering
/// everything new signs nothing.
pub fn spawn_checkpoints(state: AppState) -> tokio::task::JoinHandle<()> {
    use tokio::sync::broadcast::error::RecvError;
    tokio::spawn(async move {
        let policy = audit::CheckpointPolicy {
            every: state.config.audit_checkpoint_every,
            interval: state.config.audit_checkpoint_interval,
        };
        let mut events = state.events.subscribe();
        let mut pending = 0u64;
        // Events appended before this process started are signed, if no
        // checkpoint covers them, one interval after the start.
        let mut deadline = Some(tokio::time::Instant::now() + policy.interval);
        loop {
            let due = tokio::select! {
                received = events.recv() => {
                    match received {
                        Ok(event) if event.event_type == audit::events::CHECKPOINT => {}
                        Ok(_) => pending += 1,
                        Err(RecvError::Lagged(missed)) => pending += missed,
                        Err(RecvError::Closed) => return,
                    }
                    if pending > 0 {
                        deadline.get_or_insert_with(|| tokio::time::Instant::now() + policy.interval);
                    }
                    pending >= policy.every
                }
                () = sleep_until(deadline) => true,
            };
            if due {
                pending = 0;
                deadline = None;
                if let Err(err) = audit::checkpoint(&state.db, &state.signer, false).await {
                    tracing::warn!(error = %err, "audit checkpoint failed; retrying in a while");
                    deadline = Some(tokio::time::Instant::now() + policy.interval);
                }
            }
        }
    })
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Expired sessions whose `session.expired` event this pass wrote.
    pub expiries_recorded: u64,
    pub sessions_deleted: u64,
    pub audit_events_purged: u64,
    pub failed: bool,
}

/// One maintenance pass; failures are logged and retried next time.
pub async fn run_once(state: &AppState) -> Report {
    let metrics = &state.metrics;
    let now = db::now();
    let mut report = Report::default();
    let started = std::time::Instant::now();

    // Before the clean-up, so a session is recorded before it is deleted.
    for _ in 0..EXPIRY_ROUNDS {
        match session::record_expired(&state.db, now, EXPIRIES_PER_PASS, EXPIRIES_PER_TRANSACTION)
            .await
        {
            Ok(n) => {
                report.expiries_recorded += n;
                if n < EXPIRIES_PER_PASS {
                    break;
                }
                tokio::task::yield_now().await;
            }
            Err(err) => {
                report.failed = true;
                tracing::warn!(error = %err, "maintenance: recording expired sessions failed");
                break;
            }
        }
    }

    let session_cutoff = now - Config::chrono(state.config.session_retention);
    match session::delete_ended_before(&state.db, session_cutoff, BATCH).await {
        Ok(n) => report.sessions_deleted = n,
        Err(err) => {
            report.failed = true;
            tracing::warn!(error = %err, "maintenance: session clean-up failed");
        }
    }
    let audit_cutoff = now - Config::chrono(state.config.audit_retention);
    match audit::purge_before(&state.db, &state.signer, audit_cutoff, BATCH).await {
        Ok(n) => report.audit_events_purged = n,
        Err(err) => {
            report.failed = true;
            tracing::warn!(error = %err, "maintenance: audit retention failed");
        }
    }

    let attempt_cutoff = now - Config::chrono(ATTEMPT_RETENTION);
    if let Err(err) = outbox::purge_attempts_before(&state.db, attempt_cutoff, BATCH).await {
        report.failed = true;
        tracing::warn!(error = %err, "maintenance: delivery attempt clean-up failed");
    }

    // Failures older than the throttle window no longer count.
    let failure_cutoff = now - Config::chrono(state.config.signin_failure_window);
    if let Err(err) = throttle::forget_before(&state.db, failure_cutoff).await {
        report.failed = true;
        tracing::warn!(error = %err, "maintenance: sign-in failure clean-up failed");
    }

    Metrics::inc(&metrics.maintenance_runs);
    if report.failed {
        Metrics::inc(&metrics.maintenance_failures);
    }
    Metrics::add(&metrics.sessions_deleted, report.sessions_deleted);
    Metrics::add(&metrics.audit_events_purged, report.audit_events_purged);
    metrics.maintenance_last_run.store(
        u64::try_from(now.timestamp()).unwrap_or(0),
        Ordering::Relaxed,
    );
    tracing::info!(
        expiries_recorded = report.expiries_recorded,
        sessions_deleted = report.sessions_deleted,
        audit_events_purged = report.audit_events_purged,
        failed = report.failed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "maintenance run finished"
    );
    report
}
