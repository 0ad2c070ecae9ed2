//! The GraphQL schema: thin resolvers over [`crate::service`].

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
    auth::{Caller, RequestMeta},
    error::{AppError, SIGN_IN_REQUIRED},
    startup::AppState,
};

#[derive(MergedObject, Default)]
pub struct QueryRoot(session::SessionQuery, audit::AuditQuery, user::UserQuery);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    session::SessionMutation,
    impersonation::ImpersonationMutation,
    user::UserMutation,
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

/// Per-request data: who is calling (if anyone), from where, and the
/// request's batch loaders. The loader caches for this request only, and
/// starts out knowing the caller, so a list of one's own sessions with
/// `user { … }` costs no user query at all.
pub async fn request_data(
    request: async_graphql::Request,
    state: &AppState,
    caller: Option<Caller>,
    meta: RequestMeta,
) -> async_graphql::Request {
    let users = DataLoader::with_cache(
        user::UserLoader::new(state.db.clone()),
        tokio::spawn,
        HashMapCache::default(),
    );
    let request = request.data(meta).data(CheckedSessions::default());
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

/// The signed-in caller, or `UNAUTHENTICATED`.
pub(crate) fn caller<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Caller> {
    ctx.data_opt::<Caller>()
        .ok_or_else(|| AppError::Unauthenticated(SIGN_IN_REQUIRED).extend())
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
