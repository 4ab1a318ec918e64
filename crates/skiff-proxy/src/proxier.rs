//! The proxier: [`Proxier::sync`] renders the current Services and EndpointSlices and applies
//! the difference to the last applied ruleset (or the whole table on the first sync and after
//! any failure); [`run`] keeps that current from watches on the API (upstream's
//! `pkg/proxy/nftables/proxier.go` `syncProxyRules` and the `BoundedFrequencyRunner` around it).
//!
//! The watch loop holds only the reduced [`ServiceInfo`] and [`SliceInfo`], never whole
//! objects, and reacts to the current state rather than to the event that woke it: any change
//! marks the state dirty, and the next sync (at most one per `min_sync_interval`) renders it all.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use crate::model::{self, ServiceInfo, SliceInfo};
use crate::nft::{enable_sysctls, Nft};
use crate::render::{self, RenderConfig, Ruleset};
use crate::{script, Config, Error, Result};

/// What one sync did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncReport {
    /// The number of successful syncs so far, this one included.
    pub generation: u64,
    /// Whether the table was replaced in full (else the change was incremental).
    pub full: bool,
    /// Whether `nft` was run (false when nothing changed).
    pub applied: bool,
    /// The Service ports rendered.
    pub service_ports: usize,
    /// The size of the script sent to nft, in bytes.
    pub script_bytes: usize,
    /// Time spent building the model and rendering.
    pub render_time: Duration,
    /// Time spent in nft.
    pub apply_time: Duration,
}

/// The sync step, with the last ruleset applied.
#[derive(Debug)]
pub struct Proxier {
    nft: Nft,
    render: RenderConfig,
    node_name: String,
    last: Option<Applied>,
    generation: u64,
}

/// What the table holds after the last successful sync, and the models it was rendered from.
#[derive(Debug)]
struct Applied {
    ruleset: Ruleset,
    models: HashMap<String, model::ServicePortModel>,
    /// Per endpoint address, how many Service ports' endpoints have it.
    hairpin: HashMap<Ipv4Addr, u32>,
}

/// The hairpin set's counts while a sync moves them, with the addresses it touched and
/// whether each was in the set before.
struct Hairpin {
    counts: HashMap<Ipv4Addr, u32>,
    touched: HashMap<Ipv4Addr, bool>,
}

impl Hairpin {
    fn add(&mut self, m: &model::ServicePortModel) {
        for e in &m.endpoints {
            let n = self.counts.entry(e.ip).or_insert(0);
            self.touched.entry(e.ip).or_insert(*n > 0);
            *n += 1;
        }
    }

    fn remove(&mut self, m: &model::ServicePortModel) {
        for e in &m.endpoints {
            if let Some(n) = self.counts.get_mut(&e.ip) {
                self.touched.entry(e.ip).or_insert(*n > 0);
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.counts.remove(&e.ip);
                }
            }
        }
    }

    /// The addresses that left the set and those that joined it.
    fn delta(&self) -> (Vec<Ipv4Addr>, Vec<Ipv4Addr>) {
        let mut gone = Vec::new();
        let mut new = Vec::new();
        for (ip, was) in &self.touched {
            match (*was, self.counts.contains_key(ip)) {
                (true, false) => gone.push(*ip),
                (false, true) => new.push(*ip),
                _ => {}
            }
        }
        gone.sort();
        new.sort();
        (gone, new)
    }
}

impl Proxier {
    /// A proxier for `config` that will replace the table in full on its first sync.
    pub fn new(config: &Config) -> Result<Self> {
        if !render::valid_identifier(&config.table) {
            return Err(Error::Config(format!(
                "invalid table name {:?}",
                config.table
            )));
        }
        Ok(Self {
            nft: Nft::new(config.nft.clone())?,
            render: config.render_config(),
            node_name: config.node_name.clone(),
            last: None,
            generation: 0,
        })
    }

    /// Renders the given objects and applies them: the difference to the last applied
    /// ruleset, or the whole table when there is none (first sync, after an error, after
    /// [`Proxier::force_full`]). On an error nothing of this sync was applied, and the next
    /// sync replaces the table in full.
    pub fn sync<'a>(
        &mut self,
        services: impl IntoIterator<Item = &'a ServiceInfo>,
        slices: impl IntoIterator<Item = &'a SliceInfo>,
    ) -> Result<SyncReport> {
        let start = Instant::now();
        let models = model::build(services, slices, &self.node_name);
        let service_ports = models.len();
        // Only the Service ports whose model changed are rendered again; the others keep
        // their part of the last ruleset (moved, not copied), and only changed parts are
        // diffed.
        let mut old = self.last.take();
        let mut parts = BTreeMap::new();
        let mut kept_models = HashMap::with_capacity(models.len());
        let mut changed_keys = Vec::new();
        // The hairpin set follows every endpoint address, counted over the Service ports
        // that use it; only the ports that changed move the counts.
        let mut hairpin = Hairpin {
            counts: old
                .as_mut()
                .map(|o| std::mem::take(&mut o.hairpin))
                .unwrap_or_default(),
            touched: HashMap::new(),
        };
        for m in models {
            let key = render::service_key(&m);
            let reused = match old.as_mut() {
                Some(old) if old.models.get(&key) == Some(&m) => old.ruleset.services.remove(&key),
                _ => None,
            };
            let part = match reused {
                Some(part) => part,
                None => {
                    changed_keys.push(key.clone());
                    if let Some(before) = old.as_ref().and_then(|o| o.models.get(&key)) {
                        hairpin.remove(before);
                    }
                    hairpin.add(&m);
                    render::render_service(&m, &self.render)?
                }
            };
            parts.insert(key.clone(), part);
            kept_models.insert(key, m);
        }
        if let Some(o) = old.as_ref() {
            for (key, m) in &o.models {
                if !kept_models.contains_key(key) {
                    hairpin.remove(m);
                }
            }
        }
        let (gone_ips, new_ips) = hairpin.delta();
        // The change of the hairpin set as a pair of small parts (what went, what came),
        // applied to the part kept from the last sync; a first sync renders it whole.
        let (hairpin_part, hairpin_change) = match old
            .as_mut()
            .and_then(|o| o.ruleset.services.remove(render::HAIRPIN_PART))
        {
            Some(mut part) => {
                let change = (
                    render::hairpin_elements(&gone_ips),
                    render::hairpin_elements(&new_ips),
                );
                render::update_hairpin(&mut part, &change.0, &change.1);
                (part, Some(change))
            }
            None => (render::hairpin(kept_models.values()), None),
        };
        parts.insert(render::HAIRPIN_PART.to_owned(), hairpin_part);
        let ruleset = Ruleset {
            table: self.render.table.clone(),
            base: render::base(),
            services: parts,
        };
        let diff = old.as_ref().and_then(|old| {
            if old.ruleset.table != ruleset.table || old.ruleset.base != ruleset.base {
                return None;
            }
            // What is left of the old parts changed or is gone.
            let mut changes: Vec<script::Change<'_>> = changed_keys
                .iter()
                .map(|k| (old.ruleset.services.get(k), ruleset.services.get(k)))
                .collect();
            changes.extend(
                old.ruleset
                    .services
                    .iter()
                    .filter(|(k, _)| !ruleset.services.contains_key(*k))
                    .map(|(_, part)| (Some(part), None)),
            );
            if let Some((gone, new)) = &hairpin_change {
                if !gone.elements.is_empty() || !new.elements.is_empty() {
                    changes.push((Some(gone), Some(new)));
                }
            }
            script::changes(&ruleset.table, &changes)
        });
        drop(old);
        let (script, full) = match diff {
            Some(diff) => (diff, false),
            None => (script::full(&ruleset), true),
        };
        let render_time = start.elapsed();
        let applied = !script.is_empty();
        if applied {
            self.nft.apply(&script)?;
        }
        self.last = Some(Applied {
            ruleset,
            models: kept_models,
            hairpin: hairpin.counts,
        });
        self.generation += 1;
        Ok(SyncReport {
            generation: self.generation,
            full,
            applied,
            service_ports,
            script_bytes: script.len(),
            render_time,
            apply_time: start.elapsed() - render_time,
        })
    }

    /// Makes the next sync replace the whole table.
    pub fn force_full(&mut self) {
        self.last = None;
    }

    /// Checks that our table is still there; when it is not, the next sync replaces it in
    /// full. Returns whether it was there.
    pub fn check_table(&mut self) -> Result<bool> {
        let present = self.nft.table_exists(&self.render.table)?;
        if !present {
            self.last = None;
        }
        Ok(present)
    }

    /// The number of successful syncs.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The ruleset last applied, if the table is believed current.
    pub fn last_applied(&self) -> Option<&Ruleset> {
        self.last.as_ref().map(|a| &a.ruleset)
    }
}

/// One watched kind's store, keyed by (namespace, name): its reduced contents, the re-list being buffered, whether it has listed.
struct Store<T> {
    current: HashMap<(String, String), T>,
    relist: Option<HashMap<(String, String), T>>,
    listed: bool,
}

impl<T: PartialEq> Store<T> {
    fn new() -> Self {
        Self {
            current: HashMap::new(),
            relist: None,
            listed: false,
        }
    }

    /// Applies one watcher event; returns whether the contents changed.
    fn apply<K: ResourceExt>(&mut self, event: Event<K>, convert: fn(&K) -> Option<T>) -> bool {
        let key = |k: &K| (k.namespace().unwrap_or_default(), k.name_any());
        match event {
            Event::Init => {
                self.relist = Some(HashMap::new());
                false
            }
            Event::InitApply(k) => {
                if let (Some(buffer), Some(v)) = (self.relist.as_mut(), convert(&k)) {
                    buffer.insert(key(&k), v);
                }
                false
            }
            Event::InitDone => {
                let fresh = self.relist.take().unwrap_or_default();
                let changed = !self.listed || fresh != self.current;
                self.current = fresh;
                self.listed = true;
                changed
            }
            Event::Apply(k) => match convert(&k) {
                Some(v) => {
                    let key = key(&k);
                    if self.current.get(&key) == Some(&v) {
                        false
                    } else {
                        self.current.insert(key, v);
                        true
                    }
                }
                None => self.current.remove(&key(&k)).is_some(),
            },
            Event::Delete(k) => self.current.remove(&key(&k)).is_some(),
        }
    }
}

/// [`run_with_status`] without anyone watching the status.
pub async fn run(client: Client, config: Config) -> Result<()> {
    let (status, _) = watch::channel(0);
    run_with_status(client, config, status).await
}

/// The proxier loop: sets the sysctls (if configured), watches Services and EndpointSlices in
/// all namespaces, and after both have listed keeps the table in sync, at most once per
/// `min_sync_interval`. Every `resync_interval` it checks the table is there (re-creating it if
/// not), every `full_sync_interval` it replaces it in full. A failed sync is logged and retried
/// with backoff (1 s doubling to 30 s) as a full replace. The watchers re-list with backoff
/// when the API server goes away, so the loop outlives API server restarts. `status` gets the
/// generation of each successful sync. Returns only on a configuration error or if a watch
/// stream ends.
pub async fn run_with_status(
    client: Client,
    config: Config,
    status: watch::Sender<u64>,
) -> Result<()> {
    if config.set_sysctls {
        enable_sysctls()?;
    }
    let mut proxier = Some(Proxier::new(&config)?);
    let services = watcher::watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff();
    let slices = watcher::watcher(
        Api::<EndpointSlice>::all(client),
        watcher::Config::default(),
    )
    .default_backoff();
    let mut services = std::pin::pin!(services);
    let mut slices = std::pin::pin!(slices);
    let mut service_store = Store::<ServiceInfo>::new();
    let mut slice_store = Store::<SliceInfo>::new();
    let to_service: fn(&Service) -> Option<ServiceInfo> = ServiceInfo::from_service;
    let to_slice: fn(&EndpointSlice) -> Option<SliceInfo> = SliceInfo::from_slice;

    let mut dirty = false;
    let mut next_sync = tokio::time::Instant::now();
    let mut next_check = tokio::time::Instant::now() + config.resync_interval;
    let mut last_full = tokio::time::Instant::now();
    let mut retry = Duration::from_secs(1);

    loop {
        let ready = dirty && service_store.listed && slice_store.listed;
        tokio::select! {
            event = services.next() => match event {
                Some(Ok(event)) => dirty |= service_store.apply(event, to_service),
                Some(Err(e)) => tracing::warn!(error = %e, "watching Services"),
                None => return Err(Error::Task("the Service watch ended".to_owned())),
            },
            event = slices.next() => match event {
                Some(Ok(event)) => dirty |= slice_store.apply(event, to_slice),
                Some(Err(e)) => tracing::warn!(error = %e, "watching EndpointSlices"),
                None => return Err(Error::Task("the EndpointSlice watch ended".to_owned())),
            },
            () = tokio::time::sleep_until(next_sync), if ready => {
                let Some(mut p) = proxier.take() else {
                    return Err(Error::Task("the proxier was lost".to_owned()));
                };
                // The streams are not polled while the sync runs, so the stores can lend
                // their contents to the blocking task instead of copying them.
                let svcs = std::mem::take(&mut service_store.current);
                let sls = std::mem::take(&mut slice_store.current);
                let (p, svcs, sls, result) = tokio::task::spawn_blocking(move || {
                    let result = p.sync(svcs.values(), sls.values());
                    (p, svcs, sls, result)
                })
                .await
                .map_err(|e| Error::Task(e.to_string()))?;
                service_store.current = svcs;
                slice_store.current = sls;
                let generation = p.generation();
                proxier = Some(p);
                let now = tokio::time::Instant::now();
                match result {
                    Ok(report) => {
                        dirty = false;
                        retry = Duration::from_secs(1);
                        if report.full {
                            last_full = now;
                        }
                        tracing::debug!(?report, "synced the Service proxy rules");
                        status.send_replace(generation);
                        next_sync = now + config.min_sync_interval;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, retry_in = ?retry, "syncing the Service proxy rules");
                        next_sync = now + retry;
                        retry = (retry * 2).min(Duration::from_secs(30));
                    }
                }
            },
            () = tokio::time::sleep_until(next_check) => {
                next_check = tokio::time::Instant::now() + config.resync_interval;
                let Some(mut p) = proxier.take() else {
                    return Err(Error::Task("the proxier was lost".to_owned()));
                };
                let (mut p, checked) = tokio::task::spawn_blocking(move || {
                    let checked = p.check_table();
                    (p, checked)
                })
                .await
                .map_err(|e| Error::Task(e.to_string()))?;
                match checked {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(table = %config.table, "the proxy's table is gone; re-creating it");
                        dirty = true;
                    }
                    Err(e) => tracing::warn!(error = %e, "checking the proxy's table"),
                }
                if last_full.elapsed() >= config.full_sync_interval {
                    p.force_full();
                    dirty = true;
                }
                proxier = Some(p);
            },
        }
    }
}
