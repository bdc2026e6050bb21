//! Reads the REST API needs beyond the CLI's: one execution by id, and a deployment's events
//! a page at a time, filtered in SQL (a deployment's log can hold millions of events; a page
//! reads at most `limit + 1` rows through the `(deployment_id, seq)` index).

use sqlx::Row;

use super::{EventRecord, ExecutionRecord, Store, StoreError};

/// Which events of a deployment a page holds.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events after this sequence number.
    pub after: i64,
    /// At most this many.
    pub limit: u32,
    pub execution_id: Option<String>,
    pub event_type: Option<String>,
}

impl Store {
    /// One execution, whichever deployment it belongs to.
    pub async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, deployment_id, workflow, parameters, status, created_at, ended_at, error, pid, pid_started FROM executions WHERE id = ?",
        )
        .bind(id)
        .fetch_all(&mut *self.db.get().await?)
        .await?;
        Ok(rows.first().map(|r| ExecutionRecord {
            id: r.get(0),
            deployment_id: r.get(1),
            workflow: r.get(2),
            parameters: serde_json::from_str(r.get::<&str, _>(3))
                .unwrap_or(serde_json::Value::Null),
            status: r.get(4),
            created_at: r.get(5),
            ended_at: r.get(6),
            error: r.get(7),
            pid: r.get(8),
            pid_started: r.get(9),
        }))
    }

    /// A page of a deployment's events, oldest first: at most `filter.limit`, and whether
    /// more follow.
    pub async fn events_page(
        &self,
        deployment: &str,
        filter: &EventFilter,
    ) -> Result<(Vec<EventRecord>, bool), StoreError> {
        let mut sql = String::from(
            "SELECT seq, timestamp, execution_id, event_type, node_instance_id, operation, message FROM events WHERE deployment_id = ? AND seq > ?",
        );
        if filter.execution_id.is_some() {
            sql.push_str(" AND execution_id = ?");
        }
        if filter.event_type.is_some() {
            sql.push_str(" AND event_type = ?");
        }
        sql.push_str(" ORDER BY seq LIMIT ?");
        let mut query = sqlx::query(&sql).bind(deployment).bind(filter.after);
        if let Some(e) = &filter.execution_id {
            query = query.bind(e);
        }
        if let Some(t) = &filter.event_type {
            query = query.bind(t);
        }
        let rows = query
            .bind(i64::from(filter.limit) + 1)
            .fetch_all(&mut *self.db.get().await?)
            .await?;
        let more = rows.len() > filter.limit as usize;
        Ok((
            rows.iter()
                .take(filter.limit as usize)
                .map(EventRecord::from_row)
                .collect(),
            more,
        ))
    }
}
