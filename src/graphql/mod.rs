//! The GraphQL schema: thin resolvers over [`crate::service`].

pub mod api_key;
pub mod audit;
pub mod context;
pub mod documents;
pub mod fast;
pub mod guards;
pub mod impersonation;
pub mod limits;
pub mod paging;
pub mod session;
pub mod ssf;
pub mod user;
pub mod webhook;

use async_graphql::{MergedObject, Schema, SchemaBuilder, ValidationMode};

pub use context::{CheckedSessions, RequestScope, SESSION_ENDED, request_data};

use crate::state::AppState;

/// Reads: the viewer, sessions, the audit log and accounts.
#[derive(MergedObject, Default)]
pub struct QueryRoot(
    session::SessionQuery,
    audit::AuditQuery,
    user::UserQuery,
    api_key::ApiKeyQuery,
    webhook::WebhookQuery,
    ssf::SsfQuery,
);

/// Changes: signing in and out, revocation, impersonation, passwords.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    session::SessionMutation,
    impersonation::ImpersonationMutation,
    user::UserMutation,
    api_key::ApiKeyMutation,
    api_key::BackendMutation,
    webhook::WebhookMutation,
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
