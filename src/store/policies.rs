//! What the manager's policy runtime reads and writes: which deployments are installed (a
//! cheap poll, every half second), the size of each scaling group, and each deployment's live
//! policy state (one JSON row per deployment, replaced on every save) for `windlass policies`.

use serde_json::Value as Json;
use sqlx::Row;

use super::{Store, StoreError};

/// A deployment's place in its life, without its blueprint.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentState {
    pub id: String,
    pub created_at: String,
    pub installed: bool,
    pub deleting: bool,
}

/// A deployment's saved policy state.
#[derive(Debug, Clone)]
pub struct PolicyState {
    pub snapshot: Json,
    pub updated_at: String,
}

impl Store {
    /// Every deployment's id, creation time and whether it is installed.
    pub async fn deployment_states(&self) -> Result<Vec<DeploymentState>, StoreError> {
        let rows = sqlx::query("SELECT id, created_at, installed, deleting FROM deployments")
            .fetch_all(&mut *self.db.get().await?)
            .await?;
        Ok(rows
            .iter()
            .map(|r| DeploymentState {
                id: r.get(0),
                created_at: r.get(1),
                installed: r.get(2),
                deleting: r.get(3),
            })
            .collect())
    }

    /// `(group index in the plan's tree, instances)` of every scaling group of a deployment.
    pub async fn group_sizes(&self, deployment: &str) -> Result<Vec<(usize, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT grp, COUNT(*) FROM group_instances WHERE deployment_id = ? GROUP BY grp",
        )
        .bind(deployment)
        .fetch_all(&mut *self.db.get().await?)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<i64, _>(0) as usize, r.get::<i64, _>(1) as u64))
            .collect())
    }

    /// Replace the saved policy state of these deployments, in one transaction.
    pub async fn save_policy_states(&self, states: &[(String, Json)]) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let now = super::now();
        let mut tx = self.write().await?;
        for (deployment, snapshot) in states {
            sqlx::query(
                "INSERT INTO policy_state (deployment_id, snapshot, updated_at) VALUES (?, ?, ?)
                 ON CONFLICT (deployment_id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at",
            )
            .bind(deployment)
            .bind(snapshot.to_string())
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The saved policy state of a deployment, if a manager ever saved one.
    pub async fn policy_state(&self, deployment: &str) -> Result<Option<PolicyState>, StoreError> {
        let rows =
            sqlx::query("SELECT snapshot, updated_at FROM policy_state WHERE deployment_id = ?")
                .bind(deployment)
                .fetch_all(&mut *self.db.get().await?)
                .await?;
        rows.first()
            .map(|r| {
                let text: String = r.get(0);
                let snapshot = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(deployment.to_string(), e.to_string()))?;
                Ok(PolicyState {
                    snapshot,
                    updated_at: r.get(1),
                })
            })
            .transpose()
    }
}
