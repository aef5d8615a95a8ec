//! Pure rules and value types of the authentication service.
//!
//! Nothing here performs I/O or knows about HTTP, SQL or the async runtime; every rule
//! that can be decided from values alone lives here and is unit-tested in place.

pub mod audit;
pub mod email;
pub mod identity;
pub mod metadata;
pub mod page;
pub mod password;
pub mod session;
pub mod time;
pub mod token;
pub mod user;

/// The instance id used in single-instance mode (`gotrue serve`): the nil UUID.
pub const SINGLE_INSTANCE_ID: uuid::Uuid = uuid::Uuid::nil();
