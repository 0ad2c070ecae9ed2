//! Building and running the application: state, router, listener.

use std::{net::SocketAddr, sync::Arc};

use async_graphql::Pos;
use async_graphql_axum::{GraphQLRequest, rejection::GraphQLRejection};
use axum::{
    Json, Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sea_orm::DatabaseConnection;
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::{limit::RequestBodyLimitLayer, trace::TraceLayer};

use crate::{
    auth::{self, Caller, PasswordHasherPool, RequestMeta},
    config::Config,
    db,
    error::{AppError, AppResult},
    graphiql,
    graphql::{self, AppSchema},
    metrics::Metrics,
    service,
};

/// Everything a request may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub hasher: PasswordHasherPool,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// Connects to the database and runs the migrations.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let db = db::connect(&config.database_url).await?;
        db::migrate(&db).await?;
        Ok(Self {
            db,
            config: Arc::new(config),
            hasher: PasswordHasherPool::new()?,
            metrics: Arc::new(Metrics::default()),
        })
    }
}

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
        let maintenance = crate::tasks::spawn(self.state.clone());
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await?;
        maintenance.abort();
        self.state.db.clone().close().await.ok();
        tracing::info!("stopped");
        Ok(())
    }
}

#[derive(Clone)]
struct HttpState {
    app: AppState,
    schema: AppSchema,
}

pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let http = HttpState {
        schema: graphql::build_schema(state.clone()),
        app: state,
    };
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphiql/{file}", get(graphiql::asset))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(TraceLayer::new_for_http())
        .with_state(http)
}

async fn healthz(State(http): State<HttpState>) -> Response {
    match http.app.db.ping().await {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
                .into_response()
        }
    }
}

async fn metrics(State(http): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        http.app.metrics.render(),
    )
        .into_response()
}

/// `GET /graphql`: GraphiQL for a browser; a query for any other client.
async fn graphql_get(
    State(http): State<HttpState>,
    connect: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    let has_query = uri.query().is_some_and(|q| !q.is_empty());
    if !has_query && accepts_html(&headers) {
        return graphiql::page();
    }
    match request {
        Ok(request) => execute(&http, connect, &headers, Method::GET, request).await,
        Err(rejection) => {
            tracing::debug!(error = %rejection.0, "unreadable GET request");
            bad_request("a GET request needs a valid `query` parameter")
        }
    }
}

/// `POST /graphql`.
async fn graphql_post(
    State(http): State<HttpState>,
    connect: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    execute(&http, connect, &headers, Method::POST, request).await
}

async fn execute(
    http: &HttpState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: &HeaderMap,
    _method: Method,
    request: GraphQLRequest,
) -> Response {
    let meta = RequestMeta::new(
        Some(&peer.ip().to_string()),
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    let caller = match resolve_caller(&http.app, headers).await {
        Ok(caller) => caller,
        Err(err) => {
            let mut error = err.extend().into_server_error(Pos::default());
            // The error is about the request, not a place in the document.
            error.locations.clear();
            return respond(headers, async_graphql::Response::from_errors(vec![error]));
        }
    };
    Metrics::inc(&http.app.metrics.graphql_requests);
    let request = graphql::request_data(request.into_inner(), &http.app, caller, meta);
    let mut response = http.schema.execute(request).await;
    code_uncoded_errors(&mut response);
    respond(headers, response)
}

/// async-graphql's own parse, validation and input-coercion errors carry no
/// `extensions.code`; they are all the client's mistakes. Errors made by
/// this server always have one already (see [`AppError`]).
fn code_uncoded_errors(response: &mut async_graphql::Response) {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_USER_INPUT");
        }
    }
}

/// The caller from `Authorization: Bearer`, once per request. No header is
/// anonymous; a header that does not name a live session is an error.
async fn resolve_caller(app: &AppState, headers: &HeaderMap) -> AppResult<Option<Caller>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = auth::bearer_token(value.as_bytes())?;
    service::session::authenticate(&app.db, &app.config, token)
        .await
        .map(Some)
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// Serialises a GraphQL response as the client accepts it:
/// `application/graphql-response+json` when asked for, otherwise JSON.
fn respond(headers: &HeaderMap, response: async_graphql::Response) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let content_type = if accept.contains(GRAPHQL_RESPONSE_JSON) {
        GRAPHQL_RESPONSE_JSON
    } else {
        "application/json"
    };
    match serde_json::to_vec(&response) {
        Ok(body) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body,
        )
            .into_response(),
        Err(err) => {
            let err = AppError::internal(err);
            (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response()
        }
    }
}

fn bad_request(message: &str) -> Response {
    let body =
        json!({ "errors": [{ "message": message, "extensions": { "code": "BAD_USER_INPUT" } }] });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
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
