//! The indexes the endpoint controllers read through, so that nothing scans every pod or
//! every Service of the cluster per event or per sync (upstream lists a namespace's pods by
//! selector and its Services for every pod event, `GetPodServiceMemberships`; at 10,000
//! Services that is what must not be done per event):
//!
//! - [`LabelIndex`]: a kind's objects by `(namespace, label key, label value)`, plus the
//!   labels and a fingerprint each object had when last seen. [`LabelIndex::matching`] answers
//!   a Service selector from its smallest bucket; [`LabelIndex::observe`] (called from the
//!   controller's trigger mapper) says what an object's labels and fingerprint were before
//!   and are now, which is how a pod's OLD labels are known when they change.
//! - [`ServiceIndex`]: Services with a selector, by one `(namespace, key, value)` pair of it
//!   (every pod a selector matches carries all its pairs, so one is enough to file it), for
//!   [`services_to_update`]: the Services a pod's change concerns, upstream's
//!   `GetServicesToUpdateOnPodChange` (old and new memberships, only when something that
//!   endpoints show changed).
//!
//! Reads return the shared store's current objects, so nothing here is older than the cache;
//! an index is built from the store the first time it is read or observed (the controllers
//! run their work queue only once the informers synced, so that is a complete list), and kept
//! current by `observe` after that (which reads the store, not the event, so it is idempotent
//! and order-independent).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;
use parking_lot::Mutex;

use crate::informers::Kind;

pub type Labels = BTreeMap<String, String>;

/// A Service's selector as the endpoint controllers read it: `None` when it has none. An
/// empty selector is none too: upstream's nil check sees `{}` as nil, since the API server's
/// storage drops empty maps.
pub fn selector_of(svc: &Service) -> Option<&Labels> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

/// Whether every pair of `selector` is in `labels` (upstream's `labels.Set(sel).AsSelector()`).
pub fn selector_matches(selector: &Labels, labels: Option<&Labels>) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

type Bucket = (String, String, String);

/// What an object looked like to the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub labels: Labels,
    pub fingerprint: u64,
}

/// What one observation found: the object as the index had it, and as the store has it now
/// (`None`: not in the index before / gone from the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub namespace: String,
    pub before: Option<Seen>,
    pub after: Option<Seen>,
}

struct LabelState<K: Resource<DynamicType = ()>> {
    built: bool,
    seen: HashMap<ObjectRef<K>, Seen>,
    buckets: HashMap<Bucket, HashSet<ObjectRef<K>>>,
}

/// A kind's objects by namespace and label.
pub struct LabelIndex<K: Kind> {
    store: Store<K>,
    /// Index only this label key (EndpointSlices by `kubernetes.io/service-name`).
    only_key: Option<&'static str>,
    fingerprint: fn(&K) -> u64,
    state: Mutex<LabelState<K>>,
}

impl<K: Kind> LabelIndex<K> {
    pub fn new(
        store: Store<K>,
        only_key: Option<&'static str>,
        fingerprint: fn(&K) -> u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            only_key,
            fingerprint,
            state: Mutex::new(LabelState {
                built: false,
                seen: HashMap::new(),
                buckets: HashMap::new(),
            }),
        })
    }

    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    fn seen_of(&self, obj: &K) -> Seen {
        let mut labels = obj.meta().labels.clone().unwrap_or_default();
        if let Some(key) = self.only_key {
            labels.retain(|k, _| k == key);
        }
        Seen {
            labels,
            fingerprint: (self.fingerprint)(obj),
        }
    }

    /// Files `key` as the store has it now; answers what it was before.
    fn refile(&self, state: &mut LabelState<K>, key: &ObjectRef<K>, namespace: &str) -> Change {
        let after = self.store.get(key).map(|o| self.seen_of(&o));
        let before = state.seen.remove(key);
        if let Some(b) = &before {
            for (k, v) in &b.labels {
                let bucket = (namespace.to_owned(), k.clone(), v.clone());
                if let Some(set) = state.buckets.get_mut(&bucket) {
                    set.remove(key);
                    if set.is_empty() {
                        state.buckets.remove(&bucket);
                    }
                }
            }
        }
        if let Some(a) = &after {
            for (k, v) in &a.labels {
                state
                    .buckets
                    .entry((namespace.to_owned(), k.clone(), v.clone()))
                    .or_default()
                    .insert(key.clone());
            }
            state.seen.insert(key.clone(), a.clone());
        }
        Change {
            namespace: namespace.to_owned(),
            before,
            after,
        }
    }

    /// Takes in a change of `obj` (from its trigger stream).
    pub fn observe(&self, obj: &K) -> Change {
        let key = ObjectRef::from_obj(obj);
        let namespace = obj.meta().namespace.clone().unwrap_or_default();
        let mut state = self.state.lock();
        self.ensure_built(&mut state);
        self.refile(&mut state, &key, &namespace)
    }

    /// Files every cached object the first time the index is used.
    fn ensure_built(&self, state: &mut LabelState<K>) {
        if state.built {
            return;
        }
        for obj in self.store.state() {
            let key = ObjectRef::from_obj(&*obj);
            let namespace = obj.meta().namespace.clone().unwrap_or_default();
            self.refile(state, &key, &namespace);
        }
        state.built = true;
    }

    /// The cached objects of `namespace` whose labels `selector` matches, by name. An empty
    /// selector matches nothing here (callers never ask for one).
    pub fn matching(&self, namespace: &str, selector: &Labels) -> Vec<Arc<K>> {
        let refs: Vec<ObjectRef<K>> = {
            let mut state = self.state.lock();
            self.ensure_built(&mut state);
            let smallest = selector
                .iter()
                .filter(|(k, _)| self.only_key.is_none_or(|only| only == k.as_str()))
                .map(|(k, v)| {
                    state
                        .buckets
                        .get(&(namespace.to_owned(), k.clone(), v.clone()))
                        .map_or(0, HashSet::len)
                })
                .zip(selector.iter())
                .min_by_key(|(n, _)| *n);
            match smallest {
                Some((0, _)) | None => return Vec::new(),
                Some((_, (k, v))) => state
                    .buckets
                    .get(&(namespace.to_owned(), k.clone(), v.clone()))
                    .map(|set| set.iter().cloned().collect())
                    .unwrap_or_default(),
            }
        };
        let mut out: Vec<Arc<K>> = refs
            .iter()
            .filter_map(|r| self.store.get(r))
            .filter(|o| {
                o.meta().namespace.as_deref() == Some(namespace)
                    && selector_matches(selector, o.meta().labels.as_ref())
            })
            .collect();
        out.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
        out
    }
}

/// What of a pod the endpoints show (upstream's `podEndpointsChanged`, plus the phase, the
/// node, the UID and the hostname fields): a pod event that changes none of it and no label
/// concerns no Service.
pub fn pod_fingerprint(pod: &Pod) -> u64 {
    let mut h = DefaultHasher::new();
    pod.metadata.uid.hash(&mut h);
    pod.metadata.deletion_timestamp.is_some().hash(&mut h);
    crate::pods::is_ready(pod).hash(&mut h);
    if let Some(spec) = &pod.spec {
        spec.node_name.hash(&mut h);
        spec.hostname.hash(&mut h);
        spec.subdomain.hash(&mut h);
    }
    if let Some(status) = &pod.status {
        status.phase.hash(&mut h);
        status.pod_ip.hash(&mut h);
        for ip in status.pod_ips.iter().flatten() {
            ip.ip.hash(&mut h);
        }
    }
    h.finish()
}

struct ServiceState {
    built: bool,
    /// The namespace and selector each Service was filed with.
    filed: HashMap<ObjectRef<Service>, (Bucket, Labels)>,
    buckets: HashMap<Bucket, HashSet<ObjectRef<Service>>>,
}

/// Services with a selector, by namespace and one pair of their selector.
pub struct ServiceIndex {
    store: Store<Service>,
    state: Mutex<ServiceState>,
}

impl ServiceIndex {
    pub fn new(store: Store<Service>) -> Arc<Self> {
        Arc::new(Self {
            store,
            state: Mutex::new(ServiceState {
                built: false,
                filed: HashMap::new(),
                buckets: HashMap::new(),
            }),
        })
    }

    fn refile(&self, state: &mut ServiceState, key: &ObjectRef<Service>) {
        if let Some((bucket, _)) = state.filed.remove(key) {
            if let Some(set) = state.buckets.get_mut(&bucket) {
                set.remove(key);
                if set.is_empty() {
                    state.buckets.remove(&bucket);
                }
            }
        }
        let Some(svc) = self.store.get(key) else {
            return;
        };
        let Some(selector) = selector_of(&svc) else {
            return;
        };
        let Some((k, v)) = selector.iter().next() else {
            return;
        };
        let bucket = (
            svc.metadata.namespace.clone().unwrap_or_default(),
            k.clone(),
            v.clone(),
        );
        state
            .buckets
            .entry(bucket.clone())
            .or_default()
            .insert(key.clone());
        state.filed.insert(key.clone(), (bucket, selector.clone()));
    }

    /// Takes in a change of `svc` (from the Service trigger stream).
    pub fn observe(&self, svc: &Service) {
        let key = ObjectRef::from_obj(svc);
        let mut state = self.state.lock();
        self.ensure_built(&mut state);
        self.refile(&mut state, &key);
    }

    fn ensure_built(&self, state: &mut ServiceState) {
        if state.built {
            return;
        }
        for svc in self.store.state() {
            self.refile(state, &ObjectRef::from_obj(&*svc));
        }
        state.built = true;
    }

    /// The Services of `namespace` whose selector matches `labels`.
    pub fn selecting(&self, namespace: &str, labels: &Labels) -> HashSet<ObjectRef<Service>> {
        let mut state = self.state.lock();
        self.ensure_built(&mut state);
        let mut out = HashSet::new();
        for (k, v) in labels {
            let bucket = (namespace.to_owned(), k.clone(), v.clone());
            for key in state.buckets.get(&bucket).into_iter().flatten() {
                if let Some((_, selector)) = state.filed.get(key) {
                    if selector_matches(selector, Some(labels)) {
                        out.insert(key.clone());
                    }
                }
            }
        }
        out
    }
}

/// The Services a pod's change concerns (upstream's `GetServicesToUpdateOnPodChange` and
/// `determineNeededServiceUpdates`): a new pod's, a gone pod's (its last labels), and on an
/// update the new memberships, plus the old ones when the labels changed (all of both when
/// the pod changed too, only those it joined or left otherwise). An update that changes no
/// label and nothing the endpoints show concerns none.
pub fn services_to_update(
    pods: &LabelIndex<Pod>,
    services: &ServiceIndex,
    pod: &Pod,
) -> Vec<ObjectRef<Service>> {
    let change = pods.observe(pod);
    let ns = &change.namespace;
    let set = match (&change.before, &change.after) {
        (None, None) => {
            services.selecting(ns, pod.metadata.labels.as_ref().unwrap_or(&Labels::new()))
        }
        (None, Some(now)) => services.selecting(ns, &now.labels),
        (Some(was), None) => services.selecting(ns, &was.labels),
        (Some(was), Some(now)) => {
            let pod_changed = was.fingerprint != now.fingerprint;
            if was.labels == now.labels {
                if !pod_changed {
                    return Vec::new();
                }
                services.selecting(ns, &now.labels)
            } else {
                let old = services.selecting(ns, &was.labels);
                let new = services.selecting(ns, &now.labels);
                if pod_changed {
                    old.union(&new).cloned().collect()
                } else {
                    old.symmetric_difference(&new).cloned().collect()
                }
            }
        }
    };
    let mut out: Vec<ObjectRef<Service>> = set.into_iter().collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;
    use kube::ResourceExt;

    fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("ns".into());
        p.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        p
    }

    fn svc(name: &str, selector: &[(&str, &str)]) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("ns".into());
        s.spec = Some(ServiceSpec {
            selector: Some(
                selector
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        });
        s
    }

    fn names(refs: &[ObjectRef<Service>]) -> Vec<&str> {
        refs.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn pods_wake_the_services_of_their_old_and_new_labels() {
        let mut pods_w: Writer<Pod> = Writer::new(());
        let mut svcs_w: Writer<Service> = Writer::new(());
        for s in [
            svc("web", &[("app", "web")]),
            svc("web-canary", &[("app", "web"), ("track", "canary")]),
            svc("db", &[("app", "db")]),
            svc("none", &[]),
        ] {
            svcs_w.apply_watcher_event(&Event::Apply(s));
        }
        let pods = LabelIndex::new(pods_w.as_reader(), None, pod_fingerprint);
        let services = ServiceIndex::new(svcs_w.as_reader());
        // Built (empty) before the pod comes.
        assert!(pods
            .matching("ns", &[("app".to_owned(), "web".to_owned())].into())
            .is_empty());

        // A new pod: the Services selecting it.
        let p = pod("a", &[("app", "web"), ("track", "canary")]);
        pods_w.apply_watcher_event(&Event::Apply(p.clone()));
        assert_eq!(
            names(&services_to_update(&pods, &services, &p)),
            vec!["web", "web-canary"]
        );
        // Nothing it shows changed: no Service.
        assert!(services_to_update(&pods, &services, &p).is_empty());
        // Relabelled: the Services it left and joined.
        let moved = pod("a", &[("app", "db")]);
        pods_w.apply_watcher_event(&Event::Apply(moved.clone()));
        assert_eq!(
            names(&services_to_update(&pods, &services, &moved)),
            vec!["db", "web", "web-canary"]
        );
        // Gone: the Services of its last labels.
        pods_w.apply_watcher_event(&Event::Delete(moved.clone()));
        assert_eq!(
            names(&services_to_update(&pods, &services, &moved)),
            vec!["db"]
        );
    }

    #[test]
    fn a_selector_is_answered_from_the_index() {
        let mut w: Writer<Pod> = Writer::new(());
        for p in [
            pod("a", &[("app", "web")]),
            pod("b", &[("app", "web"), ("track", "canary")]),
            pod("c", &[("app", "db")]),
        ] {
            w.apply_watcher_event(&Event::Apply(p));
        }
        let index = LabelIndex::new(w.as_reader(), None, pod_fingerprint);
        let sel = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let got = |s: &Labels| -> Vec<String> {
            index
                .matching("ns", s)
                .iter()
                .map(|p| p.name_any())
                .collect()
        };
        assert_eq!(got(&sel(&[("app", "web")])), vec!["a", "b"]);
        assert_eq!(got(&sel(&[("app", "web"), ("track", "canary")])), vec!["b"]);
        assert!(got(&sel(&[("app", "none")])).is_empty());
        assert!(index.matching("other", &sel(&[("app", "web")])).is_empty());
        // A later pod is filed by observe.
        let d = pod("d", &[("app", "web")]);
        w.apply_watcher_event(&Event::Apply(d.clone()));
        index.observe(&d);
        assert_eq!(got(&sel(&[("app", "web")])), vec!["a", "b", "d"]);
    }
}
