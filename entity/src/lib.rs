//! SeaORM entities of session-manager. Nothing here knows about GraphQL: the
//! server maps these models to its own GraphQL types, so internals such as
//! `token_hash` cannot reach the schema by accident.

pub mod audit_chain;
pub mod audit_event;
pub mod session;
pub mod sign_in_failure;
pub mod user;

pub mod prelude {
    pub use super::audit_chain::Entity as AuditChain;
    pub use super::audit_event::Entity as AuditEvent;
    pub use super::session::Entity as Session;
    pub use super::sign_in_failure::Entity as SignInFailure;
    pub use super::user::Entity as User;
}
