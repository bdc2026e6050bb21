//! Autoscaling rules (`policy::Rule`): one row per rule, by its unique name, each belonging to
//! one deployment and deleted with it (`ON DELETE CASCADE`). The store keeps rules as they are
//! given; checking them against their deployment is `engine::rules`' job, and turning them into
//! policies the runtime's (`server::runtime`), which reads them all on every refresh.

use serde_json::{Value as Json, json};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Store, StoreError};
use crate::policy::Rule;

/// A rule as stored: the rule and when it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRecord {
    pub rule: Rule,
    pub created_at: String,
}

impl RuleRecord {
    /// The rule as `GET /api/v1/rules` and `windlass rules list --json` show it: its fields,
    /// `created_at`, and the names of the policies it becomes.
    pub fn to_json(&self) -> Json {
        let r = &self.rule;
        json!({
            "name": r.name,
            "deployment": r.deployment,
            "target": r.target,
            "metric": r.metric,
            "scale_out_above": r.scale_out_above,
            "scale_in_below": r.scale_in_below,
            "window": r.window,
            "min": r.min,
            "max": r.max,
            "step": r.step,
            "cooldown": r.cooldown,
            "created_at": self.created_at,
            "policies": r.policy_names(),
        })
    }
}

const COLUMNS: &str = r#"name, deployment_id, target, metric, scale_out_above, scale_in_below, "window", min, max, step, cooldown, created_at"#;

fn record(r: &SqliteRow) -> RuleRecord {
    RuleRecord {
        rule: Rule {
            name: r.get(0),
            deployment: r.get(1),
            target: r.get(2),
            metric: r.get(3),
            scale_out_above: r.get(4),
            scale_in_below: r.get(5),
            window: r.get(6),
            min: r.get::<i64, _>(7).max(0) as u64,
            max: r.get::<i64, _>(8).max(0) as u64,
            step: r.get::<i64, _>(9).max(0) as u64,
            cooldown: r.get(10),
        },
        created_at: r.get(11),
    }
}

/// SQLite's integers are signed: a count beyond `i64::MAX` is kept as the largest one.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Store a new rule; refused when one of that name exists or its deployment does not.
    pub async fn insert_rule(&self, rule: &Rule) -> Result<RuleRecord, StoreError> {
        let created_at = super::now();
        let mut tx = self.write().await?;
        let exists = sqlx::query("SELECT 1 FROM deployments WHERE id = ?")
            .bind(&rule.deployment)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NoDeployment(rule.deployment.clone()));
        }
        let sql =
            format!("INSERT INTO rules ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        let inserted = settings(sqlx::query(&sql).bind(&rule.name), rule)
            .bind(&created_at)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::RuleExists(rule.name.clone()));
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(RuleRecord {
            rule: rule.clone(),
            created_at,
        })
    }

    /// Replace rule `rule.name`'s settings (its creation time stays).
    pub async fn update_rule(&self, rule: &Rule) -> Result<RuleRecord, StoreError> {
        let mut tx = self.write().await?;
        let exists = sqlx::query("SELECT 1 FROM deployments WHERE id = ?")
            .bind(&rule.deployment)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NoDeployment(rule.deployment.clone()));
        }
        let update = sqlx::query(
            r#"UPDATE rules SET deployment_id = ?, target = ?, metric = ?, scale_out_above = ?,
               scale_in_below = ?, "window" = ?, min = ?, max = ?, step = ?, cooldown = ?
               WHERE name = ? RETURNING created_at"#,
        );
        let row = settings(update, rule)
            .bind(&rule.name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NoRule(rule.name.clone()));
        };
        tx.commit().await?;
        Ok(RuleRecord {
            rule: rule.clone(),
            created_at: row.get(0),
        })
    }

    /// Every rule, or those of one deployment, by name.
    pub async fn rules(&self, deployment: Option<&str>) -> Result<Vec<RuleRecord>, StoreError> {
        let rows = match deployment {
            Some(d) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM rules WHERE deployment_id = ? ORDER BY name"
                ))
                .bind(d)
                .fetch_all(&mut *self.db.get().await?)
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM rules ORDER BY name"))
                    .fetch_all(&mut *self.db.get().await?)
                    .await?
            }
        };
        Ok(rows.iter().map(record).collect())
    }

    /// One rule.
    pub async fn rule(&self, name: &str) -> Result<RuleRecord, StoreError> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM rules WHERE name = ?"))
            .bind(name)
            .fetch_optional(&mut *self.db.get().await?)
            .await?
            .map(|r| record(&r))
            .ok_or_else(|| StoreError::NoRule(name.to_string()))
    }

    /// Delete a rule: its policies stop at the manager's next refresh.
    pub async fn delete_rule(&self, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM rules WHERE name = ?")
            .bind(name)
            .execute(&mut *self.db.get().await?)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoRule(name.to_string()));
        }
        Ok(())
    }
}

/// Bind a rule's settings, in the order of the columns after its name: deployment, target,
/// metric, scale_out_above, scale_in_below, window, min, max, step, cooldown.
fn settings<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    rule: &'q Rule,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(&rule.deployment)
        .bind(&rule.target)
        .bind(&rule.metric)
        .bind(rule.scale_out_above)
        .bind(rule.scale_in_below)
        .bind(rule.window)
        .bind(int(rule.min))
        .bind(int(rule.max))
        .bind(int(rule.step))
        .bind(rule.cooldown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str) -> Rule {
        Rule {
            name: name.into(),
            deployment: "d".into(),
            target: "web".into(),
            metric: "cpu".into(),
            scale_out_above: 80.0,
            scale_in_below: None,
            window: 10.0,
            min: 1,
            max: 3,
            step: 1,
            cooldown: 60.0,
        }
    }

    /// A fresh store under a directory of its own (removed by the caller) with deployment `d`.
    async fn store_with_deployment(test: &str) -> (std::path::PathBuf, Store) {
        let dir =
            std::env::temp_dir().join(format!("windlass-rules-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("s.db").display().to_string())
            .await
            .unwrap();
        sqlx::query("INSERT INTO deployments (id, blueprint, created_at, inputs, compiled, plan) VALUES ('d', 'bp.yaml', '', '{}', '{}', '{}')")
            .execute(&store.db.pool)
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn rules_are_created_listed_updated_and_deleted() {
        let (dir, store) = store_with_deployment("crud").await;
        store.insert_rule(&rule("b")).await.unwrap();
        let a = Rule {
            scale_in_below: Some(10.0),
            ..rule("a")
        };
        store.insert_rule(&a).await.unwrap();
        assert!(matches!(
            store.insert_rule(&rule("a")).await,
            Err(StoreError::RuleExists(n)) if n == "a"
        ));
        let orphan = Rule {
            deployment: "nope".into(),
            ..rule("c")
        };
        assert!(matches!(
            store.insert_rule(&orphan).await,
            Err(StoreError::NoDeployment(_))
        ));
        let names = |rs: Vec<RuleRecord>| rs.into_iter().map(|r| r.rule.name).collect::<Vec<_>>();
        assert_eq!(names(store.rules(None).await.unwrap()), ["a", "b"]);
        assert_eq!(names(store.rules(Some("d")).await.unwrap()), ["a", "b"]);
        assert!(store.rules(Some("other")).await.unwrap().is_empty());
        assert_eq!(store.rule("a").await.unwrap().rule, a);

        let changed = Rule {
            max: 7,
            ..a.clone()
        };
        store.update_rule(&changed).await.unwrap();
        assert_eq!(store.rule("a").await.unwrap().rule.max, 7);
        assert!(matches!(
            store.update_rule(&rule("zz")).await,
            Err(StoreError::NoRule(_))
        ));

        store.delete_rule("a").await.unwrap();
        assert!(matches!(
            store.delete_rule("a").await,
            Err(StoreError::NoRule(_))
        ));
        assert!(matches!(store.rule("a").await, Err(StoreError::NoRule(_))));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_deleted_deployment_takes_its_rules_with_it() {
        let (dir, store) = store_with_deployment("cascade").await;
        store.insert_rule(&rule("r")).await.unwrap();
        store.delete_deployment("d").await.unwrap();
        assert!(store.rules(None).await.unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
