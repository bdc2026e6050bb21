//! The REST API's bearer tokens: one row per name with the SHA-256 of the token, never the
//! token itself (`windlass tokens create` prints it once; whoever reads the store cannot
//! present it).
//!
//! A token is `wlt_` followed by 32 bytes from `/dev/urandom` in hex: the prefix lets secret
//! scanners recognise one in a paste. [`Store::authenticate`] hashes what a request presents
//! and compares it with every stored hash in constant time, so the time an answer takes says
//! nothing about how close a guess was.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Store, StoreError};

/// What tells a windlass token from other secrets.
const PREFIX: &str = "wlt_";

/// A token as listed: never its value.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// A token just made: the only time its value exists outside the client that holds it.
pub struct NewToken {
    pub name: String,
    pub token: String,
}

// Not `Debug`: a token must not reach a log through `{:?}`.

impl Store {
    /// Make a token named `name`; refused when one of that name exists.
    pub async fn create_token(&self, name: &str) -> Result<NewToken, StoreError> {
        let token = format!("{PREFIX}{}", hex(&random_bytes()?));
        let mut tx = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO tokens (name, hash, created_at, last_used_at) VALUES (?, ?, ?, NULL)",
        )
        .bind(name)
        .bind(hash(&token))
        .bind(super::now())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::TokenExists(name.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(NewToken {
            name: name.to_string(),
            token,
        })
    }

    /// Every token, by name.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, created_at, last_used_at FROM tokens ORDER BY name")
            .fetch_all(&mut *self.db.get().await?)
            .await?;
        Ok(rows
            .iter()
            .map(|r| TokenRecord {
                name: r.get(0),
                created_at: r.get(1),
                last_used_at: r.get(2),
            })
            .collect())
    }

    /// Delete a token: requests presenting it are refused from now on.
    pub async fn revoke_token(&self, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM tokens WHERE name = ?")
            .bind(name)
            .execute(&mut *self.db.get().await?)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoToken(name.to_string()));
        }
        Ok(())
    }

    /// The name of the token `presented` is, if it is a stored one.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<String>, StoreError> {
        let wanted = Sha256::digest(presented.as_bytes());
        let rows = sqlx::query("SELECT name, hash FROM tokens")
            .fetch_all(&mut *self.db.get().await?)
            .await?;
        let mut found = None;
        // Every row is compared, whatever matched before: the time taken depends on how many
        // tokens there are, not on which one (or how much of one) matched.
        for r in &rows {
            let stored: &str = r.get(1);
            if let Some(stored) = unhex(stored)
                && constant_time_eq(&stored, &wanted)
            {
                found = Some(r.get::<String, _>(0));
            }
        }
        Ok(found)
    }

    /// Record that a token was used now.
    pub async fn touch_token(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE tokens SET last_used_at = ? WHERE name = ?")
            .bind(super::now())
            .bind(name)
            .execute(&mut *self.db.get().await?)
            .await?;
        Ok(())
    }
}

/// 32 bytes from the kernel's CSPRNG.
fn random_bytes() -> Result<[u8; 32], StoreError> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(StoreError::Random)?;
    Ok(bytes)
}

fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Equal lengths and bytes, in a time that depends only on the length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_compare_by_every_byte() {
        let a = Sha256::digest(b"one");
        let b = Sha256::digest(b"two");
        assert!(constant_time_eq(&a, &a));
        assert!(!constant_time_eq(&a, &b));
        assert!(!constant_time_eq(&a[..31], &a));
        assert_eq!(unhex(&hex(&a)).as_deref(), Some(&a[..]));
        assert_eq!(unhex("zz"), None);
    }

    #[tokio::test]
    async fn tokens_are_stored_hashed_and_revoked() {
        let path = std::env::temp_dir().join(format!("windlass-tokens-{}.db", std::process::id()));
        let store = Store::open(path.to_str().unwrap()).await.unwrap();
        let made = store.create_token("ci").await.unwrap();
        assert!(made.token.starts_with(PREFIX) && made.token.len() == PREFIX.len() + 64);
        assert!(matches!(
            store.create_token("ci").await,
            Err(StoreError::TokenExists(_))
        ));
        let stored: Vec<String> = sqlx::query("SELECT hash FROM tokens")
            .fetch_all(&store.db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(stored, vec![hash(&made.token)]);
        assert!(!stored[0].contains(&made.token[PREFIX.len()..]));
        assert_eq!(
            store.authenticate(&made.token).await.unwrap().as_deref(),
            Some("ci")
        );
        assert_eq!(store.authenticate("wlt_guess").await.unwrap(), None);
        store.revoke_token("ci").await.unwrap();
        assert_eq!(store.authenticate(&made.token).await.unwrap(), None);
        assert!(matches!(
            store.revoke_token("ci").await,
            Err(StoreError::NoToken(_))
        ));
        for file in store.files() {
            let _ = std::fs::remove_file(file);
        }
    }
}
