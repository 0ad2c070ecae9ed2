//! Business logic. Functions take `&impl ConnectionTrait` so they run the
//! same inside a transaction or on the pool, and return [`AppError`].
//!
//! [`AppError`]: crate::error::AppError

pub mod access;
pub mod audit;
pub mod device;
pub mod impersonation;
pub mod seed;
pub mod session;
pub mod throttle;
pub mod user;
