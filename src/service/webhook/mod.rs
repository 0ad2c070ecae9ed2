//! Webhook endpoints: owners (or API keys scoped `webhooks:manage`) say
//! where to POST which audit events; the outbox worker
//! ([`crate::outbox`]) delivers them, signed as Standard Webhooks define,
//! from each endpoint's cursor in the audit log.
//!
//! The signing secret (`whsec_` and the base64 of 32 random bytes) is
//! answered once, by the mutation that makes or rotates it, and stored as
//! it is: the server must hold the key itself to sign every delivery, so a
//! hash would not do, and encrypting it under a key kept in the same
//! database would protect nothing against a reader of the database. (An
//! encryption key kept outside the database, like the SSF signing key,
//! would; the column can take an encrypted form later.) It never reaches
//! an answer, a log line or the audit log after it is made.

pub mod address;
pub mod delivery;

use entity::{outbox_cursor, webhook_endpoint};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait, PaginatorTrait, QueryOrder,
};
use uuid::Uuid;

use crate::{
    auth::{Caller, RequestMeta},
    config::Config,
    db::{self, Db},
    error::{AppError, AppResult},
    service::{
        audit::{self, NewEvent, events},
        outbox,
    },
};

/// The kind of destination in `outbox_cursors`.
pub const KIND: &str = "webhook";

/// The events that change what a delivery to an endpoint is (its filter,
/// URL or secret), or whether there is one.
const CHANGES: &[&str] = &[
    events::WEBHOOK_UPDATED,
    events::WEBHOOK_SECRET_ROTATED,
    events::WEBHOOK_DELETED,
];

/// Endpoints at once: a few receivers per installation, not one per user.
pub const MAX_ENDPOINTS: u64 = 50;
/// Longest description.
pub const MAX_DESCRIPTION_LEN: usize = 256;

/// Who manages an endpoint: an owner, or an API key with
/// `webhooks:manage` (audited with the owner as actor, or naming the key).
#[derive(Clone, Copy)]
pub enum Manager<'a> {
    Owner(&'a Caller),
    Key(&'a entity::api_key::Model),
}

impl Manager<'_> {
    fn sign(self, event: NewEvent) -> NewEvent {
        match self {
            Manager::Owner(caller) => event.by(caller),
            Manager::Key(key) => event.by_key(key),
        }
    }

    fn user_id(self) -> Option<Uuid> {
        match self {
            Manager::Owner(caller) => Some(caller.actor_id()),
            Manager::Key(_) => None,
        }
    }
}

/// An endpoint with where its deliveries stand.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub endpoint: webhook_endpoint::Model,
    pub cursor: outbox_cursor::Model,
}

/// An endpoint just made, or whose secret was just rotated: the secret
/// goes to its owner this once.
pub struct WithSecret {
    pub secret: String,
    pub endpoint: Endpoint,
}

/// The event types delivered: `None` for all; else at least one, each a
/// type the server writes, none twice (returned sorted).
pub fn validate_event_types(types: Option<&[String]>) -> AppResult<Option<Vec<String>>> {
    let Some(types) = types else {
        return Ok(None);
    };
    if types.is_empty() {
        return Err(AppError::bad_input(
            "eventTypes",
            "list at least one event type, or leave eventTypes out for every type",
        ));
    }
    let mut checked: Vec<String> = Vec::with_capacity(types.len());
    for t in types {
        let t = t.trim();
        if !events::ALL.contains(&t) {
            return Err(AppError::bad_input(
                "eventTypes",
                format!(
                    "unknown event type `{}`: see auditEventTypes",
                    t.chars().take(64).collect::<String>()
                ),
            ));
        }
        if checked.iter().any(|c| c == t) {
            return Err(AppError::bad_input(
                "eventTypes",
                format!("the event type {t} is listed twice"),
            ));
        }
        checked.push(t.to_owned());
    }
    checked.sort();
    Ok(Some(checked))
}

/// A description: at most [`MAX_DESCRIPTION_LEN`] characters, no control
/// characters; blank is none.
pub fn validate_description(text: Option<&str>) -> AppResult<Option<String>> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(AppError::bad_input(
            "description",
            format!("a description must be at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            "description",
            "a description may not hold control characters",
        ));
    }
    Ok(Some(text.to_owned()))
}

/// The URL as saved, checked for shape and for where its host resolves.
async fn validate_url(config: &Config, url: &str) -> AppResult<String> {
    let parsed = address::parse_url(url)?;
    address::check_host(&parsed, config.webhook_allow_private).await?;
    Ok(parsed.to_string())
}

/// A refused change, audited as a failed `event_type` before it is
/// answered (an attempt to point webhooks into the server's network is
/// worth a record).
async fn refused<T>(
    db: &Db,
    by: Manager<'_>,
    event_type: &'static str,
    endpoint_id: Option<Uuid>,
    meta: &RequestMeta,
    error: AppError,
) -> AppResult<T> {
    if let AppError::BadInput { field, message } = &error {
        let mut event = by
            .sign(NewEvent::failed(
                event_type,
                format!("webhook endpoint change refused: {message}"),
            ))
            .from_request(meta)
            .meta("field", *field)
            .meta("reason", message.clone());
        if let Some(id) = endpoint_id {
            event = event.meta("endpointId", id.to_string());
        }
        audit::record_alone(db, event).await?;
    }
    Err(error)
}

fn endpoint_event(
    by: Manager<'_>,
    event: NewEvent,
    endpoint: &webhook_endpoint::Model,
    meta: &RequestMeta,
) -> NewEvent {
    by.sign(event)
        .from_request(meta)
        .meta("endpointId", endpoint.id.to_string())
        .meta("url", url_for_audit(&endpoint.url))
}

/// The URL as the audit log and its messages show it: without its query,
/// where receivers often put a token of their own (admins read the log;
/// only owners see endpoints).
pub fn url_for_audit(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.query().is_some() => {
            parsed.set_query(None);
            format!("{parsed}?…")
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => String::new(),
    }
}

/// Makes an endpoint for the events after now (of `event_types`, or all),
/// audited as `webhook.created`. Refused with `BAD_USER_INPUT` (and a
/// failed `webhook.created`) for a bad URL, a host that does not resolve
/// or resolves to a non-public address, bad event types or description,
/// or past [`MAX_ENDPOINTS`].
#[tracing::instrument(skip(db, config, by, meta))]
pub async fn create(
    db: &Db,
    config: &Config,
    by: Manager<'_>,
    url: &str,
    event_types: Option<&[String]>,
    description: Option<&str>,
    meta: &RequestMeta,
) -> AppResult<WithSecret> {
    let checked = async {
        let event_types = validate_event_types(event_types)?;
        let description = validate_description(description)?;
        let url = validate_url(config, url).await?;
        Ok::<_, AppError>((url, event_types, description))
    }
    .await;
    let (url, event_types, description) = match checked {
        Ok(checked) => checked,
        Err(error) => return refused(db, by, events::WEBHOOK_CREATED, None, meta, error).await,
    };
    let secret = delivery::new_secret()?;
    let now = db::now();
    let endpoint = webhook_endpoint::Model {
        id: Uuid::new_v4(),
        url,
        description,
        event_types: event_types.map(|t| t.join(" ")),
        secret: secret.clone(),
        previous_secret: None,
        previous_secret_until: None,
        created_by: by.user_id(),
        created_at: now,
        updated_at: now,
    };
    let txn = db.transaction().await?;
    txn.exclusive("webhook_endpoints.create").await?;
    if webhook_endpoint::Entity::find().count(&txn).await? >= MAX_ENDPOINTS {
        drop(txn);
        let error = AppError::bad_input(
            "url",
            format!("there are {MAX_ENDPOINTS} webhook endpoints already: delete one first"),
        );
        return refused(db, by, events::WEBHOOK_CREATED, None, meta, error).await;
    }
    let mut event = endpoint_event(
        by,
        NewEvent::success(
            events::WEBHOOK_CREATED,
            format!("webhook endpoint {} created", url_for_audit(&endpoint.url)),
        ),
        &endpoint,
        meta,
    );
    if let Some(types) = &endpoint.event_types {
        event = event.meta("eventTypes", types.clone());
    }
    // Deliveries start after the event that records the endpoint.
    let seq = audit::record_positioned(&txn, event).await?;
    let cursor = outbox::new_cursor(endpoint.id, KIND, seq, now);
    webhook_endpoint::Entity::insert(webhook_endpoint::ActiveModel::from(endpoint.clone()))
        .exec_without_returning(&txn)
        .await?;
    outbox_cursor::Entity::insert(outbox_cursor::ActiveModel::from(cursor.clone()))
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(WithSecret {
        secret,
        endpoint: Endpoint { endpoint, cursor },
    })
}

/// What `update` changes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct Changes {
    pub url: Option<String>,
    /// `Some(None)`: every event type.
    pub event_types: Option<Option<Vec<String>>>,
    /// `Some(None)` or blank: no description.
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// Changes an endpoint, audited as `webhook.updated`; refusals as for
/// [`create`]. Enabling a disabled endpoint retries the event it stopped
/// at at once.
#[tracing::instrument(skip(db, config, by, meta))]
pub async fn update(
    db: &Db,
    config: &Config,
    by: Manager<'_>,
    id: Uuid,
    changes: Changes,
    meta: &RequestMeta,
) -> AppResult<Endpoint> {
    let found = get(db, id).await?;
    let checked = async {
        let url = match &changes.url {
            Some(url) => Some(validate_url(config, url).await?),
            None => None,
        };
        let event_types = match &changes.event_types {
            Some(types) => Some(validate_event_types(types.as_deref())?),
            None => None,
        };
        let description = match &changes.description {
            Some(text) => Some(validate_description(text.as_deref())?),
            None => None,
        };
        Ok::<_, AppError>((url, event_types, description))
    }
    .await;
    let (url, event_types, description) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            return refused(db, by, events::WEBHOOK_UPDATED, Some(id), meta, error).await;
        }
    };
    let txn = db.transaction().await?;
    let mut endpoint = found.endpoint;
    let mut changed: Vec<&str> = Vec::new();
    let mut active = webhook_endpoint::ActiveModel {
        id: Set(id),
        ..Default::default()
    };
    if let Some(url) = url.filter(|u| *u != endpoint.url) {
        active.url = Set(url.clone());
        endpoint.url = url;
        changed.push("url");
    }
    if let Some(types) = event_types.map(|t| t.map(|t| t.join(" ")))
        && types != endpoint.event_types
    {
        active.event_types = Set(types.clone());
        endpoint.event_types = types;
        changed.push("eventTypes");
    }
    if let Some(text) = description.filter(|d| *d != endpoint.description) {
        active.description = Set(text.clone());
        endpoint.description = text;
        changed.push("description");
    }
    if let Some(enabled) = changes.enabled.filter(|e| *e != found.cursor.enabled) {
        outbox::set_enabled(&txn, id, enabled).await?;
        changed.push(if enabled { "enabled" } else { "disabled" });
    }
    if changed.is_empty() {
        return Ok(Endpoint {
            endpoint,
            cursor: found.cursor,
        });
    }
    endpoint.updated_at = db::now();
    active.updated_at = Set(endpoint.updated_at);
    active.update(&txn).await?;
    let event = endpoint_event(
        by,
        NewEvent::success(
            events::WEBHOOK_UPDATED,
            format!(
                "webhook endpoint {} updated: {}",
                url_for_audit(&endpoint.url),
                changed.join(", ")
            ),
        ),
        &endpoint,
        meta,
    )
    .meta("changed", changed.join(" "));
    audit::record(&txn, event).await?;
    let cursor = outbox::get(&txn, id).await?;
    txn.commit().await?;
    Ok(Endpoint { endpoint, cursor })
}

/// Deletes an endpoint with its cursor and delivery log, audited as
/// `webhook.deleted`. No delivery starts after it (one under way ends
/// without moving anything). `NOT_FOUND` for an unknown id.
#[tracing::instrument(skip(db, by, meta))]
pub async fn delete(db: &Db, by: Manager<'_>, id: Uuid, meta: &RequestMeta) -> AppResult<Endpoint> {
    let txn = db.transaction().await?;
    let found = get(&txn, id).await?;
    outbox::delete(&txn, id).await?;
    webhook_endpoint::Entity::delete_by_id(id)
        .exec(&txn)
        .await?;
    let event = endpoint_event(
        by,
        NewEvent::success(
            events::WEBHOOK_DELETED,
            format!(
                "webhook endpoint {} deleted",
                url_for_audit(&found.endpoint.url)
            ),
        ),
        &found.endpoint,
        meta,
    );
    audit::record(&txn, event).await?;
    txn.commit().await?;
    Ok(found)
}

/// How long a rotated-away secret keeps signing when the caller does not
/// say: a day, as the common webhook services do.
pub const DEFAULT_PREVIOUS_SECRET_FOR: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);
/// The longest a rotated-away secret may keep signing.
pub const MAX_PREVIOUS_SECRET_FOR: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 3600);

/// Gives an endpoint a new signing secret, answered this once. Every
/// delivery from now on is signed with it and, for `keep_previous` (a
/// duration such as `1h`, [`DEFAULT_PREVIOUS_SECRET_FOR`] when `None`, at
/// most [`MAX_PREVIOUS_SECRET_FOR`]; zero ends it at once), also with the
/// secret it replaces, so a receiver can switch to the new secret without
/// refusing a delivery in between (Standard Webhooks' several
/// signatures). Only the secret replaced keeps signing: one rotated away
/// before it stops now. Audited as `webhook.secret_rotated`, refusals
/// included.
#[tracing::instrument(skip(db, by, meta))]
pub async fn rotate_secret(
    db: &Db,
    by: Manager<'_>,
    id: Uuid,
    keep_previous: Option<&str>,
    meta: &RequestMeta,
) -> AppResult<WithSecret> {
    let keep_previous = match keep_previous.map(crate::config::parse_duration) {
        None => Ok(DEFAULT_PREVIOUS_SECRET_FOR),
        Some(Ok(keep)) if keep <= MAX_PREVIOUS_SECRET_FOR => Ok(keep),
        Some(Ok(_)) => {
            Err("the previous secret can keep signing for 7 days at the most".to_owned())
        }
        Some(Err(error)) => Err(error),
    };
    let keep_previous = match keep_previous {
        Ok(keep) => keep,
        Err(message) => {
            let error = AppError::bad_input("keepPreviousFor", message);
            return refused(
                db,
                by,
                events::WEBHOOK_SECRET_ROTATED,
                Some(id),
                meta,
                error,
            )
            .await;
        }
    };
    let secret = delivery::new_secret()?;
    let txn = db.transaction().await?;
    let mut found = get(&txn, id).await?;
    let now = db::now();
    let (previous, until) = if keep_previous.is_zero() {
        (None, None)
    } else {
        let until = now + crate::config::Config::chrono(keep_previous);
        (Some(found.endpoint.secret.clone()), Some(until))
    };
    found.endpoint.secret = secret.clone();
    found.endpoint.previous_secret = previous.clone();
    found.endpoint.previous_secret_until = until;
    found.endpoint.updated_at = now;
    webhook_endpoint::ActiveModel {
        id: Set(id),
        secret: Set(secret.clone()),
        previous_secret: Set(previous),
        previous_secret_until: Set(until),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(&txn)
    .await?;
    let mut event = endpoint_event(
        by,
        NewEvent::success(
            events::WEBHOOK_SECRET_ROTATED,
            format!(
                "webhook endpoint {} has a new signing secret",
                url_for_audit(&found.endpoint.url)
            ),
        ),
        &found.endpoint,
        meta,
    );
    if let Some(until) = until {
        event = event.meta("previousSecretUntil", until.to_rfc3339());
    }
    audit::record(&txn, event).await?;
    txn.commit().await?;
    Ok(WithSecret {
        secret,
        endpoint: found,
    })
}

/// Sends the endpoint's events again from `from_seq` on (its failures
/// forgotten), audited as `webhook.replayed`. Receivers drop what they had
/// by `webhook-id`. `from_seq` must be from 1 to one past the newest event.
#[tracing::instrument(skip(db, by, meta))]
pub async fn replay(
    db: &Db,
    by: Manager<'_>,
    id: Uuid,
    from_seq: i64,
    meta: &RequestMeta,
) -> AppResult<Endpoint> {
    let txn = db.transaction().await?;
    let found = get(&txn, id).await?;
    let head = outbox::head_seq(&txn).await?;
    if from_seq < 1 || from_seq > head + 1 {
        return Err(AppError::bad_input(
            "fromSeq",
            format!("fromSeq must be between 1 and {}", head + 1),
        ));
    }
    outbox::rewind(&txn, id, from_seq).await?;
    let event = endpoint_event(
        by,
        NewEvent::success(
            events::WEBHOOK_REPLAYED,
            format!(
                "webhook endpoint {}: events from {from_seq} on are sent again",
                url_for_audit(&found.endpoint.url)
            ),
        ),
        &found.endpoint,
        meta,
    )
    .meta("fromSeq", from_seq);
    audit::record(&txn, event).await?;
    let cursor = outbox::get(&txn, id).await?;
    txn.commit().await?;
    Ok(Endpoint {
        endpoint: found.endpoint,
        cursor,
    })
}

/// The endpoint `id` with its cursor, else `NOT_FOUND`.
pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Endpoint> {
    let endpoint = webhook_endpoint::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| AppError::NotFound("webhook endpoint not found".into()))?;
    let cursor = outbox::get(conn, id).await?;
    Ok(Endpoint { endpoint, cursor })
}

/// Every endpoint, newest first.
pub async fn list(conn: &impl ConnectionTrait) -> AppResult<Vec<Endpoint>> {
    let endpoints = webhook_endpoint::Entity::find()
        .order_by_desc(webhook_endpoint::Column::CreatedAt)
        .order_by_desc(webhook_endpoint::Column::Id)
        .all(conn)
        .await?;
    let mut cursors = outbox::cursors_of(conn, endpoints.iter().map(|e| e.id)).await?;
    Ok(endpoints
        .into_iter()
        .filter_map(|endpoint| {
            let cursor = cursors.remove(&endpoint.id)?;
            Some(Endpoint { endpoint, cursor })
        })
        .collect())
}

/// The delivery attempts of endpoint `id`, newest first (see
/// [`outbox::attempts`]). `NOT_FOUND` for an unknown endpoint.
pub async fn deliveries(
    conn: &impl ConnectionTrait,
    id: Uuid,
    limit: u64,
    after: Option<Uuid>,
) -> AppResult<Vec<entity::outbox_attempt::Model>> {
    get(conn, id).await?;
    outbox::attempts(conn, id, limit, after).await
}

/// The endpoint to deliver to, as the worker reads it.
pub async fn find_endpoint(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> AppResult<Option<webhook_endpoint::Model>> {
    Ok(webhook_endpoint::Entity::find_by_id(id).one(conn).await?)
}

/// The event recording that endpoint `id` was disabled after failing for
/// too long (a system event: no actor).
pub fn disabled_event(endpoint: &webhook_endpoint::Model, reason: &str) -> NewEvent {
    NewEvent::failed(
        events::WEBHOOK_DISABLED,
        format!(
            "webhook endpoint {} disabled: {reason}",
            url_for_audit(&endpoint.url)
        ),
    )
    .meta("endpointId", endpoint.id.to_string())
    .meta("url", url_for_audit(&endpoint.url))
    .meta("reason", reason.to_owned())
}

/// Webhook endpoints as the outbox worker sees them.
pub struct Webhooks {
    client: reqwest::Client,
    allow_private: bool,
}

impl Webhooks {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            client: delivery::client(config.webhook_timeout, config.webhook_allow_private)?,
            allow_private: config.webhook_allow_private,
        })
    }
}

#[async_trait::async_trait]
impl outbox::Destination for Webhooks {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn open(&self, db: &Db, id: Uuid) -> AppResult<Option<Box<dyn outbox::Sender>>> {
        Ok(find_endpoint(db, id).await?.map(|endpoint| {
            Box::new(EndpointSender {
                endpoint,
                client: self.client.clone(),
                allow_private: self.allow_private,
            }) as Box<dyn outbox::Sender>
        }))
    }
}

struct EndpointSender {
    endpoint: webhook_endpoint::Model,
    client: reqwest::Client,
    allow_private: bool,
}

#[async_trait::async_trait]
impl outbox::Sender for EndpointSender {
    fn wants(&self, event: &entity::audit_event::Model) -> bool {
        self.endpoint.wants(&event.event_type)
    }

    fn changed_by(&self, event: &entity::audit_event::Model) -> bool {
        event.status == entity::audit_event::AuditStatus::Success
            && CHANGES.contains(&event.event_type.as_str())
            && event.metadata.get("endpointId").and_then(|id| id.as_str())
                == Some(self.endpoint.id.to_string().as_str())
    }

    async fn send(&self, event: &entity::audit_event::Model) -> outbox::Outcome {
        delivery::send(
            &self.client,
            &self.endpoint.url,
            &self.endpoint.signing_secrets(chrono::Utc::now()),
            event,
            self.allow_private,
        )
        .await
    }

    fn disabled_event(&self, reason: &str) -> NewEvent {
        disabled_event(&self.endpoint, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_known_distinct_and_sorted() {
        assert_eq!(validate_event_types(None).unwrap(), None);
        assert!(validate_event_types(Some(&[])).is_err(), "empty");
        let bad = ["session.nope".to_owned()];
        assert!(validate_event_types(Some(&bad)).is_err(), "unknown");
        let twice = ["session.revoked".to_owned(), "session.revoked".to_owned()];
        assert!(validate_event_types(Some(&twice)).is_err(), "twice");
        let good = ["session.revoked".to_owned(), "auth.sign_in".to_owned()];
        assert_eq!(
            validate_event_types(Some(&good)).unwrap().unwrap(),
            ["auth.sign_in", "session.revoked"]
        );
    }

    #[test]
    fn audited_urls_leave_their_query_out() {
        assert_eq!(
            url_for_audit("https://hooks.example.com/in?token=s3cret&x=1"),
            "https://hooks.example.com/in?…"
        );
        assert_eq!(
            url_for_audit("http://10.0.0.1:8080/a/b"),
            "http://10.0.0.1:8080/a/b"
        );
    }

    #[test]
    fn descriptions_are_bounded() {
        assert_eq!(validate_description(Some("  ")).unwrap(), None);
        assert_eq!(validate_description(Some(" CRM ")).unwrap().unwrap(), "CRM");
        assert!(validate_description(Some("a\nb")).is_err());
        assert!(validate_description(Some(&"x".repeat(MAX_DESCRIPTION_LEN + 1))).is_err());
    }
}
