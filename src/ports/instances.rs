//! Storage of the instances (tenants) of multi-instance mode: upstream's `instances` table,
//! whose `raw_base_config` holds the instance configuration as JSON text (CONFIG.md 5).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::users::StoreError;

/// One row of `instances`.
#[derive(Clone, PartialEq, Eq)]
pub struct InstanceRow {
    /// Primary key: the id the operator's `x-nf-sign` names.
    pub id: Uuid,
    /// Netlify's site id (the nil UUID when none was given).
    pub uuid: Uuid,
    /// The configuration JSON as stored; `None` for a SQL NULL.
    pub raw_base_config: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for InstanceRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration holds secrets.
        f.debug_struct("InstanceRow").field("id", &self.id).field("uuid", &self.uuid).finish_non_exhaustive()
    }
}

/// The `instances` table.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// The instance with this id.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn find_instance(&self, id: Uuid) -> Result<Option<InstanceRow>, StoreError>;

    /// The instance with this Netlify site id.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn find_instance_by_uuid(&self, uuid: Uuid) -> Result<Option<InstanceRow>, StoreError>;

    /// Inserts a new instance.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the id exists, [`StoreError::Backend`].
    async fn insert_instance(&self, row: &InstanceRow) -> Result<(), StoreError>;

    /// Replaces the configuration (and `updated_at`) of an existing instance.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the row is gone, [`StoreError::Backend`].
    async fn update_instance(&self, row: &InstanceRow) -> Result<(), StoreError>;

    /// Deletes the instance with its users, refresh tokens, linked identities and OAuth
    /// codes, in one transaction (audit entries are kept, as upstream does).
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn delete_instance(&self, id: Uuid) -> Result<(), StoreError>;
}
