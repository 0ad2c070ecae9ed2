//! The append-only, hash-chained audit log.
//!
//! `hash = SHA-256(prev_hash ‖ canonical event)`, where the canonical event
//! is JSON with sorted keys and RFC 3339 timestamps in microseconds. Events
//! are appended under a lock on the chain-head row, held until the commit,
//! in the same transaction as the change they record; the grouped writer's
//! writes append theirs together, once per group (see [`GroupHead`]).
//! Signed checkpoints (a key outside the database) commit to the chain, so
//! that its own database administrator cannot rewrite what they cover (see
//! `checkpoint`).
//!
//! Split by what the code does; every item is re-exported here, so
//! `service::audit::X` names it whatever file holds it.

mod chain;
mod checkpoint;
mod keys;
mod query;
mod record;

pub use chain::{
    ChainReport, Verification, for_each_event, lock_head, purge_before, verify, verify_chain,
};
pub use checkpoint::{
    Checkpoint, CheckpointPolicy, MAX_CHECKPOINT_PAGE, all_checkpoints, checkpoint,
    checkpoint_page, sign_positions,
};
pub use keys::{Keyring, PublicKey, Signer};
pub use query::{AuditFilter, MAX_OFFSET, MAX_PAGE, Page, as_seen_by, page, page_for};
pub use record::{
    GroupHead, NewEvent, canonical_event, event_hash, record, record_alone, record_batch,
    record_positioned,
};

/// Event types written by the server.
pub mod events {
    pub const SIGN_IN: &str = "auth.sign_in";
    /// A session opened by a trusted backend's API key (`issueSession`).
    pub const SESSION_ISSUED: &str = "auth.session_issued";
    pub const SESSION_REVOKED: &str = "session.revoked";
    /// A session ended by idle timeout or absolute expiry (recorded once).
    pub const SESSION_EXPIRED: &str = "session.expired";
    pub const ACCESS_DENIED: &str = "access.denied";
    pub const SESSIONS_VIEWED: &str = "sessions.viewed";
    pub const IMPERSONATION_STARTED: &str = "impersonation.started";
    pub const IMPERSONATION_STOPPED: &str = "impersonation.stopped";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_UPDATED: &str = "user.updated";
    pub const USER_ROLE_CHANGED: &str = "user.role_changed";
    pub const USER_DISABLED: &str = "user.disabled";
    pub const USER_ENABLED: &str = "user.enabled";
    pub const USER_DELETED: &str = "user.deleted";
    /// An admin set someone's password (`setPassword`).
    pub const USER_PASSWORD_RESET: &str = "user.password_reset";
    pub const PASSWORD_CHANGED: &str = "password.changed";
    pub const API_KEY_CREATED: &str = "api_key.created";
    pub const API_KEY_REVOKED: &str = "api_key.revoked";
    /// A signed checkpoint of the chain (the whole statement in `checkpoint`).
    pub const CHECKPOINT: &str = "audit.checkpoint";
    /// Retention purged the oldest events (the signed record in `checkpoint`).
    pub const PURGED: &str = "audit.purged";
    pub const WEBHOOK_CREATED: &str = "webhook.created";
    pub const WEBHOOK_UPDATED: &str = "webhook.updated";
    pub const WEBHOOK_DELETED: &str = "webhook.deleted";
    pub const WEBHOOK_SECRET_ROTATED: &str = "webhook.secret_rotated";
    pub const WEBHOOK_REPLAYED: &str = "webhook.replayed";
    /// An endpoint disabled after failing for `WEBHOOK_RETRY_FOR`.
    pub const WEBHOOK_DISABLED: &str = "webhook.disabled";
    pub const SSF_STREAM_CREATED: &str = "ssf.stream_created";
    pub const SSF_STREAM_UPDATED: &str = "ssf.stream_updated";
    pub const SSF_STREAM_DELETED: &str = "ssf.stream_deleted";
    pub const SSF_STREAM_STATUS_CHANGED: &str = "ssf.stream_status_changed";
    pub const SSF_SUBJECT_ADDED: &str = "ssf.subject_added";
    pub const SSF_SUBJECT_REMOVED: &str = "ssf.subject_removed";
    /// A receiver asked for a verification event; the stream delivers it
    /// (with the receiver's `state`) in its place in the log.
    pub const SSF_VERIFICATION_REQUESTED: &str = "ssf.verification_requested";
    /// A push stream disabled after failing for `WEBHOOK_RETRY_FOR`.
    pub const SSF_STREAM_DISABLED: &str = "ssf.stream_disabled";

    /// Every type above, as the schema's `auditEventTypes` lists them.
    pub const ALL: &[&str] = &[
        SIGN_IN,
        SESSION_REVOKED,
        SESSIONS_VIEWED,
        IMPERSONATION_STARTED,
        IMPERSONATION_STOPPED,
        SESSION_EXPIRED,
        ACCESS_DENIED,
        PASSWORD_CHANGED,
        USER_CREATED,
        API_KEY_CREATED,
        API_KEY_REVOKED,
        SESSION_ISSUED,
        USER_UPDATED,
        CHECKPOINT,
        PURGED,
        USER_ROLE_CHANGED,
        USER_DISABLED,
        USER_ENABLED,
        USER_DELETED,
        USER_PASSWORD_RESET,
        WEBHOOK_CREATED,
        WEBHOOK_UPDATED,
        WEBHOOK_DELETED,
        WEBHOOK_SECRET_ROTATED,
        WEBHOOK_REPLAYED,
        WEBHOOK_DISABLED,
        SSF_STREAM_CREATED,
        SSF_STREAM_UPDATED,
        SSF_STREAM_DELETED,
        SSF_STREAM_STATUS_CHANGED,
        SSF_SUBJECT_ADDED,
        SSF_SUBJECT_REMOVED,
        SSF_VERIFICATION_REQUESTED,
        SSF_STREAM_DISABLED,
    ];
}
