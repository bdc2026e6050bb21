//! The `windlass.nodes.vsphere.Server` lifecycle: `vm.create`, `vm.start`, `vm.stop`,
//! `vm.delete`.
//!
//! - create: choose a VM ([`placement`]: a powered-off pooled VM first, else a clone of
//!   `template` onto the next host round-robin) and record the choice in the store, under the
//!   deployment's allocation lock, in one transaction; record `vm_name`, `vm_host` and `pooled`
//!   in runtime properties (committed) before touching vCenter; then power the pooled VM on, or
//!   clone (powered on), and record `vm_id` (committed) before anything waits. The pool is
//!   not listed when this execution already found it empty (`placement::PoolMemo`), and the
//!   template is never taken for a pooled VM, whatever the pool's prefix.
//! - start: power on if it is not, then poll the guest identity until VMware Tools reports an
//!   IP (`ip_timeout`; cancellation ends the wait) and set `ip`.
//! - stop: power off (already off, or gone, is done).
//! - delete: a pooled VM is powered off and left for the pool; a clone is powered off if need
//!   be and deleted (already gone is done); either way the instance's allocation is released.
//!
//! A resumed create finds what an earlier attempt chose (the store's allocation) and made (the
//! VM of that name), so a VM is never cloned or picked twice for one instance.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json};

use super::client::{self, Client, Connection, Kind, SESSIONS, VsphereError};
use super::placement::{self, Host, PoolVm, Request};
use crate::plugins::{OpError, OperationContext};

/// How long `start` waits for the guest's IP when `ip_timeout` is not written.
const DEFAULT_IP_TIMEOUT: Duration = Duration::from_secs(600);
/// The first pause between guest identity polls; each next one is half again as long, up to
/// [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(250);
const MAX_POLL: Duration = Duration::from_secs(5);

/// Which VMs make the node's pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pool {
    None,
    /// These VMs, in this order.
    Names(Vec<String>),
    /// Every VM whose name starts with this, by name.
    Prefix(String),
}

/// A node's settings, from its properties (operation inputs of the same names win).
#[derive(Debug, Clone)]
pub struct Settings {
    pub connection: Connection,
    pub template: Option<String>,
    pub name_prefix: String,
    pub folder: Option<String>,
    pub datastore: Option<String>,
    pub resource_pool: Option<String>,
    /// `None`: every host.
    pub hosts: Option<Vec<String>>,
    pub max_per_host: usize,
    pub pool: Pool,
    pub ip_timeout: Duration,
}

impl Settings {
    pub fn read(
        properties: &Map<String, Json>,
        inputs: &Map<String, Json>,
        resources: &Path,
    ) -> Result<Settings, VsphereError> {
        let get = |key: &str| inputs.get(key).or_else(|| properties.get(key));
        let text = |key: &str| match get(key) {
            Some(Json::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => None,
        };
        let bad = |key: &str, what: &str| {
            VsphereError::Config(format!("property `{key}` must be {what}"))
        };
        let connection = match get("connection_config") {
            Some(Json::Object(c)) => Connection::from_config(c, resources)?,
            _ => {
                return Err(VsphereError::Config(
                    "property `connection_config` (host, username, password) is required".into(),
                ));
            }
        };
        let count = |key: &str, default: u64| -> Result<u64, VsphereError> {
            match get(key) {
                None | Some(Json::Null) => Ok(default),
                Some(Json::Number(n)) => n.as_u64().ok_or_else(|| bad(key, "a whole number ≥ 0")),
                Some(Json::String(s)) => {
                    s.trim().parse().map_err(|_| bad(key, "a whole number ≥ 0"))
                }
                Some(_) => Err(bad(key, "a whole number ≥ 0")),
            }
        };
        let hosts = match get("hosts") {
            None | Some(Json::Null) => None,
            Some(Json::Array(list)) if list.is_empty() => None,
            Some(Json::Array(list)) => Some(
                list.iter()
                    .map(|h| h.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("hosts", "a list of host names"))?,
            ),
            Some(_) => return Err(bad("hosts", "a list of host names")),
        };
        let pool = match get("pool") {
            None | Some(Json::Null) => Pool::None,
            Some(Json::String(s)) if s.trim().is_empty() => Pool::None,
            Some(Json::String(s)) => Pool::Prefix(s.trim().to_string()),
            Some(Json::Array(list)) if list.is_empty() => Pool::None,
            Some(Json::Array(list)) => Pool::Names(
                list.iter()
                    .map(|h| h.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("pool", "a list of VM names or a name prefix"))?,
            ),
            Some(_) => return Err(bad("pool", "a list of VM names or a name prefix")),
        };
        let template = text("template");
        if template.is_none() && pool == Pool::None {
            return Err(VsphereError::Config(
                "a windlass.nodes.vsphere.Server needs a `template` to clone, a `pool`, or both"
                    .into(),
            ));
        }
        Ok(Settings {
            connection,
            template,
            name_prefix: text("name_prefix").unwrap_or_default(),
            folder: text("folder"),
            datastore: text("datastore"),
            resource_pool: text("resource_pool"),
            hosts,
            max_per_host: usize::try_from(count("max_vms_per_host", 0)?).unwrap_or(usize::MAX),
            pool,
            ip_timeout: match count("ip_timeout", 0)? {
                0 => DEFAULT_IP_TIMEOUT,
                s => Duration::from_secs(s),
            },
        })
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Api(#[from] VsphereError),
    #[error(transparent)]
    Placement(#[from] placement::PlacementError),
    #[error("state store: {0}")]
    Store(String),
    #[error(
        "the guest of VM `{vm}` reported no IP within {}s (ip_timeout): is VMware Tools running and the guest's network up?",
        waited.as_secs()
    )]
    NoIp { vm: String, waited: Duration },
    #[error("{0}")]
    State(String),
}

impl VmError {
    fn into_op_error(self) -> OpError {
        match &self {
            VmError::Api(e) if e.is_transient() => OpError::Failed(self.to_string()),
            VmError::Store(_) | VmError::NoIp { .. } => OpError::Failed(self.to_string()),
            _ => OpError::NonRecoverable(self.to_string()),
        }
    }
}

/// Run one lifecycle operation (`create`, `start`, `stop`, `delete`) with a shared session.
pub async fn run(ctx: &OperationContext, operation: &str) -> Result<Option<Json>, OpError> {
    let settings = Settings::read(&ctx.node_properties, &ctx.inputs, &ctx.resources)
        .map_err(|e| VmError::from(e).into_op_error())?;
    if settings.connection.insecure {
        ctx.log(
            "warning",
            format!(
                "TLS verification of vCenter {} is off (connection_config.insecure: true)",
                settings.connection.endpoint
            ),
        );
    }
    let client = SESSIONS
        .acquire(settings.connection.clone())
        .await
        .map_err(|e| VmError::from(e).into_op_error())?;
    let result = match operation {
        "create" => create(ctx, &client, &settings).await,
        "start" => start(ctx, &client, &settings).await,
        "stop" => stop(ctx, &client).await,
        "delete" => delete(ctx, &client).await,
        other => Err(VmError::State(format!(
            "`vsphere.vm.{other}` is not an operation of the vsphere plugin"
        ))),
    };
    SESSIONS.release(&client).await;
    let mask = |e: VmError| {
        let op = e.into_op_error();
        match op {
            OpError::Failed(m) => OpError::Failed(settings.connection.mask(&m)),
            OpError::NonRecoverable(m) => OpError::NonRecoverable(settings.connection.mask(&m)),
            other => other,
        }
    };
    result.map(|()| None).map_err(mask)
}

fn set(ctx: &OperationContext, key: &str, value: Json) -> Result<(), VmError> {
    ctx.instances
        .set_runtime_property(&ctx.instance_id, key, value)
        .map_err(VmError::State)
}

fn recorded(ctx: &OperationContext, key: &str) -> Option<String> {
    ctx.instances
        .runtime_properties(&ctx.instance_id)
        .get(key)
        .and_then(Json::as_str)
        .map(str::to_string)
}

/// Commit the runtime properties written so far.
async fn commit(ctx: &OperationContext) -> Result<(), VmError> {
    ctx.recorder.flush().await.map_err(VmError::Store)
}

async fn create(
    ctx: &OperationContext,
    client: &Client,
    settings: &Settings,
) -> Result<(), VmError> {
    if let Some(id) = recorded(ctx, "vm_id") {
        ctx.log("info", format!("VM {id} was created by an earlier attempt"));
        return Ok(());
    }
    let all = client.hosts().await?;
    let hosts: Vec<Host> = all
        .iter()
        .map(|h| Host {
            id: h.id.clone(),
            name: h.name.clone(),
            healthy: h.healthy(),
            state: format!("{}/{}", h.connection_state, h.power_state),
        })
        .collect();
    let candidates: Vec<Host> = match &settings.hosts {
        Some(names) => names
            .iter()
            .map(|n| {
                hosts
                    .iter()
                    .find(|h| &h.name == n || &h.id == n)
                    .cloned()
                    .unwrap_or_else(|| Host {
                        id: n.clone(),
                        name: n.clone(),
                        healthy: false,
                        state: "not known to vCenter".into(),
                    })
            })
            .collect(),
        None => {
            let mut all = hosts.clone();
            all.sort_by(|a, b| a.name.cmp(&b.name));
            all
        }
    };
    // Refused here, not when the settings are read, so that stop and delete still tear down.
    if let (Some(t), Pool::Names(names)) = (&settings.template, &settings.pool)
        && names.contains(t)
    {
        return Err(VsphereError::Config(format!(
            "`pool` names the template `{t}`: clones are made from it, it is never handed out"
        ))
        .into());
    }
    // A pool this execution found empty is not listed again (`placement::PoolMemo`).
    let (memo_releases, known_empty) = placement::pool_memo(|m| {
        (
            m.releases(&ctx.deployment_id),
            m.known_empty(&ctx.deployment_id, &ctx.node_id, &ctx.execution_id),
        )
    });
    let (pool, pool_ids) = if known_empty || settings.pool == Pool::None {
        Default::default()
    } else {
        pool_vms(client, settings, &hosts).await?
    };
    let clone_name = settings
        .template
        .as_ref()
        .map(|_| format!("{}{}", settings.name_prefix, ctx.instance_id));
    let request = Request {
        instance: &ctx.instance_id,
        node: &ctx.node_id,
        hosts: &hosts,
        candidates: &candidates,
        pool: &pool,
        max_per_host: settings.max_per_host,
        clone_name,
    };

    let store = ctx.recorder.store();
    let lock = placement::deployment_lock(&ctx.deployment_id);
    let chosen = {
        let _held = lock.lock().await;
        // Whether this allocation chose (an instance that holds a VM already gets it back).
        let mut chose = false;
        let chosen = store
            .vsphere_allocate(
                &ctx.deployment_id,
                &settings.connection.endpoint,
                &ctx.node_id,
                &ctx.instance_id,
                |taken| {
                    chose = true;
                    placement::choose(&request, taken)
                },
            )
            .await
            .map_err(|e| VmError::Store(e.to_string()))?;
        let pool_empty = match &chosen {
            Ok(a) => !a.pooled,
            Err(e) => matches!(e, placement::PlacementError::PoolExhausted { .. }),
        };
        if chose && pool_empty && settings.pool != Pool::None {
            placement::pool_memo(|m| {
                m.found_empty(
                    &ctx.deployment_id,
                    &ctx.node_id,
                    &ctx.execution_id,
                    memo_releases,
                );
            });
        }
        chosen?
    };
    set(ctx, "vm_name", Json::String(chosen.vm_name.clone()))?;
    set(ctx, "vm_host", Json::String(chosen.host.clone()))?;
    set(ctx, "pooled", Json::Bool(chosen.pooled))?;
    commit(ctx).await?;

    let id = if chosen.pooled {
        let id =
            match pool_ids.get(&chosen.vm_name) {
                Some(id) => id.clone(),
                None => find_vm(client, &chosen.vm_name).await?.ok_or_else(|| {
                    VsphereError::NotFound {
                        kind: "VM",
                        name: chosen.vm_name.clone(),
                    }
                })?,
            };
        client.power(&id, "start").await?;
        ctx.log(
            "info",
            format!(
                "powered on pooled VM {} ({id}) on {}",
                chosen.vm_name, chosen.host
            ),
        );
        id
    } else if let Some(id) = find_vm(client, &chosen.vm_name).await? {
        // An earlier attempt cloned it before its id was recorded.
        ctx.log(
            "info",
            format!("VM {} ({id}) exists already: adopted", chosen.vm_name),
        );
        id
    } else {
        let template = settings.template.as_deref().unwrap_or_default();
        let source = client.resolve(Kind::Vm, template).await?;
        let mut placement = Map::new();
        placement.insert("host".into(), Json::String(chosen.host_id.clone()));
        for (key, kind, value) in [
            ("folder", Kind::Folder, &settings.folder),
            ("datastore", Kind::Datastore, &settings.datastore),
            ("resource_pool", Kind::ResourcePool, &settings.resource_pool),
        ] {
            if let Some(name) = value {
                placement.insert(key.into(), Json::String(client.resolve(kind, name).await?));
            }
        }
        let spec = client::clone_spec(&chosen.vm_name, &source, placement);
        let id = match client.clone_vm(&spec).await {
            Ok(id) => id,
            Err(e) if e.error_type() == Some("ALREADY_EXISTS") => {
                find_vm(client, &chosen.vm_name).await?.ok_or(e)?
            }
            Err(e) => return Err(e.into()),
        };
        ctx.log(
            "info",
            format!(
                "cloned {template} as {} ({id}) onto {}",
                chosen.vm_name, chosen.host
            ),
        );
        id
    };
    set(ctx, "vm_id", Json::String(id))?;
    commit(ctx).await
}

/// The pool's VMs on the healthy hosts (`GET /api/vcenter/vm?hosts=H`, one call per host),
/// in the pool's order, and their ids by name. The template is never one of them, even when
/// the pool's prefix matches its name.
async fn pool_vms(
    client: &Client,
    settings: &Settings,
    hosts: &[Host],
) -> Result<(Vec<PoolVm>, std::collections::HashMap<String, String>), VsphereError> {
    let pool = &settings.pool;
    let template = settings.template.as_deref();
    let mut vms = Vec::new();
    let mut ids = std::collections::HashMap::new();
    if *pool == Pool::None {
        return Ok((vms, ids));
    }
    let names_filter: String = match pool {
        Pool::Names(names) => names
            .iter()
            .map(|n| format!("&names={}", client::query(n)))
            .collect(),
        _ => String::new(),
    };
    for h in hosts.iter().filter(|h| h.healthy) {
        let filter = format!("hosts={}{names_filter}", client::query(&h.id));
        for vm in client.vms(&filter).await? {
            let is_template = template.is_some_and(|t| t == vm.name || t == vm.id);
            let member = !is_template
                && match pool {
                    Pool::Names(names) => names.contains(&vm.name),
                    Pool::Prefix(prefix) => vm.name.starts_with(prefix.as_str()),
                    Pool::None => false,
                };
            if member {
                ids.insert(vm.name.clone(), vm.id.clone());
                vms.push(PoolVm {
                    name: vm.name,
                    host_id: h.id.clone(),
                    powered_off: vm.power_state == "POWERED_OFF",
                });
            }
        }
    }
    match pool {
        Pool::Names(names) => vms.sort_by_key(|v| {
            names
                .iter()
                .position(|n| n == &v.name)
                .unwrap_or(usize::MAX)
        }),
        _ => vms.sort_by(|a, b| a.name.cmp(&b.name)),
    }
    Ok((vms, ids))
}

/// The id of the VM named `name`, if there is one.
async fn find_vm(client: &Client, name: &str) -> Result<Option<String>, VsphereError> {
    let found = client
        .vms(&format!("names={}", client::query(name)))
        .await?;
    Ok(found.into_iter().find(|v| v.name == name).map(|v| v.id))
}

/// The VM this instance holds: its recorded id, else the one named in the allocation.
async fn held_vm(ctx: &OperationContext, client: &Client) -> Result<Option<String>, VmError> {
    if let Some(id) = recorded(ctx, "vm_id") {
        return Ok(Some(id));
    }
    let name = match recorded(ctx, "vm_name") {
        Some(n) => Some(n),
        None => ctx
            .recorder
            .store()
            .vsphere_allocation(&ctx.deployment_id, &ctx.instance_id)
            .await
            .map_err(|e| VmError::Store(e.to_string()))?
            .map(|a| a.vm_name),
    };
    // Nothing recorded, nothing allocated: no VM, and no need to reach vCenter.
    match name {
        Some(n) => Ok(find_vm(client, &n).await?),
        None => Ok(None),
    }
}

async fn start(
    ctx: &OperationContext,
    client: &Arc<Client>,
    settings: &Settings,
) -> Result<(), VmError> {
    let Some(id) = held_vm(ctx, client).await? else {
        return Err(VmError::State(format!(
            "instance {} holds no VM: its create did not run",
            ctx.instance_id
        )));
    };
    if client.power_state(&id).await? != "POWERED_ON" {
        client.power(&id, "start").await?;
    }
    let began = Instant::now();
    let mut pause = FIRST_POLL;
    loop {
        if let Some(ip) = client.guest_ip(&id).await? {
            set(ctx, "ip", Json::String(ip.clone()))?;
            ctx.log("info", format!("VM {id} has IP {ip}"));
            return Ok(());
        }
        if began.elapsed() >= settings.ip_timeout {
            return Err(VmError::NoIp {
                vm: recorded(ctx, "vm_name").unwrap_or(id),
                waited: settings.ip_timeout,
            });
        }
        // Cancellation ends this wait: the plugin races every operation with it.
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(MAX_POLL);
    }
}

async fn stop(ctx: &OperationContext, client: &Client) -> Result<(), VmError> {
    let Some(id) = held_vm(ctx, client).await? else {
        ctx.log("info", "no VM to power off");
        return Ok(());
    };
    match client.power(&id, "stop").await {
        Ok(()) => {
            ctx.log("info", format!("powered off VM {id}"));
            Ok(())
        }
        Err(e) if e.error_type() == Some("NOT_FOUND") => {
            ctx.log("info", format!("VM {id} is gone already"));
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete(ctx: &OperationContext, client: &Client) -> Result<(), VmError> {
    let store = ctx.recorder.store();
    let allocation = store
        .vsphere_allocation(&ctx.deployment_id, &ctx.instance_id)
        .await
        .map_err(|e| VmError::Store(e.to_string()))?;
    let pooled = ctx
        .instances
        .runtime_properties(&ctx.instance_id)
        .get("pooled")
        .and_then(Json::as_bool)
        .or(allocation.as_ref().map(|a| a.pooled))
        .unwrap_or(false);
    if let Some(id) = held_vm(ctx, client).await? {
        if pooled {
            match client.power(&id, "stop").await {
                Ok(()) => ctx.log(
                    "info",
                    format!("powered off pooled VM {id}: it stays in the pool"),
                ),
                Err(e) if e.error_type() == Some("NOT_FOUND") => {}
                Err(e) => return Err(e.into()),
            }
        } else {
            let deleted = match client.delete_vm(&id).await {
                Err(e) if e.error_type() == Some("NOT_ALLOWED_IN_CURRENT_STATE") => {
                    client.power(&id, "stop").await?;
                    client.delete_vm(&id).await?
                }
                other => other?,
            };
            ctx.log(
                "info",
                if deleted {
                    format!("deleted VM {id}")
                } else {
                    format!("VM {id} was gone already")
                },
            );
        }
    }
    store
        .vsphere_release(&ctx.deployment_id, &ctx.instance_id)
        .await
        .map_err(|e| VmError::Store(e.to_string()))?;
    // A pooled VM or a host slot is free again: pools this process found empty may not be.
    placement::pool_memo(|m| m.released(&ctx.deployment_id));
    Ok(())
}
