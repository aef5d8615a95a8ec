//! Reading the audit log. Entries are written by the other stores, in the transaction of
//! the change they record (see [`crate::ports::users::Effects`]).

use async_trait::async_trait;
use uuid::Uuid;

use super::users::StoreError;
use crate::domain::audit::{AuditEntry, AuditSearch};
use crate::domain::page::{Page, Pagination};

/// Which audit entries a list returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditListQuery {
    /// Only entries matching this search.
    pub search: Option<AuditSearch>,
    /// Which rows.
    pub page: Pagination,
}

/// The audit log of each instance.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// One page of the instance's entries matching the query, newest first (ties by id),
    /// and how many match overall.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn list_audit(&self, instance_id: Uuid, query: &AuditListQuery) -> Result<Page<AuditEntry>, StoreError>;
}
