//! session-manager: a GraphQL API for login sessions — inventory,
//! revocation, impersonation and a tamper-evident audit log.
// One exception, `db::stable_plans`: a SQLite setting only reachable by FFI.
#![deny(unsafe_code)]

pub mod auth;
pub mod cache;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod error;
pub mod events;
pub mod graphiql;
pub mod graphql;
pub mod metrics;
pub mod outbox;
pub mod service;
pub mod startup;
pub mod state;
pub mod tasks;
pub mod telemetry;
pub mod transport;
