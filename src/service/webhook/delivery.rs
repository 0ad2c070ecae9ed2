//! One delivery of one audit event to one endpoint, as Standard Webhooks
//! (<https://www.standardwebhooks.com>) defines it: a POST of the event as
//! JSON with `webhook-id` (the event's id: the same on every retry and
//! replay, so receivers drop duplicates by it), `webhook-timestamp` (Unix
//! seconds of the attempt) and `webhook-signature` (`v1,` and the base64
//! HMAC-SHA256 of `id.timestamp.body` under the endpoint's key).

use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::STANDARD};
use entity::audit_event;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::address;
use crate::{
    error::{AppError, AppResult},
    service::outbox::Outcome,
};

/// The prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a signing secret (Standard Webhooks asks for 24 to 64).
const SECRET_BYTES: usize = 32;
/// Most bytes of a receiver's answer read (the rest is dropped unread).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024;
/// The User-Agent deliveries carry.
const USER_AGENT: &str = concat!("session-manager-webhooks/", env!("CARGO_PKG_VERSION"));

/// A new signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> AppResult<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| AppError::internal(anyhow::anyhow!("OS random source failed: {e}")))?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The key a secret signs with: the bytes after `whsec_`.
fn key_of(secret: &str) -> AppResult<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .map_err(|e| {
            AppError::internal(anyhow::anyhow!("a stored webhook secret is malformed: {e}"))
        })
}

/// The `webhook-signature` header: one `v1,` signature per secret,
/// space-separated (receivers accept a delivery any of them verifies).
pub fn signatures(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> AppResult<String> {
    let signed = secrets
        .iter()
        .map(|secret| sign(secret, id, timestamp, body))
        .collect::<AppResult<Vec<_>>>()?;
    Ok(signed.join(" "))
}

/// `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> AppResult<String> {
    let key = key_of(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|e| AppError::internal(anyhow::anyhow!("HMAC key: {e}")))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The body of an event's delivery: the event as `sessionAudit` answers it
/// (same field names and values), and Standard Webhooks' `type` and
/// `timestamp` (the event's type and time), as JSON with its keys sorted.
///
/// Serialized straight from the event: building a `serde_json::Value`
/// first copied every string and the metadata of every event delivered.
/// The bytes are those of that `Value` (a test holds it to them).
pub fn body(event: &audit_event::Model) -> serde_json::Result<Vec<u8>> {
    let status = match event.status {
        audit_event::AuditStatus::Success => "SUCCESS",
        audit_event::AuditStatus::Failed => "FAILED",
    };
    // As the schema's `DateTime` writes it.
    let created_at = event.created_at.to_rfc3339();
    serde_json::to_vec(&Body {
        actor_id: event.actor_id,
        created_at: &created_at,
        event_type: &event.event_type,
        hash: &event.hash,
        id: event.id,
        ip_address: event.ip_address.as_deref(),
        message: &event.message,
        metadata: &event.metadata,
        seq: event.seq,
        session_id: event.session_id,
        status,
        timestamp: &created_at,
        kind: &event.event_type,
        user_agent: event.user_agent.as_deref(),
        user_id: event.user_id,
    })
}

/// [`body`]'s fields, in the order of their names (as a `Value`'s map
/// writes them).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    actor_id: Option<uuid::Uuid>,
    created_at: &'a str,
    event_type: &'a str,
    hash: &'a str,
    id: uuid::Uuid,
    ip_address: Option<&'a str>,
    message: &'a str,
    metadata: &'a Value,
    seq: i64,
    session_id: Option<uuid::Uuid>,
    status: &'static str,
    timestamp: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    user_agent: Option<&'a str>,
    user_id: Option<uuid::Uuid>,
}

/// The HTTP client every delivery of a process goes through: no redirects
/// followed (a 3xx is a failed attempt), no proxy from the environment
/// (a proxy would resolve names itself, past the address rule), names
/// resolved through [`address::Resolver`], each attempt bounded by
/// `timeout`.
pub fn client(timeout: Duration, allow_private: bool) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(address::Resolver::shared(allow_private))
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(USER_AGENT)
        .pool_max_idle_per_host(2)
        .build()?)
}

/// Sends `event` to `url`, signed with each of `secrets`; any 2xx is a success,
/// anything else (another status, a timeout, a refused connection or
/// address) a failure to retry.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    secrets: &[&str],
    event: &audit_event::Model,
    allow_private: bool,
) -> Outcome {
    let started = Instant::now();
    let outcome = |response_code: Option<u16>, error: Option<String>| Outcome {
        ok: error.is_none(),
        response_code,
        latency_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        error,
    };
    let url = match address::parse_url(url) {
        Ok(url) => url,
        Err(e) => return outcome(None, Some(e.to_string())),
    };
    // An IP literal is not resolved by the client: check it here.
    if let Some(ip) = literal_ip(&url)
        && !address::is_allowed(ip, allow_private)
    {
        return outcome(
            None,
            Some(format!(
                "{ip} is not a public address (WEBHOOK_ALLOW_PRIVATE is off)"
            )),
        );
    }
    let body = match body(event) {
        Ok(body) => body,
        Err(e) => return outcome(None, Some(format!("cannot encode the event: {e}"))),
    };
    let id = event.id.to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let signature = match signatures(secrets, &id, timestamp, &body) {
        Ok(signature) => signature,
        Err(e) => return outcome(None, Some(e.to_string())),
    };
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(e) => return outcome(None, Some(describe(&e))),
    };
    let status = response.status();
    // Read a little of the answer (a receiver's error text helps), never
    // more: a huge or endless body costs nothing.
    let mut read = 0usize;
    let mut text = Vec::new();
    while read < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                read += chunk.len();
                let room = MAX_RESPONSE_BYTES.saturating_sub(text.len());
                text.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(_) => break,
        }
    }
    drop(response);
    let code = Some(status.as_u16());
    if status.is_success() {
        outcome(code, None)
    } else if status.is_redirection() {
        outcome(
            code,
            Some(format!("HTTP {status}: redirects are not followed")),
        )
    } else {
        let excerpt: String = String::from_utf8_lossy(&text).chars().take(200).collect();
        outcome(code, Some(format!("HTTP {status}: {}", excerpt.trim())))
    }
}

fn literal_ip(url: &reqwest::Url) -> Option<std::net::IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(ip.into()),
        url::Host::Ipv6(ip) => Some(ip.into()),
        url::Host::Domain(_) => None,
    }
}

/// A failed request in a few words, with its cause (reqwest's own message
/// says only "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_base64_of_32_bytes() {
        let secret = new_secret().unwrap();
        assert!(secret.starts_with(SECRET_PREFIX));
        assert_eq!(key_of(&secret).unwrap().len(), SECRET_BYTES);
        assert_ne!(secret, new_secret().unwrap());
    }

    #[test]
    fn the_signature_is_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    /// The body as it was first built, through a `Value`.
    fn body_by_value(event: &audit_event::Model) -> Vec<u8> {
        let status = match event.status {
            audit_event::AuditStatus::Success => "SUCCESS",
            audit_event::AuditStatus::Failed => "FAILED",
        };
        let created_at = event.created_at.to_rfc3339();
        serde_json::to_vec(&serde_json::json!({
            "type": event.event_type,
            "timestamp": created_at,
            "id": event.id,
            "seq": event.seq,
            "eventType": event.event_type,
            "status": status,
            "message": event.message,
            "createdAt": created_at,
            "actorId": event.actor_id,
            "userId": event.user_id,
            "sessionId": event.session_id,
            "ipAddress": event.ip_address,
            "userAgent": event.user_agent,
            "metadata": event.metadata,
            "hash": event.hash,
        }))
        .unwrap()
    }

    #[test]
    fn the_body_is_byte_for_byte_the_first_one() {
        let full = audit_event::Model {
            id: uuid::Uuid::now_v7(),
            seq: 42,
            created_at: chrono::Utc::now(),
            event_type: "session.revoked".into(),
            status: audit_event::AuditStatus::Success,
            message: "session ab12\u{2026} of \"q\" revoked\n(tab\t) é 🦀".into(),
            actor_id: Some(uuid::Uuid::new_v4()),
            user_id: Some(uuid::Uuid::new_v4()),
            session_id: Some(uuid::Uuid::new_v4()),
            ip_address: Some("2001:db8::1".into()),
            user_agent: Some("Mozilla/5.0 \"x\" \\ y".into()),
            metadata: serde_json::json!({ "z": [1, 2.5, null, { "b": true, "a": "\u{7f}" }], "a": "x" }),
            prev_hash: "0".repeat(64),
            hash: "f".repeat(64),
        };
        let bare = audit_event::Model {
            status: audit_event::AuditStatus::Failed,
            actor_id: None,
            user_id: None,
            session_id: None,
            ip_address: None,
            user_agent: None,
            metadata: serde_json::json!({}),
            ..full.clone()
        };
        for event in [full, bare] {
            assert_eq!(
                String::from_utf8(body(&event).unwrap()).unwrap(),
                String::from_utf8(body_by_value(&event)).unwrap()
            );
        }
    }
}
