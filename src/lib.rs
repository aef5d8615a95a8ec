//! gotrue-rs: a GoTrue-compatible user registration and authentication API server.
//!
//! Hexagonal layout: [`domain`] (pure rules), [`ports`] (traits the application needs),
//! [`adapters`] (SQL, mail, hashing, HTTP) and [`app`] (use cases, configuration, wiring).

pub mod adapters;
pub mod app;
pub mod domain;
pub mod ports;

/// The git commit this binary was built from (empty when unknown).
pub const VERSION: &str = env!("GOTRUE_GIT_COMMIT");
