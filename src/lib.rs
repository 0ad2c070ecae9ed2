//! session-manager: a GraphQL API for login sessions — inventory,
//! revocation, impersonation and a tamper-evident audit log.
#![forbid(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod error;
pub mod events;
pub mod graphiql;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod service;
pub mod startup;
pub mod tasks;
pub mod telemetry;
pub mod ws;
