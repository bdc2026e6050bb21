//! Secret rows: one per name, holding the AES-256-GCM ciphertext of the value and its nonce —
//! never the value. Encrypting and decrypting is `crate::secrets`' business; this file only
//! stores and reads bytes, so nothing here can leak a value.

use sqlx::Row;

use super::{Store, StoreError};

/// A secret as stored: sealed bytes and dates.
pub struct SecretRow {
    pub name: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub created_at: String,
    pub updated_at: String,
}

/// A secret as listed: its name and dates.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretListing {
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Store {
    /// Insert a secret, or replace its sealed value (keeping when it was created). Returns
    /// whether it was new.
    pub async fn put_secret(
        &self,
        name: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<bool, StoreError> {
        let now = super::now();
        let mut tx = self.write().await?;
        let existed = sqlx::query("SELECT 1 FROM secrets WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO secrets (name, nonce, ciphertext, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT(name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext,
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(nonce)
        .bind(ciphertext)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(!existed)
    }

    /// The sealed rows of `names` that exist (all of them with `None`), by name.
    pub async fn secret_rows(
        &self,
        names: Option<&[String]>,
    ) -> Result<Vec<SecretRow>, StoreError> {
        let rows = match names {
            None => sqlx::query(
                "SELECT name, nonce, ciphertext, created_at, updated_at FROM secrets ORDER BY name",
            )
            .fetch_all(&mut *self.db.get().await?)
            .await?,
            Some([]) => Vec::new(),
            Some(names) => {
                let marks = vec!["?"; names.len()].join(", ");
                let sql = format!(
                    "SELECT name, nonce, ciphertext, created_at, updated_at FROM secrets WHERE name IN ({marks}) ORDER BY name"
                );
                let mut q = sqlx::query(&sql);
                for n in names {
                    q = q.bind(n);
                }
                q.fetch_all(&mut *self.db.get().await?).await?
            }
        };
        Ok(rows
            .iter()
            .map(|r| SecretRow {
                name: r.get(0),
                nonce: r.get(1),
                ciphertext: r.get(2),
                created_at: r.get(3),
                updated_at: r.get(4),
            })
            .collect())
    }

    /// Every secret's name and dates, by name.
    pub async fn secret_listing(&self) -> Result<Vec<SecretListing>, StoreError> {
        let rows = sqlx::query("SELECT name, created_at, updated_at FROM secrets ORDER BY name")
            .fetch_all(&mut *self.db.get().await?)
            .await?;
        Ok(rows
            .iter()
            .map(|r| SecretListing {
                name: r.get(0),
                created_at: r.get(1),
                updated_at: r.get(2),
            })
            .collect())
    }

    /// Whether a secret of this name is stored (a `secret_key` input or parameter must name one).
    pub async fn secret_exists(&self, name: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM secrets WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *self.db.get().await?)
            .await?;
        Ok(row.is_some())
    }

    /// Delete a secret; returns whether it existed.
    pub async fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM secrets WHERE name = ?")
            .bind(name)
            .execute(&mut *self.db.get().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
