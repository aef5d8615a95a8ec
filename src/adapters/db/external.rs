//! The external-login store ports ([`IdentityStore`](crate::ports::identities::IdentityStore),
//! [`FlowStore`](crate::ports::flows::FlowStore)), implemented once for both engines by
//! `external_store!`, which a store module invokes after `sql_store!` (it reuses that
//! macro's row helpers and user writes).

use super::Tables;

/// Statements of the external-login tables, rendered for one namespace.
#[derive(Debug, Clone)]
pub(crate) struct ExternalSql {
    pub(crate) identity_by_provider: String,
    pub(crate) identities_of_user: String,
    pub(crate) insert_identity: String,
    pub(crate) update_identity: String,
    pub(crate) purge_states: String,
    pub(crate) insert_state: String,
    pub(crate) purge_codes: String,
    pub(crate) insert_code: String,
    pub(crate) code_by_digest: String,
    pub(crate) delete_code: String,
}

const IDENTITY_COLUMNS: &str =
    "id, instance_id, user_id, provider, provider_id, email, email_verified, profile, created_at, updated_at, last_sign_in_at";

/// The same columns to read. MySQL flags `provider_id`'s binary collation (exact
/// comparison) as binary data, which does not decode as text without the cast.
const IDENTITY_SELECT: &str = "id, instance_id, user_id, provider, CAST(provider_id AS CHAR) AS provider_id, email, email_verified, \
    profile, created_at, updated_at, last_sign_in_at";

impl ExternalSql {
    pub(crate) fn new(t: &Tables) -> Self {
        let i = &t.identities;
        Self {
            identity_by_provider: format!(
                "SELECT {IDENTITY_SELECT} FROM {i} WHERE instance_id = ? AND provider = ? AND provider_id = ? LIMIT 1"
            ),
            identities_of_user: format!("SELECT {IDENTITY_SELECT} FROM {i} WHERE instance_id = ? AND user_id = ? ORDER BY created_at, id"),
            insert_identity: format!("INSERT INTO {i} ({IDENTITY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            update_identity: format!(
                "UPDATE {i} SET user_id = ?, email = ?, email_verified = ?, profile = ?, updated_at = ?, last_sign_in_at = ? WHERE id = ?"
            ),
            purge_states: format!("DELETE FROM {} WHERE expires_at < ?", t.oauth_states),
            insert_state: format!("INSERT INTO {} (id, instance_id, expires_at) VALUES (?, ?, ?)", t.oauth_states),
            purge_codes: format!("DELETE FROM {} WHERE expires_at < ?", t.oauth_codes),
            insert_code: format!(
                "INSERT INTO {} (code_digest, instance_id, user_id, code_challenge, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                t.oauth_codes
            ),
            code_by_digest: format!(
                "SELECT code_digest, instance_id, user_id, code_challenge, created_at, expires_at FROM {} WHERE code_digest = ?",
                t.oauth_codes
            ),
            delete_code: format!("DELETE FROM {} WHERE code_digest = ?", t.oauth_codes),
        }
    }
}

/// Implements `IdentityStore` and `FlowStore` for a store on which `sql_store!` was invoked
/// in the same module.
macro_rules! external_store {
    ($store:ty) => {
        use $crate::domain::identity::Identity;
        use $crate::ports::flows::{AuthCode, FlowStore};
        use $crate::ports::identities::IdentityStore;

        fn identity_from_row(r: &Row) -> Result<Identity, StoreError> {
            let s = |c: &str| -> Result<String, StoreError> { Ok(r.try_get::<Option<String>, _>(c).map_err(backend)?.unwrap_or_default()) };
            let t = |c: &str| -> Result<Option<DateTime<Utc>>, StoreError> { r.try_get::<Option<DateTime<Utc>>, _>(c).map_err(backend) };
            let profile = match serde_json::from_str::<serde_json::Value>(&s("profile")?) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            Ok(Identity {
                id: parse_uuid(r.try_get("id").map_err(backend)?)?,
                instance_id: parse_uuid(r.try_get("instance_id").map_err(backend)?)?,
                user_id: parse_uuid(r.try_get("user_id").map_err(backend)?)?,
                provider: s("provider")?,
                provider_id: s("provider_id")?,
                email: s("email")?,
                email_verified: r.try_get::<Option<bool>, _>("email_verified").map_err(backend)?.unwrap_or(false),
                profile,
                created_at: t("created_at")?.unwrap_or_else(epoch),
                updated_at: t("updated_at")?.unwrap_or_else(epoch),
                last_sign_in_at: t("last_sign_in_at")?,
            })
        }

        impl $store {
            async fn insert_identity_row(&self, tx: &mut Tx<'_>, i: &Identity) -> Result<(), StoreError> {
                sqlx::query(&self.sql.external.insert_identity)
                    .bind(i.id.to_string())
                    .bind(i.instance_id.to_string())
                    .bind(i.user_id.to_string())
                    .bind(&i.provider)
                    .bind(&i.provider_id)
                    .bind(&i.email)
                    .bind(i.email_verified)
                    .bind(serde_json::Value::Object(i.profile.clone()).to_string())
                    .bind(i.created_at)
                    .bind(i.updated_at)
                    .bind(i.last_sign_in_at)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| match &e {
                        // Only this statement touches the identities table, so any unique
                        // violation here is the (instance, provider, provider id) key.
                        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
                        _ => backend(e),
                    })?;
                Ok(())
            }

            /// Refreshes the identity with this id (re-pointing it when its user is gone), or
            /// inserts it when there is none.
            async fn upsert_identity_row(&self, tx: &mut Tx<'_>, i: &Identity) -> Result<(), StoreError> {
                let done = sqlx::query(&self.sql.external.update_identity)
                    .bind(i.user_id.to_string())
                    .bind(&i.email)
                    .bind(i.email_verified)
                    .bind(serde_json::Value::Object(i.profile.clone()).to_string())
                    .bind(i.updated_at)
                    .bind(i.last_sign_in_at)
                    .bind(i.id.to_string())
                    .execute(&mut **tx)
                    .await
                    .map_err(backend)?;
                if done.rows_affected() == 0 {
                    self.insert_identity_row(tx, i).await?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl IdentityStore for $store {
            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn find_identity(
                &self,
                instance_id: uuid::Uuid,
                provider: &str,
                provider_id: &str,
            ) -> Result<Option<Identity>, StoreError> {
                let row = sqlx::query(&self.sql.external.identity_by_provider)
                    .bind(instance_id.to_string())
                    .bind(provider)
                    .bind(provider_id)
                    .fetch_optional(&self.read)
                    .await
                    .map_err(backend)?;
                row.as_ref().map(identity_from_row).transpose()
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn user_identities(&self, instance_id: uuid::Uuid, user_id: uuid::Uuid) -> Result<Vec<Identity>, StoreError> {
                let rows = sqlx::query(&self.sql.external.identities_of_user)
                    .bind(instance_id.to_string())
                    .bind(user_id.to_string())
                    .fetch_all(&self.read)
                    .await
                    .map_err(backend)?;
                rows.iter().map(identity_from_row).collect()
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn insert_user_with_identity(&self, u: &User, identity: &Identity, effects: &Effects) -> Result<(), StoreError> {
                let (u, identity, effects) = (u.clone(), identity.clone(), effects.clone());
                self.detached(move |s| async move { s.insert_user_with_identity_now(&u, &identity, &effects).await }).await
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn update_user_with_identity(
                &self,
                u: &User,
                guard: &Guard,
                identity: &Identity,
                effects: &Effects,
            ) -> Result<(), StoreError> {
                let (u, guard, identity, effects) = (u.clone(), guard.clone(), identity.clone(), effects.clone());
                self.detached(move |s| async move { s.update_user_with_identity_now(&u, &guard, &identity, &effects).await }).await
            }
        }

        /// The writes proper, run detached like `sql_store!`'s (cancel safety).
        impl $store {
            async fn insert_user_with_identity_now(&self, u: &User, identity: &Identity, effects: &Effects) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await.map_err(backend)?;
                self.insert_user_row(&mut tx, u).await?;
                self.upsert_identity_row(&mut tx, identity).await?;
                self.apply_effects(&mut tx, u.instance_id, u.id, effects).await?;
                tx.commit().await.map_err(backend)
            }

            async fn update_user_with_identity_now(
                &self,
                u: &User,
                guard: &Guard,
                identity: &Identity,
                effects: &Effects,
            ) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await.map_err(backend)?;
                self.update_user_row(&mut tx, u, guard).await?;
                self.upsert_identity_row(&mut tx, identity).await?;
                self.apply_effects(&mut tx, u.instance_id, u.id, effects).await?;
                tx.commit().await.map_err(backend)
            }
        }

        #[async_trait::async_trait]
        impl FlowStore for $store {
            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn use_state(
                &self,
                instance_id: uuid::Uuid,
                id: &str,
                expires_at: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let id = id.to_owned();
                self.detached(move |s| async move { s.use_state_now(instance_id, &id, expires_at, now).await }).await
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn insert_auth_code(&self, code: &AuthCode, now: DateTime<Utc>) -> Result<(), StoreError> {
                let code = code.clone();
                self.detached(move |s| async move { s.insert_auth_code_now(&code, now).await }).await
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn take_auth_code(&self, digest: &str) -> Result<Option<AuthCode>, StoreError> {
                let digest = digest.to_owned();
                self.detached(move |s| async move { s.take_auth_code_now(&digest).await }).await
            }
        }

        impl $store {
            async fn use_state_now(
                &self,
                instance_id: uuid::Uuid,
                id: &str,
                expires_at: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                sqlx::query(&self.sql.external.purge_states).bind(now).execute(&self.write).await.map_err(backend)?;
                let res = sqlx::query(&self.sql.external.insert_state)
                    .bind(id)
                    .bind(instance_id.to_string())
                    .bind(expires_at)
                    .execute(&self.write)
                    .await;
                match res {
                    Ok(_) => Ok(true),
                    Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Ok(false),
                    Err(e) => Err(backend(e)),
                }
            }

            async fn insert_auth_code_now(&self, code: &AuthCode, now: DateTime<Utc>) -> Result<(), StoreError> {
                sqlx::query(&self.sql.external.purge_codes).bind(now).execute(&self.write).await.map_err(backend)?;
                sqlx::query(&self.sql.external.insert_code)
                    .bind(&code.digest)
                    .bind(code.instance_id.to_string())
                    .bind(code.user_id.to_string())
                    .bind(&code.code_challenge)
                    .bind(code.created_at)
                    .bind(code.expires_at)
                    .execute(&self.write)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn take_auth_code_now(&self, digest: &str) -> Result<Option<AuthCode>, StoreError> {
                let mut tx = self.write.begin().await.map_err(backend)?;
                let row = sqlx::query(&self.sql.external.code_by_digest).bind(digest).fetch_optional(&mut *tx).await.map_err(backend)?;
                let Some(r) = row else {
                    return Ok(None);
                };
                let t = |c: &str| -> Result<DateTime<Utc>, StoreError> {
                    Ok(r.try_get::<Option<DateTime<Utc>>, _>(c).map_err(backend)?.unwrap_or_else(epoch))
                };
                let code = AuthCode {
                    instance_id: parse_uuid(r.try_get("instance_id").map_err(backend)?)?,
                    digest: r.try_get::<Option<String>, _>("code_digest").map_err(backend)?.unwrap_or_default(),
                    user_id: parse_uuid(r.try_get("user_id").map_err(backend)?)?,
                    code_challenge: r.try_get::<Option<String>, _>("code_challenge").map_err(backend)?.unwrap_or_default(),
                    created_at: t("created_at")?,
                    expires_at: t("expires_at")?,
                };
                // Whoever deletes the row owns the code; a concurrent caller deletes nothing.
                let done = sqlx::query(&self.sql.external.delete_code).bind(digest).execute(&mut *tx).await.map_err(backend)?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                tx.commit().await.map_err(backend)?;
                Ok(Some(code))
            }
        }
    };
}

pub(crate) use external_store;
