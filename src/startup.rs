//! Building and running the application: router, listener, shutdown.

use std::net::SocketAddr;

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::{
    config::Config,
    graphiql, service,
    state::AppState,
    transport::{self, HttpState},
};

/// A built application: its listener is bound, migrations have run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::from_state(AppState::new(config).await?).await
    }

    /// Serves an already connected and migrated state.
    pub async fn from_state(state: AppState) -> anyhow::Result<Self> {
        let bind = state.config.bind;
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
        let router = router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C, then finishes the requests under way.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        tracing::info!(address = %self.local_addr(), "listening; GraphiQL at http://{}/graphql", self.local_addr());
        // Stopped with this future even when it is dropped rather than
        // run to its end (a task aborted, as a crash would stop it): no
        // delivery outlives its server.
        let outbox =
            crate::outbox::spawn(&self.state).map_err(|e| std::io::Error::other(e.to_string()))?;
        let maintenance = crate::tasks::spawn(self.state.clone());
        let checkpoints = crate::tasks::spawn_checkpoints(self.state.clone());
        let events = crate::events::spawn(
            self.state.db.pool().clone(),
            self.state.config.database_url.clone(),
            self.state.events.clone(),
        );
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await?;
        outbox.stop().await;
        maintenance.abort();
        checkpoints.abort();
        events.abort();
        self.state.db.close().await.ok();
        tracing::info!("stopped");
        Ok(())
    }
}

pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let http = HttpState::new(state);
    let graphql_routes = Router::new()
        .route(
            "/graphql",
            get(transport::http::get).post(transport::http::post),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ));
    let mut router = Router::new()
        .merge(graphql_routes)
        .merge(crate::dashboard::routes())
        .route("/graphql/ws", get(transport::ws::upgrade))
        // Outside the GraphQL routes' timeout: one indexed read, and the
        // fastest path of the server (see `transport::gateway`).
        .route("/auth/check", any(transport::gateway::check))
        .route("/oauth/revoke", post(transport::oauth::revoke))
        .route("/oauth/introspect", post(transport::introspect::introspect))
        // OpenID Shared Signals: the metadata, the keys, stream
        // management (API keys with `ssf:manage`) and the poll endpoints.
        .route(
            service::ssf::paths::CONFIGURATION,
            get(transport::ssf::configuration),
        )
        .route(service::ssf::paths::JWKS, get(transport::ssf::jwks))
        .route(
            service::ssf::paths::STREAM,
            any(transport::ssf_streams::configuration),
        )
        .route(
            service::ssf::paths::STATUS,
            any(transport::ssf_streams::status),
        )
        .route(
            service::ssf::paths::ADD_SUBJECT,
            post(transport::ssf_streams::add_subject),
        )
        .route(
            service::ssf::paths::REMOVE_SUBJECT,
            post(transport::ssf_streams::remove_subject),
        )
        .route(
            service::ssf::paths::VERIFY,
            post(transport::ssf_streams::verify),
        )
        .route("/ssf/poll/{stream_id}", post(transport::ssf_streams::poll))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    if config.graphiql {
        router = router.route("/graphiql/{file}", get(graphiql::asset));
    }
    if !config.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = config
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::ACCEPT])
                .expose_headers([HeaderName::from_static(REQUEST_ID)])
                .max_age(std::time::Duration::from_secs(600)),
        );
    }
    let request_id = HeaderName::from_static(REQUEST_ID);
    router
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // Every log line of the request carries its id.
                tracing::info_span!("request", request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(http)
}

const REQUEST_ID: &str = "x-request-id";

/// Alive: the process answers.
async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// Ready: the database answers too.
async fn readyz(State(http): State<HttpState>) -> Response {
    match http.app.db.ping().await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
                .into_response()
        }
    }
}

/// The metrics, behind `METRICS_TOKEN` when it is set.
async fn metrics(State(http): State<HttpState>, headers: axum::http::HeaderMap) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if !crate::metrics::may_read(http.app.config.metrics_token.as_ref(), authorization) {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            )],
            "a bearer token is required for /metrics\n",
        )
            .into_response();
    }
    let active = service::session::count_active(&http.app.db).await.ok();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        http.app.metrics.render(active),
    )
        .into_response()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
