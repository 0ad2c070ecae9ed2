//! Push delivery (RFC 8935) of the streams whose method is push: the
//! outbox worker opens each by its cursor (kind `ssf`) and POSTs one SET
//! per event as `application/secevent+jwt`; `202 Accepted` is a delivery,
//! anything else (another status, a timeout, a refused connection or
//! address) a failure retried with back-off until the stream has failed
//! for `WEBHOOK_RETRY_FOR`, when it is disabled and audited
//! (`ssf.stream_disabled`). The same address rules, client and bounds as
//! webhooks apply (see [`crate::service::webhook::address`]).

use std::{sync::Arc, time::Instant};

use entity::{audit_event, ssf_stream};
use uuid::Uuid;

use super::{
    Keyring,
    stream::{self, Opened},
};
use crate::{
    config::Config,
    db::Db,
    error::AppResult,
    service::{
        audit::NewEvent,
        outbox::{self, Outcome},
        webhook::{address, delivery},
    },
};

/// Push streams as the outbox worker sees them.
pub struct PushStreams {
    client: reqwest::Client,
    allow_private: bool,
    keys: Arc<Keyring>,
}

impl PushStreams {
    pub fn new(config: &Config, keys: Arc<Keyring>) -> anyhow::Result<Self> {
        Ok(Self {
            client: delivery::client(config.webhook_timeout, config.webhook_allow_private)?,
            allow_private: config.webhook_allow_private,
            keys,
        })
    }
}

#[async_trait::async_trait]
impl outbox::Destination for PushStreams {
    fn kind(&self) -> &'static str {
        stream::KIND_PUSH
    }

    async fn open(&self, db: &Db, id: Uuid) -> AppResult<Option<Box<dyn outbox::Sender>>> {
        use sea_orm::EntityTrait;
        let Some(found) = ssf_stream::Entity::find_by_id(id).one(db).await? else {
            return Ok(None);
        };
        if found.delivery_method != super::PUSH || found.endpoint_url.is_none() {
            return Ok(None);
        }
        let opened = Opened::open(db, found).await?;
        Ok(Some(Box::new(PushSender {
            opened,
            db: db.clone(),
            client: self.client.clone(),
            allow_private: self.allow_private,
            keys: self.keys.clone(),
        })))
    }
}

struct PushSender {
    opened: Opened,
    db: Db,
    client: reqwest::Client,
    allow_private: bool,
    keys: Arc<Keyring>,
}

#[async_trait::async_trait]
impl outbox::Sender for PushSender {
    fn wants(&self, event: &audit_event::Model) -> bool {
        self.opened.wants(event)
    }

    fn changed_by(&self, event: &audit_event::Model) -> bool {
        self.opened.changed_by(event)
    }

    async fn send(&self, event: &audit_event::Model) -> Outcome {
        let started = Instant::now();
        let outcome = |response_code: Option<u16>, error: Option<String>| Outcome {
            ok: error.is_none(),
            response_code,
            latency_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            error,
        };
        let set = match self.opened.set(&self.db, &self.keys, event).await {
            Ok(Some(set)) => set,
            // Nothing to say about it after all (no subject to name).
            Ok(None) => return outcome(None, None),
            Err(e) => return outcome(None, Some(format!("cannot make the SET: {e}"))),
        };
        let stream = &self.opened.stream;
        let Some(url) = stream.endpoint_url.as_deref() else {
            return outcome(None, Some("the stream has no endpoint_url".into()));
        };
        let url = match address::parse_url(url) {
            Ok(url) => url,
            Err(e) => return outcome(None, Some(e.to_string())),
        };
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal
            && !address::is_allowed(ip, self.allow_private)
        {
            return outcome(
                None,
                Some(format!(
                    "{ip} is not a public address (WEBHOOK_ALLOW_PRIVATE is off)"
                )),
            );
        }
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/secevent+jwt")
            .header("accept", "application/json")
            .body(set);
        if let Some(authorization) = &stream.authorization_header {
            request = request.header("authorization", authorization);
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => return outcome(None, Some(format!("request failed: {e}"))),
        };
        let status = response.status();
        let mut text = Vec::new();
        while text.len() < delivery::MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = delivery::MAX_RESPONSE_BYTES - text.len();
                    text.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                _ => break,
            }
        }
        drop(response);
        let code = Some(status.as_u16());
        if status == reqwest::StatusCode::ACCEPTED {
            outcome(code, None)
        } else {
            // RFC 8935 §2.3: a refusal carries {"err", "description"}.
            let excerpt: String = String::from_utf8_lossy(&text).chars().take(200).collect();
            outcome(
                code,
                Some(format!("HTTP {status} (202 expected): {}", excerpt.trim())),
            )
        }
    }

    fn disabled_event(&self, reason: &str) -> NewEvent {
        stream::disabled_event(&self.opened.stream, reason)
    }
}
