//! The outbound worker: every server process runs one. It finds the
//! destinations with committed audit events to deliver (see
//! [`crate::service::outbox`] for the cursors and their leases), takes the lease
//! on each, and delivers its events in `seq` order, one at a time: a
//! destination is blocked on its oldest undelivered event, retried with
//! back-off, until it is delivered or the destination is disabled.
//!
//! - Nothing uncommitted is announced: the worker reads committed rows.
//! - Nothing is lost across a crash: the cursor moves only after a
//!   delivery succeeded, in the transaction that records it; an attempt
//!   under way when a process dies is made again (at-least-once, with the
//!   event's id as the receivers' key to drop duplicates).
//! - One process per destination at a time: the lease, renewed before
//!   every attempt and longer than twice an attempt's timeout; a process
//!   that dies hands its destinations on when its leases run out
//!   (`OUTBOX_LEASE`).
//!
//! The worker wakes on every event the process's event tail sees (on
//! PostgreSQL, every replica's: see [`crate::events`]) and every
//! `OUTBOX_POLL` besides, for retries that fall due.

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::{
    sync::broadcast::error::{RecvError, TryRecvError},
    task::JoinSet,
};
use uuid::Uuid;

use crate::{
    db::{self, Db},
    error::AppResult,
    service::{
        outbox::{self, AfterFailure, Destination},
        ssf, webhook,
    },
    state::AppState,
};

/// Events read per page of a destination's turn.
const PAGE: u64 = 100;

/// What every turn of delivery needs.
struct Shared {
    db: Db,
    /// This process, as written in the leases it holds.
    owner: String,
    lease: Duration,
    retry_base: Duration,
    retry_for: Duration,
    kinds: HashMap<&'static str, Arc<dyn Destination>>,
}

/// The running worker. Dropped, it stops at once, as in a crash (its
/// leases run out by themselves); [`Outbox::stop`] also hands its
/// destinations back, so another replica takes them on at once.
pub struct Outbox {
    handle: tokio::task::JoinHandle<()>,
    db: Db,
    owner: String,
}

impl Outbox {
    /// Stops every delivery under way and gives up this process's leases.
    pub async fn stop(mut self) {
        self.handle.abort();
        let _ = (&mut self.handle).await;
        if let Err(err) = outbox::release_all(&self.db, &self.owner).await {
            tracing::warn!(error = %err, "outbox: cannot release the leases at shutdown");
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Starts the worker with every kind of destination this server delivers
/// to.
pub fn spawn(state: &AppState) -> anyhow::Result<Outbox> {
    let config = &state.config;
    let webhooks: Arc<dyn Destination> = Arc::new(webhook::Webhooks::new(config)?);
    let streams: Arc<dyn Destination> =
        Arc::new(ssf::push::PushStreams::new(config, state.ssf_keys.clone())?);
    let kinds = HashMap::from([(webhooks.kind(), webhooks), (streams.kind(), streams)]);
    let shared = Arc::new(Shared {
        db: state.db.clone(),
        owner: format!("{}", Uuid::new_v4()),
        lease: config.outbox_lease,
        retry_base: config.webhook_retry_base,
        retry_for: config.webhook_retry_for,
        kinds,
    });
    let poll = config.outbox_poll;
    let mut wake = state.events.subscribe();
    let owner = shared.owner.clone();
    let handle = tokio::spawn(async move {
        let mut turns: JoinSet<()> = JoinSet::new();
        let mut running: HashMap<Uuid, tokio::task::AbortHandle> = HashMap::new();
        loop {
            if let Err(err) = pass(&shared, &mut turns, &mut running).await {
                tracing::warn!(error = %err, "outbox: a pass failed; retrying");
            }
            tokio::select! {
                received = wake.recv() => {
                    if matches!(received, Err(RecvError::Closed)) {
                        tokio::time::sleep(poll).await;
                    }
                    // One pass for every event come meanwhile: a burst of
                    // revocations costs a pass, not a pass each.
                    while !matches!(wake.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
                }
                () = tokio::time::sleep(poll) => {}
                Some(_) = turns.join_next(), if !turns.is_empty() => {}
            }
            running.retain(|_, handle| !handle.is_finished());
        }
    });
    Ok(Outbox {
        handle,
        db: state.db.clone(),
        owner,
    })
}

/// Claims every due destination not already served here and starts its
/// turn.
async fn pass(
    shared: &Arc<Shared>,
    turns: &mut JoinSet<()>,
    running: &mut HashMap<Uuid, tokio::task::AbortHandle>,
) -> AppResult<()> {
    let head = outbox::head_seq(&shared.db).await?;
    let now = db::now();
    let kinds: Vec<&str> = shared.kinds.keys().copied().collect();
    let due = outbox::due(&shared.db, &shared.owner, &kinds, head, now).await?;
    for cursor in due {
        if running.get(&cursor.id).is_some_and(|h| !h.is_finished()) {
            continue;
        }
        let Some(kind) = shared.kinds.get(cursor.kind.as_str()).cloned() else {
            continue;
        };
        let until = now + crate::config::Config::chrono(shared.lease);
        if !outbox::claim(&shared.db, cursor.id, &shared.owner, now, until).await? {
            continue;
        }
        let id = cursor.id;
        let shared = shared.clone();
        let handle = turns.spawn(async move {
            if let Err(err) = turn(&shared, kind.as_ref(), id).await {
                tracing::warn!(error = %err, destination = %id, "outbox: delivery turn failed");
            }
            // Whatever happened, the next pass may take it again (here or
            // on another replica).
            if let Err(err) = outbox::release(&shared.db, id, &shared.owner).await {
                tracing::warn!(error = %err, destination = %id, "outbox: cannot release a lease");
            }
        });
        running.insert(id, handle);
    }
    Ok(())
}

/// Delivers the events after the cursor of `id` while this process holds
/// its lease: until it is caught up, an attempt fails (the back-off is
/// written and the turn ends), or the cursor changed under it (replayed,
/// disabled, deleted, or taken over).
async fn turn(shared: &Shared, kind: &dyn Destination, id: Uuid) -> AppResult<()> {
    let db = &shared.db;
    let owner = shared.owner.as_str();
    let Ok(mut cursor) = outbox::get(db, id).await else {
        return Ok(());
    };
    if cursor.lease_owner.as_deref() != Some(owner) || !cursor.enabled {
        return Ok(());
    }
    let Some(mut sender) = kind.open(db, id).await? else {
        return Ok(());
    };
    loop {
        let page = outbox::events_after(db, cursor.cursor_seq, PAGE).await?;
        if page.is_empty() {
            return Ok(());
        }
        let mut passed = cursor.cursor_seq;
        for event in &page {
            if sender.changed_by(event) {
                let Some(reopened) = kind.open(db, id).await? else {
                    return Ok(());
                };
                sender = reopened;
            }
            if !sender.wants(event) {
                passed = event.seq;
                continue;
            }
            if passed > cursor.cursor_seq {
                if !outbox::pass_over(db, id, owner, cursor.cursor_seq, passed).await? {
                    return Ok(());
                }
                cursor.cursor_seq = passed;
            }
            let until = db::now() + crate::config::Config::chrono(shared.lease);
            if !outbox::renew(db, id, owner, cursor.cursor_seq, until).await? {
                return Ok(());
            }
            let outcome = sender.send(event).await;
            if outcome.ok {
                let attempt = cursor.attempts.saturating_add(1);
                let from = cursor.cursor_seq;
                if !outbox::delivered(db, id, owner, from, event, attempt, &outcome).await? {
                    return Ok(());
                }
                cursor.cursor_seq = event.seq;
                cursor.attempts = 0;
                cursor.failing_since = None;
                passed = event.seq;
                continue;
            }
            let after = outbox::failed(
                db,
                &cursor,
                owner,
                event,
                &outcome,
                shared.retry_base,
                shared.retry_for,
                |reason| sender.disabled_event(reason),
            )
            .await?;
            match after {
                AfterFailure::RetryAt(at) => tracing::info!(
                    destination = %id,
                    seq = event.seq,
                    retry_at = %at,
                    error = outcome.error.as_deref().unwrap_or(""),
                    "outbox: delivery failed; will retry"
                ),
                AfterFailure::Disabled => tracing::warn!(
                    destination = %id,
                    seq = event.seq,
                    "outbox: destination disabled after failing too long"
                ),
                AfterFailure::Lost => {}
            }
            return Ok(());
        }
        if passed > cursor.cursor_seq {
            if !outbox::pass_over(db, id, owner, cursor.cursor_seq, passed).await? {
                return Ok(());
            }
            cursor.cursor_seq = passed;
        }
    }
}
