//! Container networking in hulld: a task of a container whose record names
//! a CNI network (label [`NETWORK_LABEL`], set by `hullctl run`) gets its own
//! network namespace, pinned under `<state>/netns/<namespace>/<id>`,
//! attached by the network's CNI plugins before the runtime runs, and
//! handed to the runtime as `linux.namespaces[network].path`. When the
//! task's process exits (as docker releases a stopped container's network:
//! its ports and address are free at once), or the task goes without that
//! (deleted, or its shim died), the plugins' DEL runs and the namespace is
//! removed. On start, hulld runs DEL for every cached attachment whose
//! task is gone, so a SIGKILL never leaks an address, a port rule or a
//! namespace.

use hull_metadata::Container;
use hull_network::cni::RuntimeConfig;
use hull_network::{config, netns, Attachment, Cni, CniError, PortMapping};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tonic::Status;

pub use hull_network::labels::{
    IP as IP_LABEL, IPS as IPS_LABEL, NETWORK as NETWORK_LABEL, PORTS as PORTS_LABEL,
};

pub struct Networking {
    pub cni: Cni,
    netns_dir: PathBuf,
    /// The default network, written into the config dir the first time a
    /// container or `network ls` needs it (not at start: a hulld that
    /// never runs a networked container writes nothing into /etc).
    default: serde_json::Value,
    default_name: String,
    /// ADDs one at a time: the published-port check and the ADD that
    /// takes the port must not interleave with another's.
    attach_lock: Mutex<()>,
    /// Containers whose task is being created (`namespace/id`): a second
    /// create of the same container must not detach the first's network.
    creating: Mutex<std::collections::BTreeSet<String>>,
    /// One lock per container being detached (`namespace/id`): the DEL
    /// started when its process exits and the one its task's delete runs
    /// never overlap; the second finds nothing left to do.
    detaching: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// Whether `namespace/id` has a task (the daemon's task table).
pub type Live<'a> = &'a dyn Fn(&str) -> bool;

/// Held while a task is created: on drop the container is no longer being
/// created and, unless [`Creating::keep`] was called, what was attached is
/// detached again (a failed create, or one whose client went away).
pub struct Creating<'a> {
    network: &'a Networking,
    ns: String,
    id: String,
    keep: bool,
}

impl Creating<'_> {
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        let owner = format!("{}/{}", self.ns, self.id);
        if !self.keep {
            let detach = || self.network.detach(&self.ns, &self.id);
            match tokio::runtime::Handle::try_current() {
                Ok(_) => tokio::task::block_in_place(detach),
                Err(_) => detach(),
            }
        }
        self.network
            .creating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&owner);
    }
}

fn cni_status(e: CniError) -> Status {
    match e {
        CniError::UnknownNetwork(_) => Status::not_found(e.to_string()),
        CniError::MissingPlugin { .. } | CniError::Config(_) | CniError::Unsupported { .. } => {
            Status::failed_precondition(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}

impl Networking {
    pub fn new(config: &crate::config::Config) -> Networking {
        let n = &config.network;
        Networking {
            cni: Cni {
                config_dir: n.config_dir.clone(),
                plugin_dirs: n.plugin_dirs.clone(),
                cache_dir: config.root.join("cni/results"),
            },
            netns_dir: config.state.join("netns"),
            default: config::bridge_network(
                &n.default_network,
                &n.bridge,
                &[n.subnet.as_str()],
                &config.root.join("cni/networks"),
            ),
            default_name: n.default_network.clone(),
            attach_lock: Mutex::new(()),
            creating: Default::default(),
            detaching: Default::default(),
        }
    }

    /// Write the default bridge network if no network of the config dir
    /// has its name (as nerdctl does on first use).
    fn ensure_default(&self) -> Result<(), Status> {
        let networks = self.cni.networks().map_err(cni_status)?;
        if networks.iter().any(|n| n.name == self.default_name) {
            return Ok(());
        }
        let file = config::write(&self.cni.config_dir, &self.default)
            .map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!(
            "wrote the default network {:?} to {}",
            self.default_name,
            file.display()
        );
        Ok(())
    }

    fn netns_path(&self, ns: &str, id: &str) -> PathBuf {
        self.netns_dir.join(ns).join(id)
    }

    /// The CNI network `c` asks for, if any.
    fn wanted(c: &Container) -> Option<&str> {
        c.labels
            .get(NETWORK_LABEL)
            .map(String::as_str)
            .filter(|n| hull_network::labels::on_cni(n))
    }

    /// Mark `ns/id` as having its task created; refused while another
    /// create of it runs.
    pub fn begin(&self, ns: &str, id: &str) -> Result<Creating<'_>, Status> {
        let owner = format!("{ns}/{id}");
        let mut creating = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        if !creating.insert(owner) {
            return Err(Status::already_exists(format!(
                "a task for container {id} is being created"
            )));
        }
        Ok(Creating {
            network: self,
            ns: ns.to_string(),
            id: id.to_string(),
            keep: false,
        })
    }

    /// Attach the container's new network namespace to its network; returns
    /// the namespace's path and the attachment (None: no CNI network).
    /// Called under [`Networking::begin`]. Blocking (runs the plugins).
    pub fn attach(
        &self,
        ns: &str,
        c: &Container,
        owner_name: &dyn Fn(&str) -> String,
        live: Live,
    ) -> Result<Option<(PathBuf, Attachment)>, Status> {
        let Some(name) = Self::wanted(c) else {
            return Ok(None);
        };
        if name == self.default_name {
            self.ensure_default()?;
        }
        let network = self.cni.network(name).map_err(cni_status)?;
        let runtime = runtime_config(c)?;
        let _serial = self.attach_lock.lock().unwrap_or_else(|e| e.into_inner());
        let owner = format!("{ns}/{}", c.id);
        self.check_ports(&owner, &runtime.port_mappings, owner_name, live)?;
        // What a crash left of this container's last task: its task is gone
        // (the caller checked) and no other create of it runs (begin).
        self.detach(ns, &c.id);
        let path = self.netns_path(ns, &c.id);
        netns::create(&path).map_err(|e| {
            Status::internal(format!(
                "creating the network namespace {}: {e}",
                path.display()
            ))
        })?;
        match self.cni.add(
            &network,
            &owner,
            &cni_container_id(&owner),
            &path,
            "eth0",
            runtime,
        ) {
            Ok(att) => Ok(Some((path, att))),
            Err(e) => {
                let _ = netns::remove(&path);
                Err(cni_status(e))
            }
        }
    }

    /// Refuse a host port another container publishes already.
    /// Only containers with a task count: an attachment whose DEL keeps
    /// failing (kept for a later try) does not hold its port.
    fn check_ports(
        &self,
        owner: &str,
        ports: &[PortMapping],
        owner_name: &dyn Fn(&str) -> String,
        live: Live,
    ) -> Result<(), Status> {
        let others = self
            .cni
            .cached()
            .into_iter()
            .filter(|a| a.owner != owner && live(&a.owner));
        for att in others {
            for taken in &att.runtime.port_mappings {
                if let Some(p) = ports.iter().find(|p| p.clashes(taken)) {
                    let ip = if taken.host_ip.is_empty() {
                        "0.0.0.0"
                    } else {
                        &taken.host_ip
                    };
                    return Err(Status::already_exists(format!(
                        "port {}/{} (host {ip}:{}) is already published by container {}",
                        p.host_port,
                        p.protocol,
                        taken.host_port,
                        owner_name(&att.owner)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Detach a container: DEL of each of its attachments, then its
    /// namespace goes. Errors are logged: the cache keeps a failed DEL for
    /// the next start. Blocking.
    pub fn detach(&self, ns: &str, id: &str) {
        self.detach_if(ns, id, || true, || {});
    }

    /// [`Networking::detach`] if `still` holds once no other detach of the
    /// container runs (checked under its lock): whether the task that
    /// exited is still the container's. `released` runs under the same
    /// lock if the container had attachments and every DEL succeeded.
    pub fn detach_if(
        &self,
        ns: &str,
        id: &str,
        still: impl FnOnce() -> bool,
        released: impl FnOnce(),
    ) {
        let owner = format!("{ns}/{id}");
        let lock = self
            .detaching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(owner.clone())
            .or_default()
            .clone();
        {
            let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
            if still() && self.detach_locked(ns, id, &owner) {
                released();
            }
        }
        let mut detaching = self.detaching.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map's and ours: no other detach waits for it.
        if Arc::strong_count(&lock) == 2 {
            detaching.remove(&owner);
        }
    }

    /// DEL of each attachment, then the namespace: true if there were
    /// attachments and all of them went.
    fn detach_locked(&self, ns: &str, id: &str, owner: &str) -> bool {
        // DEL while the namespace still exists: the bridge plugin (1.1)
        // finds the masquerade rules to remove from the container's
        // interface, which it deletes (~50 ms of the kernel's veth
        // teardown). A DEL without the namespace would be faster and leave
        // those rules behind, as `ctr run --cni --rm` does.
        let attachments: Vec<Attachment> = self
            .cni
            .cached_for(&cni_container_id(owner))
            .into_iter()
            .filter(|a| a.owner == owner)
            .collect();
        let mut all_went = !attachments.is_empty();
        for att in &attachments {
            if let Err(e) = self.cni.del(att) {
                tracing::warn!("detaching {owner} from network {}: {e}", att.network);
                all_went = false;
            }
        }
        let path = self.netns_path(ns, id);
        if path.symlink_metadata().is_ok() {
            if let Err(e) = netns::remove(&path) {
                tracing::warn!("removing the network namespace {}: {e}", path.display());
            }
        }
        all_went
    }

    /// Whether `ns/id` has a network namespace of ours (a task on a CNI
    /// network, or what a crash left of one).
    pub fn has_namespace(&self, ns: &str, id: &str) -> bool {
        self.netns_path(ns, id).symlink_metadata().is_ok()
    }

    /// After a restart: detach every container whose task is gone, and
    /// remove namespaces nothing is attached to. Blocking.
    pub fn clean_stale(&self, has_task: &dyn Fn(&str, &str) -> bool) {
        for att in self.cni.cached() {
            let Some((ns, id)) = att.owner.split_once('/') else {
                continue;
            };
            if !has_task(ns, id) {
                tracing::info!(
                    "container {} has no task any more: detaching it from {}",
                    att.owner,
                    att.network
                );
                self.detach(ns, id);
            }
        }
        let Ok(namespaces) = std::fs::read_dir(&self.netns_dir) else {
            return;
        };
        for dir in namespaces.flatten() {
            let ns = dir.file_name().to_string_lossy().into_owned();
            for entry in std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let id = entry.file_name().to_string_lossy().into_owned();
                if !has_task(&ns, &id) {
                    let _ = netns::remove(&entry.path());
                }
            }
        }
    }

    /// The networks hulld knows, for `hullctl network ls`.
    pub fn networks(&self) -> Result<Vec<config::NetworkList>, Status> {
        self.ensure_default()?;
        self.cni.networks().map_err(cni_status)
    }

    /// After a restart: CHECK the attachments of the tasks that are still
    /// there (a plugin finding its interface, address or rules gone says
    /// so in the log). Blocking.
    pub fn check_live(&self, has_task: &dyn Fn(&str, &str) -> bool) {
        for att in self.cni.cached() {
            let Some((ns, id)) = att.owner.split_once('/') else {
                continue;
            };
            if has_task(ns, id) && !att.result.is_null() && supports_check(&att) {
                if let Err(e) = self.cni.check(&att) {
                    tracing::warn!(
                        "container {}: its network {} fails CHECK: {e}",
                        att.owner,
                        att.network
                    );
                }
            }
        }
    }

    /// Containers with a task attached to `network`, as `namespace/id`.
    pub fn users(&self, network: &str, live: Live) -> Vec<String> {
        self.cni
            .cached()
            .into_iter()
            .filter(|a| a.network == network && live(&a.owner))
            .map(|a| a.owner)
            .collect()
    }

    pub fn config_dir(&self) -> &Path {
        &self.cni.config_dir
    }
}

/// CHECK exists from CNI 0.4.0 on; older plugins must refuse it.
fn supports_check(att: &Attachment) -> bool {
    let version = att.config["cniVersion"].as_str().unwrap_or("");
    let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    parts.as_slice() >= [0, 4, 0].as_slice()
}

/// `CNI_CONTAINERID` of `namespace/id`: a digest of it, since `-` and `.`
/// may appear in both names (`a/b-c` and `a-b/c` must not share host-local
/// leases or a cache entry).
fn cni_container_id(owner: &str) -> String {
    format!(
        "hull-{}",
        &hull_content::Digest::of(owner.as_bytes()).hex()[..40]
    )
}

/// What the container's labels ask of the plugins.
fn runtime_config(c: &Container) -> Result<RuntimeConfig, Status> {
    let ports: Option<Vec<PortMapping>> = json_label(c, PORTS_LABEL)?;
    let ips = c.labels.get(IP_LABEL).cloned().into_iter().collect();
    Ok(RuntimeConfig {
        port_mappings: ports.unwrap_or_default(),
        ips,
        mac: c.labels.get(hull_network::labels::MAC).cloned(),
        bandwidth: json_label(c, hull_network::labels::BANDWIDTH)?,
        dns: json_label(c, hull_network::labels::DNS)?,
    })
}

/// A JSON label of the container's, if it has it.
fn json_label<T: serde::de::DeserializeOwned>(
    c: &Container,
    name: &str,
) -> Result<Option<T>, Status> {
    c.labels
        .get(name)
        .map(|text| serde_json::from_str(text))
        .transpose()
        .map_err(|e| Status::invalid_argument(format!("container {}: label {name}: {e}", c.id)))
}

/// The spec with its network namespace set to `path`.
pub fn join_netns(spec: &[u8], path: &Path) -> Result<Vec<u8>, String> {
    let mut doc: serde_json::Value =
        serde_json::from_slice(spec).map_err(|e| format!("the OCI spec is not JSON: {e}"))?;
    let namespaces = doc["linux"]["namespaces"]
        .as_array_mut()
        .ok_or("the OCI spec has no linux.namespaces")?;
    let entry = serde_json::json!({"type": "network", "path": path});
    match namespaces.iter_mut().find(|n| n["type"] == "network") {
        Some(n) => *n = entry,
        None => namespaces.push(entry),
    }
    Ok(serde_json::to_vec(&doc).expect("JSON values serialise"))
}

/// Release a container's network as soon as its process exits, as docker
/// does for a stopped container: its published ports and its address are
/// free for other containers at once, and the DEL (most of it the kernel's
/// veth teardown) runs while the client is still on its way to delete the
/// task, not after. The task's delete then finds nothing left to detach.
pub fn spawn_release_at_exit(daemon: Arc<crate::daemon::Daemon>) {
    let d = daemon.clone();
    daemon
        .events
        .each_init_exit(move |ns, exit| release_at_exit(d.clone(), ns, exit.container_id));
    // Those that exited while hulld was away (or whose event a lagging
    // subscriber missed before a restart).
    for (ns, id, _) in daemon.tasks.all() {
        tokio::spawn(release_at_exit(daemon.clone(), ns, id));
    }
}

async fn release_at_exit(d: Arc<crate::daemon::Daemon>, ns: String, id: String) {
    if !d.network.has_namespace(&ns, &id) {
        return;
    }
    let Ok(task) = d.tasks.get(&ns, &id) else {
        return;
    };
    // The event may come late, about a task since deleted and replaced by
    // a running one: only a stopped task's network goes.
    let request = containerd_shim_protos::api::StateRequest {
        id: id.clone(),
        ..Default::default()
    };
    let stopped = hull_api::containerd::v1::types::Status::Stopped as i32;
    match task.shim.task.state(crate::shim::ctx(), &request).await {
        Ok(s) if s.status.value() == stopped => {}
        _ => return,
    }
    let released = tokio::task::spawn_blocking(move || {
        let current = || d.tasks.is_current(&ns, &id, &task);
        // A stopped container has no address (docker's inspect); cleared
        // under the container's lock, before a new task can record its own.
        let forget_address = || record_ips(&d.meta, &ns, &id, &[]);
        d.network.detach_if(&ns, &id, current, forget_address);
    })
    .await;
    if let Err(e) = released {
        tracing::warn!("releasing the network of an exited task: {e}");
    }
}

/// The addresses the network gave container `ns/id`, as a label of its
/// record (for `hullctl inspect`, `ps` and its /etc/hosts); none removes it.
pub fn record_ips(meta: &hull_metadata::Metadata, ns: &str, id: &str, ips: &[String]) {
    let Ok(mut c) = meta.container(ns, id) else {
        return;
    };
    if ips.is_empty() {
        c.labels.remove(IPS_LABEL);
    } else {
        c.labels.insert(IPS_LABEL.to_string(), ips.join(","));
    }
    if let Err(e) = meta.update_container(ns, &c, &[format!("labels.{IPS_LABEL}")]) {
        tracing::warn!("recording the addresses of {ns}/{id}: {e}");
    }
}
