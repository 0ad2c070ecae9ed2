//! Event streams (SSF 1.0 §8.1): what a receiver made through the
//! stream-management API, authenticated by an API key scoped
//! `ssf:manage`, and how each is delivered from its cursor in the audit
//! log — pushed by the outbox worker (RFC 8935, cursor kind `ssf`) or
//! drained by the receiver's polls (RFC 8936, cursor kind `ssf-poll`,
//! which the worker does not serve).
//!
//! Subjects: a stream starts with every subject (the metadata's
//! `default_subjects: ALL`). Adding a subject restricts it to the
//! subjects added: from then on it carries only events about a user named
//! by one of them (by email, or by an opaque id that is the user's
//! `externalId` or id). Removing takes one off that list; a restricted
//! stream whose list is empty carries no user events (verification events
//! still pass). Removing a subject not listed is `404`.
//!
//! Every change is audited (`ssf.*`), refusals of bad input included, and
//! applies at the latest from the next event in chain order (the worker
//! reopens a stream after any event that changed it; a turn that opens the
//! stream after the change committed applies it to the events before it
//! that are still undelivered too, as for webhooks).

use std::collections::HashSet;

use entity::{api_key, audit_event, outbox_cursor, ssf_stream, user};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, sea_query::Expr,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{CREDENTIAL_CHANGE, Keyring, POLL, PUSH, SESSION_REVOKED, SET_TYP, set};
use crate::{
    auth::RequestMeta,
    config::Config,
    db::{self, Db},
    error::{AppError, AppResult},
    service::{
        audit::{self, NewEvent, events},
        outbox,
        webhook::address,
    },
};

/// The cursor kind of a push stream (delivered by the worker).
pub const KIND_PUSH: &str = "ssf";
/// The cursor kind of a poll stream (moved by the receiver's acks).
pub const KIND_POLL: &str = "ssf-poll";
/// SSF 1.0 §8.1.4: the verification event.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
/// The event types the server makes (`events_supported`).
pub const SUPPORTED: &[&str] = &[SESSION_REVOKED, CREDENTIAL_CHANGE];
/// Streams at once: one per receiver, a few receivers per installation.
pub const MAX_STREAMS: u64 = 50;
/// Taken by the changes that check the cap or that audiences are unique.
const STREAMS_LOCK: &str = "ssf_streams.create";
/// Subjects listed in one stream.
pub const MAX_SUBJECTS: usize = 1_000;
/// Longest `aud`, `state`, `reason`, identifier.
pub const MAX_TEXT_LEN: usize = 256;
/// Longest `authorization_header`.
pub const MAX_AUTHORIZATION_LEN: usize = 1_024;
/// Most entries in `events_requested`.
pub const MAX_EVENTS_REQUESTED: usize = 32;

/// The events that change what a delivery of a stream is.
const CHANGES: &[&str] = &[
    events::SSF_STREAM_UPDATED,
    events::SSF_STREAM_DELETED,
    events::SSF_STREAM_STATUS_CHANGED,
    events::SSF_SUBJECT_ADDED,
    events::SSF_SUBJECT_REMOVED,
];
/// Events that may change which users a restricted stream's subjects
/// name.
const USER_CHANGES: &[&str] = &[events::USER_CREATED, events::USER_UPDATED];

/// A refused stream operation, as SSF answers it.
#[derive(Debug)]
pub enum StreamError {
    /// 409: a stream for this audience exists already.
    Conflict(String),
    App(AppError),
}

impl From<AppError> for StreamError {
    fn from(error: AppError) -> Self {
        StreamError::App(error)
    }
}

impl From<sea_orm::DbErr> for StreamError {
    fn from(error: sea_orm::DbErr) -> Self {
        StreamError::App(error.into())
    }
}

pub type StreamResult<T> = Result<T, StreamError>;

/// A stream with where its deliveries stand.
#[derive(Debug, Clone)]
pub struct Stream {
    pub stream: ssf_stream::Model,
    pub cursor: outbox_cursor::Model,
}

impl Stream {
    /// The status a receiver sees: the one it set, except that a stream
    /// the worker disabled after failing too long is `disabled` with the
    /// worker's reason.
    pub fn status(&self) -> (&str, Option<&str>) {
        if self.stream.status == "enabled" && !self.cursor.enabled {
            return ("disabled", self.cursor.disabled_reason.as_deref());
        }
        (&self.stream.status, self.stream.status_reason.as_deref())
    }

    /// The poll endpoint of a poll stream.
    pub fn poll_url(&self) -> String {
        format!(
            "{}{}/{}",
            self.stream.issuer,
            super::paths::POLL,
            self.stream.id
        )
    }

    /// The stream configuration (SSF 1.0 §8.1.1) as answered; the
    /// authorization header is never answered back.
    pub fn configuration(&self) -> Value {
        let s = &self.stream;
        let mut delivery = json!({ "method": s.delivery_method });
        if s.delivery_method == PUSH {
            delivery["endpoint_url"] = json!(s.endpoint_url);
        } else {
            delivery["endpoint_url"] = json!(self.poll_url());
        }
        let mut config = json!({
            "stream_id": s.id.to_string(),
            "iss": s.issuer,
            "aud": s.audience,
            "events_supported": SUPPORTED,
            "events_requested": s.events_requested(),
            "events_delivered": s.events_delivered(),
            "delivery": delivery,
        });
        if let Some(text) = &s.description {
            config["description"] = json!(text);
        }
        config
    }
}

/// What a receiver asks for in a stream configuration.
#[derive(Debug, Clone, Default)]
struct Requested {
    audience: Option<String>,
    /// (method, endpoint_url, authorization_header)
    delivery: Option<(String, Option<String>, Option<String>)>,
    events: Option<Vec<String>>,
    description: Option<Option<String>>,
}

fn bad(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::bad_input(field, message)
}

fn text(value: &Value, field: &'static str, max: usize) -> AppResult<String> {
    let Some(text) = value.as_str() else {
        return Err(bad(field, format!("{field} must be a string")));
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(bad(field, format!("{field} may not be empty")));
    }
    if text.chars().count() > max {
        return Err(bad(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(bad(
            field,
            format!("{field} may not hold control characters"),
        ));
    }
    Ok(text.to_owned())
}

/// The stream id of a request body or query.
pub fn stream_id(value: Option<&Value>) -> AppResult<Uuid> {
    let Some(value) = value else {
        return Err(bad("stream_id", "stream_id is required"));
    };
    value
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| bad("stream_id", "stream_id must be a stream's id"))
}

fn parse_requested(body: &Value) -> AppResult<Requested> {
    let Some(body) = body.as_object() else {
        return Err(bad("body", "the body must be a JSON object"));
    };
    let mut requested = Requested::default();
    if let Some(aud) = body.get("aud") {
        // One audience per stream (a list of one is taken too).
        let aud = match aud {
            Value::Array(list) if list.len() == 1 => &list[0],
            other => other,
        };
        requested.audience = Some(text(aud, "aud", MAX_TEXT_LEN)?);
    }
    if let Some(delivery) = body.get("delivery") {
        let Some(delivery) = delivery.as_object() else {
            return Err(bad("delivery", "delivery must be an object"));
        };
        let method = delivery
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("delivery", "delivery.method is required"))?;
        match method {
            PUSH => {
                let url = delivery
                    .get("endpoint_url")
                    .ok_or_else(|| bad("endpoint_url", "push delivery needs an endpoint_url"))?;
                let url = url
                    .as_str()
                    .ok_or_else(|| bad("endpoint_url", "endpoint_url must be a string"))?;
                let authorization = match delivery.get("authorization_header") {
                    None | Some(Value::Null) => None,
                    Some(value) => {
                        Some(text(value, "authorization_header", MAX_AUTHORIZATION_LEN)?)
                    }
                };
                requested.delivery = Some((PUSH.to_owned(), Some(url.to_owned()), authorization));
            }
            POLL => {
                if delivery.get("endpoint_url").is_some_and(|v| !v.is_null()) {
                    return Err(bad(
                        "endpoint_url",
                        "the transmitter names the poll endpoint: leave endpoint_url out",
                    ));
                }
                requested.delivery = Some((POLL.to_owned(), None, None));
            }
            _ => {
                return Err(bad(
                    "delivery",
                    format!("delivery.method must be {PUSH} (push) or {POLL} (poll)"),
                ));
            }
        }
    }
    if let Some(list) = body.get("events_requested") {
        let Some(list) = list.as_array() else {
            return Err(bad("events_requested", "events_requested must be a list"));
        };
        if list.len() > MAX_EVENTS_REQUESTED {
            return Err(bad(
                "events_requested",
                format!("events_requested lists at most {MAX_EVENTS_REQUESTED} types"),
            ));
        }
        let mut events = Vec::new();
        for item in list {
            let item = text(item, "events_requested", MAX_TEXT_LEN)?;
            if !events.contains(&item) {
                events.push(item);
            }
        }
        requested.events = Some(events);
    }
    if let Some(description) = body.get("description") {
        requested.description = Some(match description {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            other => Some(text(other, "description", MAX_TEXT_LEN)?),
        });
    }
    Ok(requested)
}

/// The types delivered: those requested that the server makes.
fn delivered(requested: &[String]) -> Vec<&'static str> {
    SUPPORTED
        .iter()
        .copied()
        .filter(|t| requested.iter().any(|r| r == t))
        .collect()
}

async fn check_url(config: &Config, url: &str) -> AppResult<String> {
    let parsed = address::parse_url(url).map_err(|e| retag(e, "endpoint_url"))?;
    address::check_host(&parsed, config.webhook_allow_private)
        .await
        .map_err(|e| retag(e, "endpoint_url"))?;
    Ok(parsed.to_string())
}

fn retag(error: AppError, field: &'static str) -> AppError {
    match error {
        AppError::BadInput { message, .. } => AppError::BadInput { field, message },
        other => other,
    }
}

fn stream_event(key: &api_key::Model, event: NewEvent, id: Uuid, meta: &RequestMeta) -> NewEvent {
    event
        .by_key(key)
        .from_request(meta)
        .meta("streamId", id.to_string())
}

/// A refused change, audited as a failed `event_type` before it is
/// answered.
async fn refused<T>(
    db: &Db,
    key: &api_key::Model,
    event_type: &'static str,
    id: Option<Uuid>,
    meta: &RequestMeta,
    error: StreamError,
) -> StreamResult<T> {
    let (field, message) = match &error {
        StreamError::App(AppError::BadInput { field, message }) => (*field, message.clone()),
        StreamError::Conflict(message) => ("aud", message.clone()),
        _ => return Err(error),
    };
    let mut event = NewEvent::failed(event_type, format!("SSF stream change refused: {message}"))
        .by_key(key)
        .from_request(meta)
        .meta("field", field)
        .meta("reason", message);
    if let Some(id) = id {
        event = event.meta("streamId", id.to_string());
    }
    audit::record_alone(db, event).await?;
    Err(error)
}

/// Makes a stream for the events after now, audited as
/// `ssf.stream_created`. `aud` and `delivery` are required;
/// `events_requested` defaults to every supported type.
#[tracing::instrument(skip(db, config, key, body, meta))]
pub async fn create(
    db: &Db,
    config: &Config,
    key: &api_key::Model,
    issuer: &str,
    body: &Value,
    meta: &RequestMeta,
) -> StreamResult<Stream> {
    let checked = async {
        let requested = parse_requested(body)?;
        let audience = requested
            .audience
            .clone()
            .ok_or_else(|| bad("aud", "aud (the receiver) is required"))?;
        let (method, url, authorization) = requested
            .delivery
            .clone()
            .ok_or_else(|| bad("delivery", "delivery is required"))?;
        let url = match url {
            Some(url) => Some(check_url(config, &url).await?),
            None => None,
        };
        Ok::<_, AppError>((requested, audience, method, url, authorization))
    }
    .await;
    let (requested, audience, method, url, authorization) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            return refused(
                db,
                key,
                events::SSF_STREAM_CREATED,
                None,
                meta,
                error.into(),
            )
            .await;
        }
    };
    let events_requested = requested
        .events
        .unwrap_or_else(|| SUPPORTED.iter().map(|s| (*s).to_owned()).collect());
    let now = db::now();
    let stream = ssf_stream::Model {
        id: Uuid::new_v4(),
        audience,
        issuer: issuer.to_owned(),
        description: requested.description.flatten(),
        delivery_method: method.clone(),
        endpoint_url: url,
        authorization_header: authorization,
        events_delivered: delivered(&events_requested).join(" "),
        events_requested: events_requested.join(" "),
        status: "enabled".into(),
        status_reason: None,
        subjects_listed: false,
        subjects: "[]".into(),
        created_by_key: Some(key.id),
        created_at: now,
        updated_at: now,
    };
    let txn = db.transaction().await?;
    // Under the lock (in any process), so that concurrent creations and
    // changes cannot both pass the cap or the audience checks.
    txn.exclusive(STREAMS_LOCK).await?;
    if ssf_stream::Entity::find().count(&txn).await? >= MAX_STREAMS {
        drop(txn);
        let error = bad(
            "aud",
            format!("there are {MAX_STREAMS} streams already: delete one first"),
        );
        return refused(
            db,
            key,
            events::SSF_STREAM_CREATED,
            None,
            meta,
            error.into(),
        )
        .await;
    }
    if ssf_stream::Entity::find()
        .filter(ssf_stream::Column::Audience.eq(stream.audience.as_str()))
        .count(&txn)
        .await?
        > 0
    {
        drop(txn);
        let error = StreamError::Conflict(format!(
            "a stream for the audience {} exists already",
            stream.audience
        ));
        return refused(db, key, events::SSF_STREAM_CREATED, None, meta, error).await;
    }
    let event = stream_event(
        key,
        NewEvent::success(
            events::SSF_STREAM_CREATED,
            format!("SSF stream for {} created", stream.audience),
        ),
        stream.id,
        meta,
    )
    .meta("aud", stream.audience.clone())
    .meta("delivery", method.clone())
    .meta("eventsDelivered", stream.events_delivered.clone());
    let seq = audit::record_positioned(&txn, event).await?;
    let kind = if method == PUSH { KIND_PUSH } else { KIND_POLL };
    let cursor = outbox::new_cursor(stream.id, kind, seq, now);
    ssf_stream::Entity::insert(ssf_stream::ActiveModel::from(stream.clone()))
        .exec_without_returning(&txn)
        .await?;
    outbox_cursor::Entity::insert(outbox_cursor::ActiveModel::from(cursor.clone()))
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(Stream { stream, cursor })
}

/// The stream `id` with its cursor, else `NOT_FOUND`.
pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Stream> {
    let stream = ssf_stream::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| AppError::NotFound("stream not found".into()))?;
    let cursor = outbox::get(conn, id).await?;
    Ok(Stream { stream, cursor })
}

/// Every stream, oldest first.
pub async fn list(conn: &impl ConnectionTrait) -> AppResult<Vec<Stream>> {
    let streams = ssf_stream::Entity::find()
        .order_by_asc(ssf_stream::Column::CreatedAt)
        .order_by_asc(ssf_stream::Column::Id)
        .all(conn)
        .await?;
    let mut cursors = outbox::cursors_of(conn, streams.iter().map(|s| s.id)).await?;
    Ok(streams
        .into_iter()
        .filter_map(|stream| {
            let cursor = cursors.remove(&stream.id)?;
            Some(Stream { stream, cursor })
        })
        .collect())
}

/// Changes a stream (`PATCH`: the fields given; `PUT`, `replace`: the
/// whole receiver-supplied configuration, `aud` and `delivery` required),
/// audited as `ssf.stream_updated`.
#[tracing::instrument(skip(db, config, key, body, meta))]
pub async fn update(
    db: &Db,
    config: &Config,
    key: &api_key::Model,
    id: Uuid,
    body: &Value,
    replace: bool,
    meta: &RequestMeta,
) -> StreamResult<Stream> {
    let found = get(db, id).await?;
    let checked = async {
        let mut requested = parse_requested(body)?;
        if replace {
            if requested.audience.is_none() {
                return Err(bad("aud", "aud is required"));
            }
            if requested.delivery.is_none() {
                return Err(bad("delivery", "delivery is required"));
            }
            requested.events.get_or_insert_with(Vec::new);
            requested.description.get_or_insert(None);
        }
        if let Some((_, Some(url), _)) = &mut requested.delivery {
            *url = check_url(config, url).await?;
        }
        Ok::<_, AppError>(requested)
    }
    .await;
    let requested = match checked {
        Ok(requested) => requested,
        Err(error) => {
            return refused(
                db,
                key,
                events::SSF_STREAM_UPDATED,
                Some(id),
                meta,
                error.into(),
            )
            .await;
        }
    };
    let txn = db.transaction().await?;
    txn.exclusive(STREAMS_LOCK).await?;
    let mut stream = found.stream;
    let mut changed: Vec<&str> = Vec::new();
    let mut active = ssf_stream::ActiveModel {
        id: Set(id),
        ..Default::default()
    };
    if let Some(aud) = requested.audience.filter(|a| *a != stream.audience) {
        let taken = ssf_stream::Entity::find()
            .filter(ssf_stream::Column::Audience.eq(aud.as_str()))
            .count(&txn)
            .await?
            > 0;
        if taken {
            drop(txn);
            let error =
                StreamError::Conflict(format!("a stream for the audience {aud} exists already"));
            return refused(db, key, events::SSF_STREAM_UPDATED, Some(id), meta, error).await;
        }
        active.audience = Set(aud.clone());
        stream.audience = aud;
        changed.push("aud");
    }
    if let Some((method, url, authorization)) = requested.delivery
        && (method != stream.delivery_method
            || url != stream.endpoint_url
            || authorization != stream.authorization_header)
    {
        if method != stream.delivery_method {
            let kind = if method == PUSH { KIND_PUSH } else { KIND_POLL };
            outbox_cursor::Entity::update_many()
                .col_expr(outbox_cursor::Column::Kind, Expr::value(kind))
                .filter(outbox_cursor::Column::Id.eq(id))
                .exec(&txn)
                .await?;
        }
        active.delivery_method = Set(method.clone());
        active.endpoint_url = Set(url.clone());
        active.authorization_header = Set(authorization.clone());
        stream.delivery_method = method;
        stream.endpoint_url = url;
        stream.authorization_header = authorization;
        changed.push("delivery");
    }
    if let Some(events_requested) = requested.events {
        let joined = events_requested.join(" ");
        if joined != stream.events_requested {
            let delivered = delivered(&events_requested).join(" ");
            active.events_requested = Set(joined.clone());
            active.events_delivered = Set(delivered.clone());
            stream.events_requested = joined;
            stream.events_delivered = delivered;
            changed.push("events_requested");
        }
    }
    if let Some(text) = requested.description.filter(|d| *d != stream.description) {
        active.description = Set(text.clone());
        stream.description = text;
        changed.push("description");
    }
    if changed.is_empty() {
        return Ok(Stream {
            stream,
            cursor: found.cursor,
        });
    }
    stream.updated_at = db::now();
    active.updated_at = Set(stream.updated_at);
    active.update(&txn).await?;
    let event = stream_event(
        key,
        NewEvent::success(
            events::SSF_STREAM_UPDATED,
            format!(
                "SSF stream for {} updated: {}",
                stream.audience,
                changed.join(", ")
            ),
        ),
        id,
        meta,
    )
    .meta("changed", changed.join(" "));
    audit::record(&txn, event).await?;
    let cursor = outbox::get(&txn, id).await?;
    txn.commit().await?;
    Ok(Stream { stream, cursor })
}

/// Deletes a stream with its cursor and delivery log, audited as
/// `ssf.stream_deleted`.
#[tracing::instrument(skip(db, key, meta))]
pub async fn delete(db: &Db, key: &api_key::Model, id: Uuid, meta: &RequestMeta) -> AppResult<()> {
    let txn = db.transaction().await?;
    let found = get(&txn, id).await?;
    outbox::delete(&txn, id).await?;
    ssf_stream::Entity::delete_by_id(id).exec(&txn).await?;
    let event = stream_event(
        key,
        NewEvent::success(
            events::SSF_STREAM_DELETED,
            format!("SSF stream for {} deleted", found.stream.audience),
        ),
        id,
        meta,
    );
    audit::record(&txn, event).await?;
    txn.commit().await?;
    Ok(())
}

/// Sets a stream's status (SSF 1.0 §8.1.2.2), audited as
/// `ssf.stream_status_changed`. `paused`: events are held (the cursor
/// stays) and delivered once enabled again; `disabled`: events are not
/// held (enabling starts from the events after it); enabling a stream the
/// worker disabled after failing too long also starts afresh.
#[tracing::instrument(skip(db, key, reason, meta))]
pub async fn set_status(
    db: &Db,
    key: &api_key::Model,
    id: Uuid,
    status: &Value,
    reason: Option<&Value>,
    meta: &RequestMeta,
) -> StreamResult<Stream> {
    let found = get(db, id).await?;
    let checked = (|| {
        let status = match status.as_str() {
            Some(s @ ("enabled" | "paused" | "disabled")) => s.to_owned(),
            _ => {
                return Err(bad("status", "status must be enabled, paused or disabled"));
            }
        };
        let reason = match reason {
            None | Some(Value::Null) => None,
            Some(value) => Some(text(value, "reason", MAX_TEXT_LEN)?),
        };
        Ok((status, reason))
    })();
    let (status, reason) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            return refused(
                db,
                key,
                events::SSF_STREAM_STATUS_CHANGED,
                Some(id),
                meta,
                error.into(),
            )
            .await;
        }
    };
    let (before, _) = found.status();
    let before = before.to_owned();
    let txn = db.transaction().await?;
    let now = db::now();
    ssf_stream::ActiveModel {
        id: Set(id),
        status: Set(status.clone()),
        status_reason: Set(reason.clone()),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(&txn)
    .await?;
    let enabled = status == "enabled";
    if enabled != found.cursor.enabled {
        outbox::set_enabled(&txn, id, enabled).await?;
    }
    let mut event = stream_event(
        key,
        NewEvent::success(
            events::SSF_STREAM_STATUS_CHANGED,
            format!(
                "SSF stream for {}: {before} → {status}",
                found.stream.audience
            ),
        ),
        id,
        meta,
    )
    .meta("from", before.clone())
    .meta("status", status.clone());
    if let Some(reason) = &reason {
        event = event.meta("reason", reason.clone());
    }
    let seq = audit::record_positioned(&txn, event).await?;
    if enabled && before == "disabled" {
        // A disabled stream holds nothing: it starts after this event.
        outbox::rewind(&txn, id, seq + 1).await?;
    }
    let stream = get(&txn, id).await?;
    txn.commit().await?;
    Ok(stream)
}

/// A subject identifier (RFC 9493) a stream may list, normalized: an
/// `email` (lower case) or an `opaque` id, alone or as the `user` of a
/// `complex` subject.
pub fn parse_subject(value: &Value) -> AppResult<Value> {
    let Some(object) = value.as_object() else {
        return Err(bad("subject", "subject must be an object"));
    };
    match object.get("format").and_then(Value::as_str) {
        Some("email") => {
            let email =
                text(object.get("email").unwrap_or(&Value::Null), "subject", 320)?.to_lowercase();
            if !email.contains('@') {
                return Err(bad("subject", "an email subject needs an email address"));
            }
            Ok(json!({ "format": "email", "email": email }))
        }
        Some("opaque") => {
            let id = text(
                object.get("id").unwrap_or(&Value::Null),
                "subject",
                MAX_TEXT_LEN,
            )?;
            Ok(json!({ "format": "opaque", "id": id }))
        }
        Some("complex") => match object.get("user") {
            Some(user) if user.get("format").and_then(Value::as_str) != Some("complex") => {
                parse_subject(user)
            }
            _ => Err(bad(
                "subject",
                "a complex subject must name a user (by email or opaque id)",
            )),
        },
        _ => Err(bad(
            "subject",
            "subject.format must be email, opaque or complex",
        )),
    }
}

fn subjects_of(stream: &ssf_stream::Model) -> Vec<Value> {
    serde_json::from_str(&stream.subjects).unwrap_or_default()
}

/// Adds (`add`) or removes a subject, audited as `ssf.subject_added` /
/// `ssf.subject_removed`. See the module's rule.
#[tracing::instrument(skip(db, key, subject, meta))]
pub async fn change_subject(
    db: &Db,
    key: &api_key::Model,
    id: Uuid,
    subject: Option<&Value>,
    add: bool,
    meta: &RequestMeta,
) -> StreamResult<()> {
    let event_type = if add {
        events::SSF_SUBJECT_ADDED
    } else {
        events::SSF_SUBJECT_REMOVED
    };
    let found = get(db, id).await?;
    let subject = match subject
        .ok_or_else(|| bad("subject", "subject is required"))
        .and_then(parse_subject)
    {
        Ok(subject) => subject,
        Err(error) => return refused(db, key, event_type, Some(id), meta, error.into()).await,
    };
    let txn = db.transaction().await?;
    let stream = ssf_stream::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::NotFound("stream not found".into()))?;
    let mut subjects = subjects_of(&stream);
    let listed = subjects.contains(&subject);
    if add {
        if !listed {
            if subjects.len() >= MAX_SUBJECTS {
                drop(txn);
                let error = bad(
                    "subject",
                    format!("a stream lists at most {MAX_SUBJECTS} subjects"),
                );
                return refused(db, key, event_type, Some(id), meta, error.into()).await;
            }
            subjects.push(subject.clone());
        }
    } else if listed && stream.subjects_listed {
        subjects.retain(|s| *s != subject);
    } else {
        return Err(AppError::NotFound("the stream does not list this subject".into()).into());
    }
    ssf_stream::ActiveModel {
        id: Set(id),
        subjects_listed: Set(true),
        subjects: Set(Value::Array(subjects).to_string()),
        updated_at: Set(db::now()),
        ..Default::default()
    }
    .update(&txn)
    .await?;
    let event = stream_event(
        key,
        NewEvent::success(
            event_type,
            format!(
                "SSF stream for {}: subject {}",
                found.stream.audience,
                if add { "added" } else { "removed" }
            ),
        ),
        id,
        meta,
    )
    .meta("subject", subject);
    audit::record(&txn, event).await?;
    txn.commit().await?;
    Ok(())
}

/// Asks for a verification event (SSF 1.0 §8.1.4): recorded as
/// `ssf.verification_requested` with the receiver's `state`, and delivered
/// by the stream in its place in the log.
#[tracing::instrument(skip(db, key, state, meta))]
pub async fn request_verification(
    db: &Db,
    key: &api_key::Model,
    id: Uuid,
    state: Option<&Value>,
    meta: &RequestMeta,
) -> StreamResult<()> {
    let found = get(db, id).await?;
    let state = match state {
        None | Some(Value::Null) => Ok(None),
        Some(value) => text(value, "state", MAX_TEXT_LEN).map(Some),
    };
    let state = match state {
        Ok(state) => state,
        Err(error) => {
            return refused(
                db,
                key,
                events::SSF_VERIFICATION_REQUESTED,
                Some(id),
                meta,
                error.into(),
            )
            .await;
        }
    };
    let mut event = stream_event(
        key,
        NewEvent::success(
            events::SSF_VERIFICATION_REQUESTED,
            format!(
                "SSF stream for {}: verification requested",
                found.stream.audience
            ),
        ),
        id,
        meta,
    );
    if let Some(state) = state {
        event = event.meta("state", state);
    }
    audit::record_alone(db, event).await?;
    Ok(())
}

/// The event recording that a push stream was disabled after failing for
/// too long (a system event: no actor).
pub fn disabled_event(stream: &ssf_stream::Model, reason: &str) -> NewEvent {
    NewEvent::failed(
        events::SSF_STREAM_DISABLED,
        format!("SSF stream for {} disabled: {reason}", stream.audience),
    )
    .meta("streamId", stream.id.to_string())
    .meta("reason", reason.to_owned())
}

/// A stream opened for delivery: which events it takes, and how a SET is
/// made for one.
pub struct Opened {
    pub stream: ssf_stream::Model,
    /// For a stream restricted to listed subjects, the users they name.
    users: Option<HashSet<Uuid>>,
}

/// The SET type an audit event makes, if any.
fn set_type(event: &audit_event::Model) -> Option<&'static str> {
    if !set::announced(event) {
        return None;
    }
    match event.event_type.as_str() {
        events::SESSION_REVOKED | events::SESSION_EXPIRED => Some(SESSION_REVOKED),
        _ => Some(CREDENTIAL_CHANGE),
    }
}

fn names_stream(event: &audit_event::Model, id: Uuid) -> bool {
    event.metadata.get("streamId").and_then(Value::as_str) == Some(id.to_string().as_str())
}

fn is_verification(event: &audit_event::Model) -> bool {
    event.status == audit_event::AuditStatus::Success
        && event.event_type == events::SSF_VERIFICATION_REQUESTED
}

impl Opened {
    /// Reads the stream afresh with the users its subjects name.
    pub async fn open(conn: &impl ConnectionTrait, stream: ssf_stream::Model) -> AppResult<Self> {
        let users = if stream.subjects_listed {
            let mut emails = Vec::new();
            let mut opaque = Vec::new();
            for subject in subjects_of(&stream) {
                if let Some(email) = subject.get("email").and_then(Value::as_str) {
                    emails.push(email.to_owned());
                } else if let Some(id) = subject.get("id").and_then(Value::as_str) {
                    opaque.push(id.to_owned());
                }
            }
            let mut users = HashSet::new();
            if !emails.is_empty() {
                for u in user::Entity::find()
                    .filter(user::Column::Email.is_in(emails))
                    .all(conn)
                    .await?
                {
                    users.insert(u.id);
                }
            }
            if !opaque.is_empty() {
                let ids: Vec<Uuid> = opaque.iter().filter_map(|o| o.parse().ok()).collect();
                for u in user::Entity::find()
                    .filter(user::Column::ExternalId.is_in(opaque))
                    .all(conn)
                    .await?
                {
                    users.insert(u.id);
                }
                users.extend(ids);
            }
            Some(users)
        } else {
            None
        };
        Ok(Self { stream, users })
    }

    /// Does the stream carry this event? Its own verification events, and
    /// SETs of the types it delivers about the subjects it lists.
    pub fn wants(&self, event: &audit_event::Model) -> bool {
        if is_verification(event) {
            return names_stream(event, self.stream.id);
        }
        let Some(kind) = set_type(event) else {
            return false;
        };
        if !self.stream.events_delivered().contains(&kind) {
            return false;
        }
        match (&self.users, event.user_id) {
            (None, _) => true,
            (Some(users), Some(user)) => users.contains(&user),
            (Some(_), None) => false,
        }
    }

    /// Did this event change the stream (or which users it names)?
    pub fn changed_by(&self, event: &audit_event::Model) -> bool {
        event.status == audit_event::AuditStatus::Success
            && ((CHANGES.contains(&event.event_type.as_str())
                && names_stream(event, self.stream.id))
                || (self.users.is_some() && USER_CHANGES.contains(&event.event_type.as_str())))
    }

    /// The `jti` of the SET for `event`.
    pub fn jti(&self, event: &audit_event::Model) -> String {
        set::jti(event.id, self.stream.id)
    }

    /// The signed SET for `event` (`None` when it makes none).
    pub async fn set(
        &self,
        conn: &impl ConnectionTrait,
        keys: &Keyring,
        event: &audit_event::Model,
    ) -> AppResult<Option<String>> {
        let stream = &self.stream;
        let claims = if is_verification(event) {
            let mut payload = Map::new();
            if let Some(state) = event.metadata.get("state") {
                payload.insert("state".into(), state.clone());
            }
            Some(json!({
                "iss": stream.issuer,
                "aud": stream.audience,
                "iat": event.created_at.timestamp(),
                "jti": self.jti(event),
                "sub_id": { "format": "opaque", "id": stream.id.to_string() },
                "events": { VERIFICATION: Value::Object(payload) },
            }))
        } else {
            let found = match event.user_id {
                Some(id) => user::Entity::find_by_id(id).one(conn).await?,
                None => None,
            };
            let email = found.as_ref().map(|u| u.email.clone()).or_else(|| {
                event
                    .metadata
                    .get("userEmail")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            let subject = set::User {
                email: email.as_deref(),
                external_id: found.as_ref().and_then(|u| u.external_id.as_deref()),
            };
            set::claims(event, subject, &stream.issuer, &stream.audience, stream.id)
        };
        match claims {
            Some(claims) => keys.sign(SET_TYP, &claims).map(Some),
            None => Ok(None),
        }
    }
}
