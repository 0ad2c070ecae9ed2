//! The outbound worker: every server process runs one. It finds the
//! destinations with committed audit events to deliver (see
//! [`crate::service::outbox`] for the cursors and their leases), takes the lease
//! on each, and delivers its events in `seq` order, one at a time: a
//! destination is blocked on its oldest undelivered event, retried with
//! back-off, until it is delivered or the destination is disabled.
//!
//! - Nothing uncommitted is announced: the worker reads committed rows.
//! - Nothing is lost across a crash: the cursor moves only after
//!   deliveries succeeded, in the transaction that records them (a batch
//!   at a time); an attempt under way, or delivered but not yet recorded,
//!   when a process dies is made again (at-least-once, with the event's
//!   id as the receivers' key to drop duplicates).
//! - One process per destination at a time: the lease, longer than twice
//!   an attempt's timeout and renewed before an attempt once half of it
//!   has gone (so every attempt ends within it); a process that dies
//!   hands its destinations on when its leases run out (`OUTBOX_LEASE`).
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

/// The shortest time between two passes when events wake the worker, and
/// between two reads of a caught-up turn when events wake it.
const MIN_PASS_INTERVAL: Duration = Duration::from_millis(20);

/// The longest a caught-up turn waits for the next event before it ends
/// and hands its lease back (at most a quarter of the lease).
const MAX_IDLE_TURN: Duration = Duration::from_secs(5);

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
    /// What wakes a caught-up turn: the events the process's tail sees.
    events: crate::events::EventBus,
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
        events: state.events.clone(),
    });
    let poll = config.outbox_poll;
    let mut wake = state.events.subscribe();
    let owner = shared.owner.clone();
    let handle = tokio::spawn(async move {
        let mut turns: JoinSet<()> = JoinSet::new();
        let mut running: HashMap<Uuid, tokio::task::AbortHandle> = HashMap::new();
        loop {
            let passed_at = tokio::time::Instant::now();
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
                    // And at most one pass per interval while events keep
                    // coming: a destination being served needs none, and
                    // each pass is two queries.
                    tokio::time::sleep_until(passed_at + MIN_PASS_INTERVAL).await;
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

/// Deliveries recorded together at most (one transaction for them all).
const BATCH: usize = 64;
/// The longest a delivery waits to be recorded while the turn goes on.
const BATCH_WAIT: Duration = Duration::from_millis(500);

/// What a turn has delivered (or passed over) but not yet recorded: the
/// cursor as stored, how far the turn got, the deliveries since, and
/// since when it has been ahead of what is stored.
struct Progress {
    stored: i64,
    reached: i64,
    delivered: Vec<outbox::Delivered>,
    since: Option<std::time::Instant>,
}

impl Progress {
    fn due(&self) -> bool {
        self.delivered.len() >= BATCH || self.since.is_some_and(|at| at.elapsed() >= BATCH_WAIT)
    }

    /// Writes it (one transaction); `false` when the lease or the cursor
    /// changed meanwhile: the turn must stop.
    async fn record(&mut self, db: &Db, id: Uuid, owner: &str) -> AppResult<bool> {
        if self.reached == self.stored {
            return Ok(true);
        }
        let delivered = std::mem::take(&mut self.delivered);
        if !outbox::advance(db, id, owner, self.stored, self.reached, delivered).await? {
            return Ok(false);
        }
        self.stored = self.reached;
        self.since = None;
        Ok(true)
    }
}

/// What a turn does between two events: records its batch once due and
/// renews the lease once half of it has gone (until `renew_after`).
/// `false` when either found the lease or the cursor changed, or the
/// destination disabled: the turn must stop.
async fn keep_up(
    db: &Db,
    id: Uuid,
    owner: &str,
    progress: &mut Progress,
    renew_after: &mut chrono::DateTime<chrono::Utc>,
    lease: chrono::Duration,
) -> AppResult<bool> {
    if progress.due() && !progress.record(db, id, owner).await? {
        return Ok(false);
    }
    let now = db::now();
    if now >= *renew_after {
        if !outbox::renew(db, id, owner, progress.stored, now + lease).await? {
            // Disabled, say: what was delivered is still recorded (the
            // record holds to the lease and the position itself), so it
            // is not sent again once the destination is turned on.
            progress.record(db, id, owner).await?;
            return Ok(false);
        }
        *renew_after = now + lease / 2;
    }
    Ok(true)
}

/// Delivers the events after the cursor of `id` while this process holds
/// its lease: until it has been caught up for a while (see
/// [`MAX_IDLE_TURN`]), an attempt fails (the back-off is written and the
/// turn ends), or the cursor changed under it (replayed, disabled,
/// deleted, or taken over).
///
/// Caught up, the turn keeps its lease and waits for the next event (the
/// process's event tail wakes it) instead of ending: a turn that ended
/// each time it caught up cost a claim, a record and a release, three
/// commits (on SQLite each a sync, taken in the one turn to write), for
/// every few events of a busy destination.
///
/// Events are sent one at a time, in order; what was delivered is
/// recorded in batches (up to [`BATCH`] deliveries, at most
/// [`BATCH_WAIT`] late, and always before a failure is recorded or the
/// turn ends), and the lease is renewed once half of it has gone, so a
/// busy destination does not cost two writes per event beside the
/// requests' own (on SQLite every one of them waits for the one writer).
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
    let lease = crate::config::Config::chrono(shared.lease);
    let mut renew_after = db::now() + lease / 2;
    let mut progress = Progress {
        stored: cursor.cursor_seq,
        reached: cursor.cursor_seq,
        delivered: Vec::new(),
        since: None,
    };
    // Subscribed before the first read, so no event committed after that
    // read goes unnoticed.
    let mut wake = shared.events.subscribe();
    let idle_for = MAX_IDLE_TURN.min(shared.lease / 4);
    let mut busy_at = std::time::Instant::now();
    loop {
        let read_at = std::time::Instant::now();
        let page = outbox::events_after(db, progress.reached, PAGE).await?;
        if page.is_empty() {
            if busy_at.elapsed() >= idle_for {
                progress.record(db, id, owner).await?;
                return Ok(());
            }
            if !keep_up(db, id, owner, &mut progress, &mut renew_after, lease).await? {
                return Ok(());
            }
            let now = db::now();
            // Until an event comes, the batch is due, the lease wants
            // renewing or the turn has idled long enough.
            let mut wait = idle_for.saturating_sub(busy_at.elapsed());
            if let Some(since) = progress.since {
                wait = wait.min(BATCH_WAIT.saturating_sub(since.elapsed()));
            }
            if let Ok(to_renew) = (renew_after - now).to_std() {
                wait = wait.min(to_renew);
            }
            tokio::select! {
                received = wake.recv() => {
                    if matches!(received, Err(RecvError::Closed)) {
                        tokio::time::sleep(wait).await;
                    }
                    while !matches!(wake.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
                    // Events come in bursts: one read for those of the
                    // next few milliseconds too.
                    tokio::time::sleep_until((read_at + MIN_PASS_INTERVAL).into()).await;
                }
                () = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        busy_at = std::time::Instant::now();
        for event in &page {
            if sender.changed_by(event) {
                let Some(reopened) = kind.open(db, id).await? else {
                    return Ok(());
                };
                sender = reopened;
                // Disabled or replayed meanwhile: found out now, not
                // half a lease later.
                renew_after = db::now();
            }
            if !keep_up(db, id, owner, &mut progress, &mut renew_after, lease).await? {
                return Ok(());
            }
            if !sender.wants(event) {
                progress.reached = event.seq;
                progress.since.get_or_insert_with(std::time::Instant::now);
                continue;
            }
            let outcome = sender.send(event).await;
            if outcome.ok {
                progress.delivered.push(outbox::Delivered {
                    event: event.into(),
                    attempt: cursor.attempts.saturating_add(1),
                    outcome,
                });
                progress.since.get_or_insert_with(std::time::Instant::now);
                progress.reached = event.seq;
                cursor.attempts = 0;
                cursor.failing_since = None;
                continue;
            }
            // What was delivered before it is recorded first: the failure
            // is at the event after the stored cursor.
            if !progress.record(db, id, owner).await? {
                return Ok(());
            }
            cursor.cursor_seq = progress.stored;
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
    }
}
