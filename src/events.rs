//! Live session events: every process tails the audit log and broadcasts
//! what was committed to its subscribers.
//!
//! Reading committed rows (rather than announcing from inside a
//! transaction) means nothing uncommitted is ever announced and nothing is
//! lost or reordered: events go out in chain order. On PostgreSQL each
//! append also sends `NOTIFY` in its own transaction (delivered only if it
//! commits), which wakes every replica's tail at once, so an event made on
//! one server reaches subscribers on all of them; a slow poll is the
//! fallback. On SQLite (one process) the tail polls briefly.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use entity::{audit_chain, audit_event};
use sea_orm::{
    ColumnTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

/// The PostgreSQL channel appends notify on.
pub const CHANNEL: &str = "session_events";
/// Most events read per pass of the tail.
const PAGE: u64 = 500;

/// What the tail shares with subscribers.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<audit_event::Model>>,
    wake: Arc<Notify>,
    /// Open sockets per user, for the per-user connection limit.
    connections: Arc<Mutex<HashMap<Uuid, usize>>>,
}

impl EventBus {
    pub fn new(buffer: usize) -> Self {
        let (sender, _) = broadcast::channel(buffer);
        Self {
            sender,
            wake: Arc::new(Notify::new()),
            connections: Arc::default(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<audit_event::Model>> {
        self.sender.subscribe()
    }

    /// Counts a socket of `user` in, unless they already hold `max`.
    pub fn open_connection(&self, user: Uuid, max: usize) -> Option<ConnectionSlot> {
        let mut open = self.connections.lock().ok()?;
        let count = open.entry(user).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            user,
            connections: self.connections.clone(),
        })
    }
}

/// A counted socket; dropping it frees the slot.
pub struct ConnectionSlot {
    user: Uuid,
    connections: Arc<Mutex<HashMap<Uuid, usize>>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.connections.lock()
            && let Some(count) = open.get_mut(&self.user)
        {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// Starts the tail (and, on PostgreSQL, the listener that wakes it).
pub fn spawn(
    db: DatabaseConnection,
    database_url: String,
    bus: EventBus,
) -> tokio::task::JoinHandle<()> {
    let postgres = db.get_database_backend() == DatabaseBackend::Postgres;
    // With NOTIFY the poll is only a fallback.
    let poll = if postgres {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(100)
    };
    let wake = bus.wake.clone();
    // One task, so aborting it stops the listener too.
    tokio::spawn(async move {
        if postgres {
            tokio::join!(listen(database_url, wake), tail(db, bus, poll));
        } else {
            tail(db, bus, poll).await;
        }
    })
}

async fn tail(db: DatabaseConnection, bus: EventBus, poll: Duration) {
    let mut last = loop {
        match audit_chain::Entity::find_by_id(audit_chain::CHAIN_ID)
            .one(&db)
            .await
        {
            Ok(Some(head)) => break head.head_seq,
            Ok(None) => break 0,
            Err(err) => {
                tracing::warn!(error = %err, "event tail: cannot read the chain head; retrying");
                tokio::time::sleep(poll).await;
            }
        }
    };
    loop {
        tokio::select! {
            () = bus.wake.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
        loop {
            let page = audit_event::Entity::find()
                .filter(audit_event::Column::Seq.gt(last))
                .order_by_asc(audit_event::Column::Seq)
                .limit(PAGE)
                .all(&db)
                .await;
            let page = match page {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(error = %err, "event tail: read failed; retrying");
                    break;
                }
            };
            let full = page.len() as u64 == PAGE;
            for event in page {
                last = event.seq;
                // No receivers is fine: nobody is subscribed.
                let _ = bus.sender.send(Arc::new(event));
            }
            if !full {
                break;
            }
        }
    }
}

/// Wakes the tail on every `NOTIFY`, reconnecting when the connection drops.
async fn listen(database_url: String, wake: Arc<Notify>) {
    use sea_orm::sqlx::postgres::PgListener;
    loop {
        match PgListener::connect(&database_url).await {
            Ok(mut listener) => {
                if let Err(err) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %err, "event listener: LISTEN failed");
                } else {
                    loop {
                        match listener.recv().await {
                            Ok(_) => wake.notify_one(),
                            Err(err) => {
                                tracing::warn!(error = %err, "event listener: connection lost");
                                break;
                            }
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "event listener: cannot connect"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_slots_are_counted_and_freed() {
        let bus = EventBus::new(8);
        let user = Uuid::new_v4();
        let a = bus.open_connection(user, 2).expect("first");
        let _b = bus.open_connection(user, 2).expect("second");
        assert!(
            bus.open_connection(user, 2).is_none(),
            "third is over the limit"
        );
        assert!(bus.open_connection(Uuid::new_v4(), 2).is_some(), "per user");
        drop(a);
        assert!(
            bus.open_connection(user, 2).is_some(),
            "a closed socket frees its slot"
        );
    }
}
