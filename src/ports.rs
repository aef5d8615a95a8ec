//! The traits the application needs from the outside world, one file per concern.

pub mod audit;
pub mod breached;
pub mod clock;
pub mod external;
pub mod flows;
pub mod hasher;
pub mod health;
pub mod hooks;
pub mod identities;
pub mod instances;
pub mod mail;
pub mod ratelimit;
pub mod tokens;
pub mod users;

/// A boxed error from an adapter's backend (driver, network, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
