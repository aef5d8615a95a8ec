//! Implementations of the ports: databases, mail, webhooks, hashing, clock, and the HTTP
//! front.

pub mod breached;
pub mod clock;
pub mod crypto;
pub mod db;
pub mod hooks;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod oauth;
pub mod ratelimit;
