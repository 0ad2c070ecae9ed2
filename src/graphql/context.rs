//! What resolvers and guards read from the context: the state, the
//! caller, the request's origin and scope, and its batch loaders. (Kept
//! apart from the schema's root so that the modules of the schema import
//! it, and it none of them.)

use std::collections::HashMap;

use async_graphql::{
    Context,
    dataloader::{DataLoader, HashMapCache, Loader},
};
use uuid::Uuid;

use crate::{
    auth::{Caller, KeyCaller, RequestMeta},
    error::{AppError, SIGN_IN_REQUIRED},
    service::{access, denials, user as accounts},
    state::AppState,
};

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
    denials: denials::Denials,
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

    pub(crate) fn denials(&self) -> &denials::Denials {
        &self.0.denials
    }

    /// Writes the refusals noted so far. Call it when the request's (or a
    /// batch's) execution has ended, before the response is sent.
    pub async fn finish(&self) {
        denials::write_denials(&self.0.db, self.0.denials.take()).await;
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
                runtime.spawn(async move { denials::write_denials(&db, events).await });
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
        UserLoader::new(state.db.clone()),
        tokio::spawn,
        HashMapCache::default(),
    );
    let request = request
        .data(meta)
        .data(CheckedSessions::default())
        .data(scope.clone());
    match caller {
        Some(caller) => {
            users.feed_one(caller.user.id, caller.user.clone()).await;
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

/// What recording a refusal needs from the request: the state (for the
/// per-caller limit) and the request's scope (where the refusal waits to
/// be audited).
fn refusal_context<'c>(
    ctx: &'c Context<'_>,
) -> Result<(&'c AppState, &'c RequestScope), async_graphql::Error> {
    let app = state(ctx)?;
    let scope = ctx.data::<RequestScope>().map_err(|_| {
        AppError::internal(anyhow::anyhow!("RequestScope missing from the request")).extend()
    })?;
    Ok((app, scope))
}

/// Refuses an attempt of the API key `key` (see [`denials::deny_as`]):
/// noted in the request's scope, to be audited when the request ends, with
/// the key named in the event.
pub(crate) fn refuse_key(
    ctx: &Context<'_>,
    key: &KeyCaller,
    action: access::Action,
    error: AppError,
) -> async_graphql::Error {
    let (app, scope) = match refusal_context(ctx) {
        Ok(found) => found,
        Err(err) => return err,
    };
    denials::deny_as(
        &app.denials,
        scope.denials(),
        denials::Refused::Key(key),
        &request_meta(ctx),
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

/// Refuses an attempt of `caller` (see [`denials::deny`]): noted in the
/// request's scope, to be audited when the request ends.
pub(crate) fn deny(
    ctx: &Context<'_>,
    caller: &Caller,
    action: access::Action,
    subject: Option<uuid::Uuid>,
    session_id: Option<uuid::Uuid>,
    error: AppError,
) -> async_graphql::Error {
    let (app, scope) = match refusal_context(ctx) {
        Ok(found) => found,
        Err(err) => return err,
    };
    denials::deny(
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
) -> async_graphql::Result<&'a DataLoader<UserLoader, HashMapCache>> {
    ctx.data::<DataLoader<UserLoader, HashMapCache>>()
        .map_err(|_| {
            AppError::internal(anyhow::anyhow!("UserLoader missing from the request")).extend()
        })
}

/// Loads accounts by id in one query per batch, so lists that show each
/// row's user do not cost a query per row. It holds the accounts, not their
/// GraphQL type, so that it serves every module of the schema (each maps
/// what it loads).
pub struct UserLoader {
    db: crate::db::Db,
}

impl UserLoader {
    pub fn new(db: crate::db::Db) -> Self {
        Self { db }
    }
}

impl Loader<Uuid> for UserLoader {
    type Value = entity::user::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, entity::user::Model>, Self::Error> {
        let users = accounts::get_many(&self.db, keys.iter().copied())
            .await
            .map_err(AppError::extend)?;
        Ok(users.into_iter().map(|u| (u.id, u)).collect())
    }
}
