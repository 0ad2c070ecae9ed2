//! Business logic; functions return [`AppError`]. What a function takes
//! says how it touches the database:
//!
//! - `&impl ConnectionTrait`: reads, and writes that are one step of a
//!   larger change; they run the same inside the caller's transaction or
//!   on the pool.
//! - `&DatabaseConnection`: the function writes on its own, opening its
//!   own write transactions ([`db::begin_write`], directly or through
//!   another service function) or taking the write turn
//!   ([`db::write_turn`]).
//! - `&Writer`: the function's writes run through [`db::Writer`], grouped
//!   with other requests' writes on SQLite.
//! - `&Reads` (the token check): reads through [`db::Reads`], writes on
//!   its pool.
//!
//! [`AppError`]: crate::error::AppError
//! [`db::begin_write`]: crate::db::begin_write
//! [`db::write_turn`]: crate::db::write_turn
//! [`db::Writer`]: crate::db::Writer
//! [`db::Reads`]: crate::db::Reads

pub mod access;
pub mod audit;
pub mod device;
pub mod impersonation;
pub mod seed;
pub mod session;
pub mod throttle;
pub mod user;
