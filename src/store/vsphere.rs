//! The vSphere plugin's placement state: which VM each instance of a deployment holds (a pooled
//! VM it powered on, or a clone it made), on which host, and the last host each node cloned
//! onto, so that round-robin placement survives restarts and is shared by every scale.
//!
//! The store only keeps and hands over these rows; choosing is `plugins::vsphere::placement`'s
//! job. [`Store::vsphere_allocate`] reads what is taken and writes the choice in one `IMMEDIATE`
//! transaction, so two allocations — parallel operations of one execution, or executions of
//! different deployments naming the same vCenter — never see the same free VM or host slot.
//! Rows go with their deployment (`ON DELETE CASCADE`).

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::{Store, StoreError};

/// The VM one instance holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmAllocation {
    pub instance_id: String,
    pub node_id: String,
    pub vm_name: String,
    /// The host's name and id.
    pub host: String,
    pub host_id: String,
    /// A VM of the node's pool (powered off and left on release), else a clone (deleted).
    pub pooled: bool,
}

/// The allocation an instance holds, read by [`VmAllocation::from_row`].
const SELECT_ALLOCATION: &str = "SELECT instance_id, node_id, vm_name, host, host_id, pooled \
     FROM vsphere_allocations WHERE deployment_id = ? AND instance_id = ?";

/// The host a node last cloned onto.
const SELECT_LAST_HOST: &str =
    "SELECT host FROM vsphere_last_hosts WHERE deployment_id = ? AND node_id = ?";

impl VmAllocation {
    /// A row of [`SELECT_ALLOCATION`].
    fn from_row(r: &sqlx::sqlite::SqliteRow) -> VmAllocation {
        VmAllocation {
            instance_id: r.get(0),
            node_id: r.get(1),
            vm_name: r.get(2),
            host: r.get(3),
            host_id: r.get(4),
            pooled: r.get::<i64, _>(5) != 0,
        }
    }
}

/// What an allocation chooses from: everything already taken.
#[derive(Debug, Clone, Default)]
pub struct Placements {
    /// VM names held by any deployment's instance on this vCenter.
    pub taken_names: HashSet<String>,
    /// VMs of this deployment per host id.
    pub per_host: HashMap<String, usize>,
    /// The host this node last cloned onto, by name.
    pub last_host: Option<String>,
}

impl Store {
    /// The VM an instance holds, if it holds one.
    pub async fn vsphere_allocation(
        &self,
        deployment: &str,
        instance: &str,
    ) -> Result<Option<VmAllocation>, StoreError> {
        let row = sqlx::query(SELECT_ALLOCATION)
            .bind(deployment)
            .bind(instance)
            .fetch_optional(&mut *self.db.get().await?)
            .await?;
        Ok(row.as_ref().map(VmAllocation::from_row))
    }

    /// Choose and record a VM for `instance` in one transaction: `choose` sees what is taken and
    /// returns the allocation or its own refusal (`Ok(Err(E))`, nothing written). A clone's host
    /// becomes the node's last host. An instance that holds a VM already gets that one back,
    /// without calling `choose`.
    pub async fn vsphere_allocate<E>(
        &self,
        deployment: &str,
        endpoint: &str,
        node: &str,
        instance: &str,
        choose: impl FnOnce(&Placements) -> Result<VmAllocation, E>,
    ) -> Result<Result<VmAllocation, E>, StoreError> {
        let mut tx = self.write().await?;
        let existing = sqlx::query(SELECT_ALLOCATION)
            .bind(deployment)
            .bind(instance)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(r) = existing {
            return Ok(Ok(VmAllocation::from_row(&r)));
        }
        let mut placements = Placements::default();
        for r in sqlx::query("SELECT vm_name FROM vsphere_allocations WHERE endpoint = ?")
            .bind(endpoint)
            .fetch_all(&mut *tx)
            .await?
        {
            placements.taken_names.insert(r.get(0));
        }
        for r in sqlx::query(
            "SELECT host_id, COUNT(*) FROM vsphere_allocations WHERE deployment_id = ? \
             GROUP BY host_id",
        )
        .bind(deployment)
        .fetch_all(&mut *tx)
        .await?
        {
            let n: i64 = r.get(1);
            placements
                .per_host
                .insert(r.get(0), usize::try_from(n).unwrap_or(0));
        }
        placements.last_host = sqlx::query(SELECT_LAST_HOST)
            .bind(deployment)
            .bind(node)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get(0));

        let chosen = match choose(&placements) {
            Ok(a) => a,
            Err(refusal) => return Ok(Err(refusal)),
        };
        sqlx::query(
            "INSERT INTO vsphere_allocations \
             (deployment_id, instance_id, node_id, endpoint, vm_name, host, host_id, pooled) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(deployment)
        .bind(instance)
        .bind(node)
        .bind(endpoint)
        .bind(&chosen.vm_name)
        .bind(&chosen.host)
        .bind(&chosen.host_id)
        .bind(i64::from(chosen.pooled))
        .execute(&mut *tx)
        .await?;
        if !chosen.pooled {
            sqlx::query(
                "INSERT INTO vsphere_last_hosts (deployment_id, node_id, host) VALUES (?, ?, ?) \
                 ON CONFLICT (deployment_id, node_id) DO UPDATE SET host = excluded.host",
            )
            .bind(deployment)
            .bind(node)
            .bind(&chosen.host)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(chosen))
    }

    /// Forget the VM an instance held (it was deleted, or powered off back into its pool).
    pub async fn vsphere_release(
        &self,
        deployment: &str,
        instance: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM vsphere_allocations WHERE deployment_id = ? AND instance_id = ?")
            .bind(deployment)
            .bind(instance)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The host a node last cloned onto.
    pub async fn vsphere_last_host(
        &self,
        deployment: &str,
        node: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query(SELECT_LAST_HOST)
            .bind(deployment)
            .bind(node)
            .fetch_optional(&mut *self.db.get().await?)
            .await?
            .map(|r| r.get(0)))
    }
}
