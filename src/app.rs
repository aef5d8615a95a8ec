//! Use cases, configuration and wiring.
//!
//! Each use case is one file holding methods of [`Service`]; only `wiring.rs` knows the
//! concrete adapters.

pub mod admin;
pub mod cli;
pub mod config;
pub mod error;
pub mod external;
pub mod hooks;
pub mod instances;
pub mod invite;
pub mod jwt;
pub mod links;
pub mod logout;
pub mod recover;
pub mod service;
pub mod signup;
pub mod telemetry;
#[cfg(test)]
mod tests;
pub mod token;
pub mod user;
pub mod verify;
pub mod wiring;

pub use error::AuthError;
pub use service::Service;
