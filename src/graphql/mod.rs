//! The GraphQL schema: thin resolvers over [`crate::service`].

pub mod api_key;
pub mod audit;
pub mod documents;
pub mod guards;
pub mod impersonation;
pub mod limits;
pub mod session;
pub mod user;

use async_graphql::{
    Context, MergedObject, Schema, SchemaBuilder, ValidationMode,
    dataloader::{DataLoader, HashMapCache},
};

use crate::{
    auth::{Caller, KeyCaller, RequestMeta},
    error::{AppError, SIGN_IN_REQUIRED},
    service::access,
    state::AppState,
};

/// Reads: the viewer, sessions, the audit log and accounts.
#[derive(MergedObject, Default)]
pub struct QueryRoot(
    session::SessionQuery,
    audit::AuditQuery,
    user::UserQuery,
    api_key::ApiKeyQuery,
);

/// Changes: signing in and out, revocation, impersonation, passwords.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    session::SessionMutation,
    impersonation::ImpersonationMutation,
    user::UserMutation,
    api_key::ApiKeyMutation,
    api_key::BackendMutation,
);

pub type AppSchema = Schema<QueryRoot, MutationRoot, audit::AuditSubscription>;

/// The schema without its state: enough to print the SDL.
pub fn schema_builder() -> SchemaBuilder<QueryRoot, MutationRoot, audit::AuditSubscription> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        audit::AuditSubscription,
    )
}

/// The schema that `main` and the tests serve.
/// Limits and switches come from the configuration: depth and complexity
/// limits, directive count, and introspection and suggestions off in
/// production. (Field counts, aliases and `__typename` included, are
/// checked before execution; see [`limits`].)
///
/// With `ValidationMode::Fast` it skips most of GraphQL's validation rules
/// (the limits above still hold): only for documents that have passed
/// them already (see [`documents::Parsed::validated`]).
pub fn build_schema(state: AppState, validation: ValidationMode) -> AppSchema {
    let config = state.config.clone();
    let mut builder = schema_builder()
        .data(state)
        .validation_mode(validation)
        .limit_depth(config.max_query_depth)
        .limit_complexity(config.max_query_fields * 2)
        .limit_recursive_depth(64)
        .limit_directives(8);
    if !config.introspection {
        builder = builder.disable_introspection();
    }
    if config.production {
        builder = builder.disable_suggestions();
    }
    builder.finish()
}

/// The SDL as committed in `schema.graphql`: sorted, so it is stable.
pub fn sdl() -> String {
    schema_builder().finish().sdl_with_options(
        async_graphql::SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}

/// Sessions a guard has already read in this request (with their owners),
/// so the resolver it guards does not read them again.
#[derive(Default)]
pub struct CheckedSessions(std::sync::Mutex<Vec<(entity::session::Model, entity::user::Model)>>);

impl CheckedSessions {
    pub fn keep(&self, session: entity::session::Model, owner: entity::user::Model) {
        if let Ok(mut kept) = self.0.lock() {
            kept.push((session, owner));
        }
    }

    pub fn take(&self, id: uuid::Uuid) -> Option<(entity::session::Model, entity::user::Model)> {
        let mut kept = self.0.lock().ok()?;
        let index = kept.iter().position(|(session, _)| session.id == id)?;
        Some(kept.swap_remove(index))
    }
}

/// What the operations of one request share: every entry of an HTTP
/// batch, or one WebSocket operation. It knows whether a mutation of the
/// request has ended the caller's own session (then every later field and
/// entry is `UNAUTHENTICATED`, see `caller`), and holds the request's
/// refused attempts until they are written, once each, by
/// [`RequestScope::finish`] when the request's execution ends.
#[derive(Clone)]
pub struct RequestScope(std::sync::Arc<ScopeInner>);

struct ScopeInner {
    db: crate::db::Db,
    session_ended: std::sync::atomic::AtomicBool,
    denials: access::Denials,
}

impl RequestScope {
    pub fn new(state: &AppState) -> Self {
        Self(std::sync::Arc::new(ScopeInner {
            db: state.db.clone(),
            session_ended: Default::default(),
            denials: Default::default(),
        }))
    }

    /// The caller's own session has ended in this request.
    pub fn end_session(&self) {
        self.0
            .session_ended
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn session_ended(&self) -> bool {
        self.0
            .session_ended
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn denials(&self) -> &access::Denials {
        &self.0.denials
    }

    /// Writes the refusals noted so far. Call it when the request's (or a
    /// batch's) execution has ended, before the response is sent.
    pub async fn finish(&self) {
        access::write_denials(&self.0.db, self.0.denials.take()).await;
    }
}

impl Drop for ScopeInner {
    /// A request cut off before [`RequestScope::finish`] (a timeout, a
    /// client gone) still has its refusals written.
    fn drop(&mut self) {
        let events = self.denials.take();
        if events.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let db = self.db.clone();
                runtime.spawn(async move { access::write_denials(&db, events).await });
            }
            Err(_) => tracing::error!(
                count = events.len(),
                "refused attempts could not be audited: no runtime"
            ),
        }
    }
}

/// Per-request data: who is calling (if anyone), from where, what the
/// request's operations share (`scope`, one per HTTP request even for a
/// batch), and the request's batch loaders. The loader caches for this
/// request only, and starts out knowing the caller, so a list of one's own
/// sessions with `user { … }` costs no user query at all.
pub async fn request_data(
    request: async_graphql::Request,
    state: &AppState,
    caller: Option<Caller>,
    meta: RequestMeta,
    scope: &RequestScope,
) -> async_graphql::Request {
    let users = DataLoader::with_cache(
        user::UserLoader::new(state.db.clone()),
        tokio::spawn,
        HashMapCache::default(),
    );
    let request = request
        .data(meta)
        .data(CheckedSessions::default())
        .data(scope.clone());
    match caller {
        Some(caller) => {
            users
                .feed_one(caller.user.id, user::User::from(caller.user.clone()))
                .await;
            request.data(users).data(caller)
        }
        None => request.data(users),
    }
}

pub(crate) fn state<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a AppState> {
    ctx.data::<AppState>().map_err(|_| {
        AppError::internal(anyhow::anyhow!("AppState missing from the schema")).extend()
    })
}

/// Why a field is refused after an earlier mutation of the same request
/// ended the caller's session.
pub const SESSION_ENDED: &str = "the session of this request has ended";

/// The signed-in caller, or `UNAUTHENTICATED`: also once a mutation of this
/// request has ended the caller's own session. A request made with an API
/// key is authenticated but is no user: it is answered `FORBIDDEN`, and the
/// refusal audited (see [`refuse_key`]).
pub(crate) fn caller<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Caller> {
    if let Some(key) = key_caller(ctx) {
        return Err(refuse_key(
            ctx,
            key,
            access::Action::UserOperation,
            AppError::Forbidden(format!("`{}`: {KEY_NOT_A_USER}", ctx.item.node.name.node)),
        ));
    }
    let caller = ctx
        .data_opt::<Caller>()
        .ok_or_else(|| AppError::Unauthenticated(SIGN_IN_REQUIRED).extend())?;
    if session_ended(ctx) {
        return Err(AppError::Unauthenticated(SESSION_ENDED).extend());
    }
    Ok(caller)
}

/// Why an API key is refused an operation for signed-in users.
pub const KEY_NOT_A_USER: &str =
    "an API key acts only through the operations of its scopes, not as a user";

/// The API key the request was made with, if it was.
pub(crate) fn key_caller<'a>(ctx: &Context<'a>) -> Option<&'a KeyCaller> {
    ctx.data_opt::<KeyCaller>()
}

/// Refuses an attempt of the API key `key` (see [`access::deny_as`]):
/// noted in the request's scope, to be audited
/// when the request ends, with the key named as the actor.
pub(crate) fn refuse_key(
    ctx: &Context<'_>,
    key: &KeyCaller,
    action: access::Action,
    error: AppError,
) -> async_graphql::Error {
    let app = match state(ctx) {
        Ok(app) => app,
        Err(err) => return err,
    };
    let Ok(scope) = ctx.data::<RequestScope>() else {
        return AppError::internal(anyhow::anyhow!("RequestScope missing from the request"))
            .extend();
    };
    let meta = request_meta(ctx);
    access::deny_as(
        &app.denials,
        scope.denials(),
        access::Refused::Key(key),
        &meta,
        action,
        None,
        None,
        error,
    )
    .extend()
}

/// A mutation of this request has ended the caller's own session.
pub(crate) fn session_ended(ctx: &Context<'_>) -> bool {
    ctx.data_opt::<RequestScope>()
        .is_some_and(RequestScope::session_ended)
}

/// Marks the caller's own session as ended for the rest of the request.
pub(crate) fn end_session(ctx: &Context<'_>) {
    if let Some(scope) = ctx.data_opt::<RequestScope>() {
        scope.end_session();
    }
}

/// Refuses an attempt of `caller` (see [`access::deny`]): noted in the
/// request's scope, to be audited when the request ends.
pub(crate) fn deny(
    ctx: &Context<'_>,
    caller: &Caller,
    action: access::Action,
    subject: Option<uuid::Uuid>,
    session_id: Option<uuid::Uuid>,
    error: AppError,
) -> async_graphql::Error {
    let app = match state(ctx) {
        Ok(app) => app,
        Err(err) => return err,
    };
    let Ok(scope) = ctx.data::<RequestScope>() else {
        return AppError::internal(anyhow::anyhow!("RequestScope missing from the request"))
            .extend();
    };
    access::deny(
        &app.denials,
        scope.denials(),
        caller,
        &request_meta(ctx),
        action,
        subject,
        session_id,
        error,
    )
    .extend()
}

pub(crate) fn request_meta<'a>(ctx: &Context<'a>) -> RequestMeta {
    ctx.data_opt::<RequestMeta>().cloned().unwrap_or_default()
}

pub(crate) fn users<'a>(
    ctx: &Context<'a>,
) -> async_graphql::Result<&'a DataLoader<user::UserLoader, HashMapCache>> {
    ctx.data::<DataLoader<user::UserLoader, HashMapCache>>()
        .map_err(|_| {
            AppError::internal(anyhow::anyhow!("UserLoader missing from the request")).extend()
        })
}
