//! The ways requests arrive: GraphQL over HTTP ([`http`]), subscriptions
//! over WebSocket ([`ws`]), and, without GraphQL, the gateway's token
//! check ([`gateway`]) and the OAuth token endpoints ([`oauth`]). What
//! they share lives here, in the module they import from and that imports
//! none of them back: the state their handlers share ([`HttpState`]) and
//! the few rules they must apply alike (the client's address, which errors
//! carry a code, what counts as a request that could not run).
//! [`crate::startup`] builds the state and mounts the handlers; nothing
//! here imports it.

use std::{net::SocketAddr, sync::Arc};

use async_graphql::{ServerError, ValidationMode};
use axum::http::{HeaderMap, header};

use crate::{
    auth::RequestMeta,
    graphql::{self, AppSchema, documents::Documents},
    state::AppState,
};

pub mod gateway;
pub mod http;
pub mod introspect;
pub mod oauth;
pub mod ssf;
pub mod ssf_streams;
pub mod ws;

/// What the HTTP handlers share, behind one `Arc`: axum clones the state
/// of a route for every request (measured: 18 clones of the `AppState`'s
/// `Arc`s per request before), now one reference count.
#[derive(Clone)]
pub struct HttpState(Arc<HttpShared>);

impl std::ops::Deref for HttpState {
    type Target = HttpShared;

    fn deref(&self) -> &HttpShared {
        &self.0
    }
}

pub struct HttpShared {
    pub app: AppState,
    pub schema: AppSchema,
    /// The same schema without the validation rules, for documents that
    /// have passed them already (see [`Documents`]).
    pub validated_schema: AppSchema,
    /// Parsed documents, shared by HTTP and WebSocket requests.
    pub documents: Arc<Documents>,
    /// Permits for SSF long polls waiting at once.
    pub ssf_long_polls: Arc<tokio::sync::Semaphore>,
}

impl HttpState {
    /// Both schemas and the document cache, sized by the configuration.
    pub fn new(state: AppState) -> Self {
        let config = &state.config;
        Self(Arc::new(HttpShared {
            schema: graphql::build_schema(state.clone(), ValidationMode::Strict),
            validated_schema: graphql::build_schema(state.clone(), ValidationMode::Fast),
            documents: Arc::new(Documents::new(
                config.max_query_fields,
                graphql::limits::document_bound(config.max_query_depth),
            )),
            ssf_long_polls: Arc::new(tokio::sync::Semaphore::new(ssf_streams::MAX_LONG_POLLS)),
            app: state,
        }))
    }
}

/// The client's address: the socket's, or with `TRUST_FORWARDED_FOR` the
/// last `X-Forwarded-For` entry (the one the trusted proxy appended).
pub(crate) fn client_ip(http: &HttpState, peer: SocketAddr, headers: &HeaderMap) -> String {
    if http.app.config.trust_forwarded_for
        && let Some(forwarded) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
    {
        return forwarded.to_owned();
    }
    peer.ip().to_string()
}

/// Who sent the request, as the audit log records it: the client's
/// address and its `User-Agent`.
pub(crate) fn request_meta(http: &HttpState, peer: SocketAddr, headers: &HeaderMap) -> RequestMeta {
    RequestMeta::new(
        Some(&client_ip(http, peer, headers)),
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    )
}

/// No data and no error tied to a field: parsing, validation or variable
/// coercion failed, so nothing ran.
pub(crate) fn is_request_error(response: &async_graphql::Response) -> bool {
    !response.errors.is_empty()
        && response.data == async_graphql::Value::Null
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// async-graphql's own parse, validation, limit and input-coercion errors
/// carry no `extensions.code`; they are all the client's mistakes. Errors
/// made by this server always have one already (see [`AppError`]).
///
/// [`AppError`]: crate::error::AppError
pub(crate) fn code_uncoded_errors(errors: &mut [ServerError]) {
    for error in errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_USER_INPUT");
        }
    }
}

/// `SSF_ISSUER`, else `http://` and the host the request was sent to
/// (when it is a plain host and port), else the address the server is
/// bound to.
pub(crate) fn ssf_issuer(http: &HttpState, headers: &HeaderMap) -> String {
    if let Some(issuer) = &http.app.config.ssf_issuer {
        return issuer.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        });
    match host {
        Some(host) => format!("http://{host}"),
        None => format!("http://{}", http.app.config.bind),
    }
}
