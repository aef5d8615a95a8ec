//! The [`InstanceStore`](crate::ports::instances::InstanceStore) port on upstream's
//! `instances` table, implemented once for both engines by `instance_store!`, which a store
//! module invokes after `sql_store!` (it reuses that macro's row helpers).

/// Implements `InstanceStore` for a store on which `sql_store!` was invoked in the same
/// module.
macro_rules! instance_store {
    ($store:ty) => {
        use $crate::ports::instances::{InstanceRow, InstanceStore};

        fn instance_from_row(r: &Row) -> Result<InstanceRow, StoreError> {
            let t = |c: &str| -> Result<Option<DateTime<Utc>>, StoreError> { r.try_get::<Option<DateTime<Utc>>, _>(c).map_err(backend) };
            let uuid = r.try_get::<Option<String>, _>("uuid").map_err(backend)?.filter(|s| !s.is_empty());
            Ok(InstanceRow {
                id: parse_uuid(r.try_get("id").map_err(backend)?)?,
                uuid: match uuid {
                    Some(u) => parse_uuid(Some(u))?,
                    None => uuid::Uuid::nil(),
                },
                raw_base_config: r.try_get::<Option<String>, _>("raw_base_config").map_err(backend)?,
                created_at: t("created_at")?.unwrap_or_else(epoch),
                updated_at: t("updated_at")?.unwrap_or_else(epoch),
            })
        }

        impl $store {
            fn instance_select(&self) -> String {
                format!(
                    "SELECT id, uuid, CAST(raw_base_config AS CHAR) AS raw_base_config, created_at, updated_at FROM {}",
                    self.tables.instances
                )
            }
        }

        #[async_trait::async_trait]
        impl InstanceStore for $store {
            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn find_instance(&self, id: uuid::Uuid) -> Result<Option<InstanceRow>, StoreError> {
                let q = format!("{} WHERE id = ? LIMIT 1", self.instance_select());
                let row = sqlx::query(&q).bind(id.to_string()).fetch_optional(&self.read).await.map_err(backend)?;
                row.as_ref().map(instance_from_row).transpose()
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn find_instance_by_uuid(&self, uuid: uuid::Uuid) -> Result<Option<InstanceRow>, StoreError> {
                let q = format!("{} WHERE uuid = ? LIMIT 1", self.instance_select());
                let row = sqlx::query(&q).bind(uuid.to_string()).fetch_optional(&self.read).await.map_err(backend)?;
                row.as_ref().map(instance_from_row).transpose()
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn insert_instance(&self, row: &InstanceRow) -> Result<(), StoreError> {
                let q = format!(
                    "INSERT INTO {} (id, uuid, raw_base_config, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                    self.tables.instances
                );
                sqlx::query(&q)
                    .bind(row.id.to_string())
                    .bind(row.uuid.to_string())
                    .bind(row.raw_base_config.clone())
                    .bind(row.created_at)
                    .bind(row.updated_at)
                    .execute(&self.write)
                    .await
                    .map_err(|e| match &e {
                        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
                        _ => backend(e),
                    })?;
                Ok(())
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn update_instance(&self, row: &InstanceRow) -> Result<(), StoreError> {
                let q = format!("UPDATE {} SET uuid = ?, raw_base_config = ?, updated_at = ? WHERE id = ?", self.tables.instances);
                let done = sqlx::query(&q)
                    .bind(row.uuid.to_string())
                    .bind(row.raw_base_config.clone())
                    .bind(row.updated_at)
                    .bind(row.id.to_string())
                    .execute(&self.write)
                    .await
                    .map_err(backend)?;
                if done.rows_affected() == 0 {
                    // MySQL counts changed rows: an identical update is not a missing row.
                    if self.find_instance(row.id).await?.is_none() {
                        return Err(StoreError::Conflict);
                    }
                }
                Ok(())
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn delete_instance(&self, id: uuid::Uuid) -> Result<(), StoreError> {
                let t = &self.tables;
                let mut tx = self.write.begin().await.map_err(backend)?;
                for table in [&t.refresh_tokens, &t.identities, &t.oauth_codes, &t.users] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE instance_id = ?"))
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                }
                sqlx::query(&format!("DELETE FROM {} WHERE id = ?", t.instances))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                Ok(())
            }
        }
    };
}

pub(crate) use instance_store;
