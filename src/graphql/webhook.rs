//! Webhook endpoints as the schema shows them (never their secret but
//! once), and the operations of owners and of API keys scoped
//! `WEBHOOKS_MANAGE` on them.

use async_graphql::{ComplexObject, Context, Enum, MaybeUndefined, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{api_key::ApiScope as Scope, outbox_attempt};
use uuid::Uuid;

use super::{
    context::{caller, key_caller, request_meta, state},
    guards::RoleOrScope,
};
use crate::{
    error::AppError,
    service::{
        access::{self, Action},
        outbox,
        webhook::{self as webhooks, Changes, Manager},
    },
};

/// Who is calling, as the webhook service takes it (the guard has let
/// only owners and keys with the scope through).
fn manager<'a>(ctx: &Context<'a>) -> Result<Manager<'a>> {
    match key_caller(ctx) {
        Some(key) => Ok(Manager::Key(&key.key)),
        None => Ok(Manager::Owner(caller(ctx)?)),
    }
}

fn guard() -> RoleOrScope {
    RoleOrScope::new(
        access::MANAGE_WEBHOOKS_ROLE,
        Scope::WebhooksManage,
        Action::ManageWebhooks,
    )
}

/// Where audit events are POSTed, signed as Standard Webhooks define.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct WebhookEndpoint {
    /// The endpoint's id.
    pub id: Uuid,
    /// Where deliveries are POSTed (http or https).
    pub url: String,
    /// What the endpoint is for.
    pub description: Option<String>,
    /// The audit event types delivered; null for every type.
    pub event_types: Option<Vec<String>>,
    /// Deliveries go out. Off when an owner turned it off, or after it
    /// failed for `WEBHOOK_RETRY_FOR` (see `disabledReason`).
    pub enabled: bool,
    /// When it was disabled; null while enabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why it was disabled; null while enabled.
    pub disabled_reason: Option<String>,
    /// The `seq` of the last audit event delivered or passed over (not of
    /// the event types it takes): delivery goes on after it.
    pub cursor_seq: i64,
    /// Failed attempts at the oldest undelivered event (0 when none
    /// failed).
    pub failures: i32,
    /// Since when the oldest undelivered event has failed; null when none
    /// is failing.
    pub failing_since: Option<DateTime<Utc>>,
    /// When it is tried again; null when not backing off.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last successful delivery; null if none yet.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failed attempt; null if none yet.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Until when the secret replaced by the last rotation still signs
    /// beside the current one (each delivery then carries both
    /// signatures); null when it no longer does.
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// The owner who made it; null when an API key did.
    pub created_by_id: Option<Uuid>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

#[ComplexObject]
impl WebhookEndpoint {
    /// Audit events after `cursorSeq`: how far delivery is behind (events
    /// of types it does not take count too, until passed over).
    async fn lag(&self, ctx: &Context<'_>) -> Result<i64> {
        let app = state(ctx)?;
        let head = outbox::head_seq(&app.db).await.map_err(AppError::extend)?;
        Ok((head - self.cursor_seq).max(0))
    }
}

impl From<webhooks::Endpoint> for WebhookEndpoint {
    fn from(found: webhooks::Endpoint) -> Self {
        let webhooks::Endpoint { endpoint, cursor } = found;
        Self {
            id: endpoint.id,
            event_types: endpoint.event_types(),
            url: endpoint.url,
            description: endpoint.description,
            enabled: cursor.enabled,
            disabled_at: cursor.disabled_at,
            disabled_reason: cursor.disabled_reason,
            cursor_seq: cursor.cursor_seq,
            failures: cursor.attempts,
            failing_since: cursor.failing_since,
            next_attempt_at: cursor.next_attempt_at,
            last_success_at: cursor.last_success_at,
            last_failure_at: cursor.last_failure_at,
            previous_secret_until: endpoint
                .previous_secret_until
                .filter(|until| *until > Utc::now()),
            created_by_id: endpoint.created_by,
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
        }
    }
}

/// An endpoint just made, or just given a new secret.
#[derive(SimpleObject)]
pub struct WebhookEndpointPayload {
    /// The signing secret (`whsec_…`): shown this once. Receivers verify
    /// `webhook-signature` with it (any Standard Webhooks library does).
    pub secret: String,
    /// The endpoint as `webhookEndpoints` lists it.
    pub endpoint: WebhookEndpoint,
}

impl From<webhooks::WithSecret> for WebhookEndpointPayload {
    fn from(made: webhooks::WithSecret) -> Self {
        Self {
            secret: made.secret,
            endpoint: made.endpoint.into(),
        }
    }
}

/// How a delivery attempt ended.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// The receiver answered 2xx.
    Success,
    /// Another status, a redirect, a timeout, or no connection.
    Failed,
}

/// One attempt at delivering one audit event.
#[derive(SimpleObject, Clone, Debug)]
pub struct WebhookDelivery {
    /// The attempt's id (time-ordered; `after` pages by it).
    pub id: Uuid,
    /// The event's id: the `webhook-id` header.
    pub event_id: Uuid,
    /// The event's position in the audit log.
    pub event_seq: i64,
    /// The event's type.
    pub event_type: String,
    /// 1 for the first attempt at this event, then 2, 3, …
    pub attempt: i32,
    /// How it ended.
    pub status: DeliveryStatus,
    /// The receiver's HTTP status, when it answered.
    pub response_code: Option<i32>,
    /// How long the attempt took, in milliseconds.
    pub latency_ms: i64,
    /// Why it failed; null when it succeeded.
    pub error: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl From<outbox_attempt::Model> for WebhookDelivery {
    fn from(model: outbox_attempt::Model) -> Self {
        Self {
            id: model.id,
            event_id: model.event_id,
            event_seq: model.event_seq,
            event_type: model.event_type,
            attempt: model.attempt,
            status: if model.status == "success" {
                DeliveryStatus::Success
            } else {
                DeliveryStatus::Failed
            },
            response_code: model.response_code,
            latency_ms: model.latency_ms,
            error: model.error,
            created_at: model.created_at,
        }
    }
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// Owners, and API keys with `WEBHOOKS_MANAGE`: every webhook
    /// endpoint, newest first.
    #[graphql(guard = "guard()")]
    async fn webhook_endpoints(&self, ctx: &Context<'_>) -> Result<Vec<WebhookEndpoint>> {
        let app = state(ctx)?;
        let found = webhooks::list(&app.db).await.map_err(AppError::extend)?;
        Ok(found.into_iter().map(WebhookEndpoint::from).collect())
    }

    /// Owners, and API keys with `WEBHOOKS_MANAGE`: an endpoint's delivery
    /// attempts, newest first; `after` (an attempt's id) pages on to
    /// older ones.
    #[graphql(guard = "guard()")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] endpoint_id: Uuid,
        #[graphql(desc = "At most this many, 1 to 100.", default = 50)] limit: i32,
        #[graphql(desc = "Only attempts older than this one.")] after: Option<Uuid>,
    ) -> Result<Vec<WebhookDelivery>> {
        let app = state(ctx)?;
        let limit = u64::try_from(limit).unwrap_or(0);
        let found = webhooks::deliveries(&app.db, endpoint_id, limit, after)
            .await
            .map_err(AppError::extend)?;
        Ok(found.into_iter().map(WebhookDelivery::from).collect())
    }
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Owners, and API keys with `WEBHOOKS_MANAGE`: makes an endpoint that
    /// receives the audit events recorded from now on (of `eventTypes`,
    /// or every type). The answer holds its signing secret, shown this
    /// once. The URL must be http or https, at most 2048 characters, and
    /// resolve to public addresses only (unless `WEBHOOK_ALLOW_PRIVATE`);
    /// at most 50 endpoints exist at once. Audited as `webhook.created`,
    /// refusals too.
    #[graphql(guard = "guard()")]
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Where to POST deliveries.")] url: String,
        #[graphql(desc = "The audit event types to deliver (see `auditEventTypes`); \
            every type when left out.")]
        event_types: Option<Vec<String>>,
        #[graphql(desc = "What the endpoint is for.")] description: Option<String>,
    ) -> Result<WebhookEndpointPayload> {
        let app = state(ctx)?;
        webhooks::create(
            &app.db,
            &app.config,
            manager(ctx)?,
            &url,
            event_types.as_deref(),
            description.as_deref(),
            &request_meta(ctx),
        )
        .await
        .map(WebhookEndpointPayload::from)
        .map_err(AppError::extend)
    }

    /// Owners, and API keys with `WEBHOOKS_MANAGE`: changes an endpoint;
    /// arguments left out stay as they are (`eventTypes: null` delivers
    /// every type; `description: null` clears it). Enabling a disabled
    /// endpoint retries the event it stopped at at once. Audited as
    /// `webhook.updated`, refusals too.
    #[graphql(guard = "guard()")]
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: Uuid,
        #[graphql(desc = "A new URL.")] url: Option<String>,
        #[graphql(desc = "The event types to deliver; null for every type.")]
        event_types: MaybeUndefined<Vec<String>>,
        #[graphql(desc = "A new description; null for none.")] description: MaybeUndefined<String>,
        #[graphql(desc = "Turn deliveries on or off.")] enabled: Option<bool>,
    ) -> Result<WebhookEndpoint> {
        let app = state(ctx)?;
        let changes = Changes {
            url,
            event_types: maybe(event_types),
            description: maybe(description),
            enabled,
        };
        webhooks::update(
            &app.db,
            &app.config,
            manager(ctx)?,
            id,
            changes,
            &request_meta(ctx),
        )
        .await
        .map(WebhookEndpoint::from)
        .map_err(AppError::extend)
    }

    /// Owners, and API keys with `WEBHOOKS_MANAGE`: deletes an endpoint
    /// and its delivery log; no delivery starts after it. Audited as
    /// `webhook.deleted`.
    #[graphql(guard = "guard()")]
    async fn delete_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: Uuid,
    ) -> Result<bool> {
        let app = state(ctx)?;
        webhooks::delete(&app.db, manager(ctx)?, id, &request_meta(ctx))
            .await
            .map(|_| true)
            .map_err(AppError::extend)
    }

    /// Owners, and API keys with `WEBHOOKS_MANAGE`: gives an endpoint a new
    /// signing secret, shown this once. Deliveries from now on are signed
    /// with it and, for `keepPreviousFor`, also with the secret it
    /// replaces (two signatures in `webhook-signature`), so the receiver
    /// can switch secrets without refusing a delivery in between; see
    /// `previousSecretUntil`. Audited as `webhook.secret_rotated`.
    #[graphql(guard = "guard()")]
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: Uuid,
        #[graphql(
            desc = "How long the replaced secret keeps signing, e.g. `1h` or `2d`: at most \
            `7d`; `0s` ends it at once. Default `24h`."
        )]
        keep_previous_for: Option<String>,
    ) -> Result<WebhookEndpointPayload> {
        let app = state(ctx)?;
        webhooks::rotate_secret(
            &app.db,
            manager(ctx)?,
            id,
            keep_previous_for.as_deref(),
            &request_meta(ctx),
        )
        .await
        .map(WebhookEndpointPayload::from)
        .map_err(AppError::extend)
    }

    /// Owners, and API keys with `WEBHOOKS_MANAGE`: sends an endpoint's
    /// events again, from the audit event `fromSeq` on, in order (each
    /// with its `webhook-id` as before, so receivers drop what they had).
    /// Audited as `webhook.replayed`.
    #[graphql(guard = "guard()")]
    async fn replay_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] endpoint_id: Uuid,
        #[graphql(desc = "The `seq` of the first audit event to send again.")] from_seq: i64,
    ) -> Result<WebhookEndpoint> {
        let app = state(ctx)?;
        webhooks::replay(
            &app.db,
            manager(ctx)?,
            endpoint_id,
            from_seq,
            &request_meta(ctx),
        )
        .await
        .map(WebhookEndpoint::from)
        .map_err(AppError::extend)
    }
}

/// Left out: unchanged (`None`); null: cleared (`Some(None)`).
fn maybe<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}
