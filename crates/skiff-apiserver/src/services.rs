//! Service defaults and allocations (upstream's service REST storage and its IP / port
//! allocators): a ClusterIP from the service CIDR and NodePorts from the node port range,
//! each held as its own datastore key (`/ranges/serviceips/<ip>`, `/ranges/nodeports/<port>`)
//! created atomically, so two Services can never get the same one, and released when the
//! Service is removed.

use std::net::Ipv4Addr;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use skiff_api::status::{ApiError, Cause};
use skiff_store::{Error as StoreError, Store};

/// The ranges Services draw from.
#[derive(Clone, Debug)]
pub struct ServiceRanges {
    pub network: Ipv4Addr,
    pub prefix: u8,
    pub node_ports: (u16, u16),
}

impl ServiceRanges {
    /// Parses `10.43.0.0/16`.
    pub fn parse(cidr: &str) -> Option<Self> {
        let (net, bits) = cidr.split_once('/')?;
        let net: Ipv4Addr = net.parse().ok()?;
        let prefix: u8 = bits.parse().ok().filter(|b| (8..=30).contains(b))?;
        let mask = u32::MAX << (32 - prefix);
        Some(Self {
            network: Ipv4Addr::from(u32::from(net) & mask),
            prefix,
            node_ports: (30000, 32767),
        })
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// Whether `ip` is a usable address of the range (not the network or broadcast address).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let offset = u32::from(ip).wrapping_sub(u32::from(self.network));
        offset >= 1 && offset < self.size() - 1
    }

    /// The `kubernetes` Service's address: the first of the range.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }
}

fn ip_key(ip: Ipv4Addr) -> String {
    format!("/ranges/serviceips/{ip}")
}

fn port_key(port: u16) -> String {
    format!("/ranges/nodeports/{port}")
}

fn invalid(name: &str, field: &str, message: String) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: field.into(),
        }],
    )
}

/// Allocates and releases Service addresses and ports.
#[derive(Clone)]
pub struct Allocator {
    pub store: Arc<dyn Store>,
    pub ranges: ServiceRanges,
}

impl Allocator {
    async fn reserve(&self, key: &str, owner: &str) -> Result<bool, ApiError> {
        match self.store.create(key, Bytes::from(owner.to_owned())).await {
            Ok(_) => Ok(true),
            Err(StoreError::KeyExists { .. }) => Ok(false),
            Err(e) => Err(ApiError::service_unavailable(format!("allocating: {e}"))),
        }
    }

    async fn release_key(&self, key: &str) {
        match self.store.delete(key, None).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(key, error = %e, "releasing a service allocation"),
        }
    }

    /// Defaults a new Service and allocates what it needs. On failure nothing stays held.
    pub async fn admit_create(&self, svc: &mut Value) -> Result<(), ApiError> {
        let (name, owner) = name_and_owner(svc);
        default_spec(svc);
        let ty = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_owned();
        let mut held: Vec<String> = Vec::new();
        let result = self.allocate(svc, &name, &owner, &ty, &mut held).await;
        if result.is_err() {
            for key in held {
                self.release_key(&key).await;
            }
        }
        result
    }

    async fn allocate(
        &self,
        svc: &mut Value,
        name: &str,
        owner: &str,
        ty: &str,
        held: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if ty != "ExternalName" {
            let requested = svc
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let ip = match requested.as_str() {
                "None" => None,
                "" => Some(
                    self.allocate_ip(owner, held)
                        .await
                        .map_err(|e| invalid(name, "spec.clusterIPs", e))?,
                ),
                text => {
                    let ip: Ipv4Addr = text.parse().map_err(|_| {
                        invalid(name, "spec.clusterIPs[0]", format!("Invalid value: {text:?}: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
                    })?;
                    if !self.ranges.contains(ip) {
                        return Err(invalid(
                            name,
                            "spec.clusterIPs",
                            format!("Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is {}", self.ranges.cidr()),
                        ));
                    }
                    if !self.reserve(&ip_key(ip), owner).await? {
                        return Err(invalid(
                            name,
                            "spec.clusterIPs",
                            format!("Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"),
                        ));
                    }
                    held.push(ip_key(ip));
                    Some(ip)
                }
            };
            let text = ip.map_or_else(|| "None".to_owned(), |ip| ip.to_string());
            svc["spec"]["clusterIP"] = json!(text);
            svc["spec"]["clusterIPs"] = json!([text]);
            if ip.is_some() || requested == "None" {
                svc["spec"]["ipFamilies"] = json!(["IPv4"]);
                svc["spec"]["ipFamilyPolicy"] = json!("SingleStack");
            }
        }
        if ty == "NodePort" || ty == "LoadBalancer" {
            self.allocate_node_ports(svc, name, owner, &[], held)
                .await?;
        }
        Ok(())
    }

    async fn allocate_ip(&self, owner: &str, held: &mut Vec<String>) -> Result<Ipv4Addr, String> {
        // The first address belongs to the `kubernetes` Service; start elsewhere at random
        // (as upstream) and walk the range once.
        let usable = self.ranges.size() - 2;
        let start = rand::random_range(0..usable);
        for i in 0..usable {
            let offset = 1 + (start + i) % usable;
            let ip = Ipv4Addr::from(u32::from(self.ranges.network) + offset);
            if ip == self.ranges.first() {
                continue;
            }
            if self
                .reserve(&ip_key(ip), owner)
                .await
                .map_err(|e| e.message)?
            {
                held.push(ip_key(ip));
                return Ok(ip);
            }
        }
        Err(format!(
            "Internal error: failed to allocate a serviceIP: range is full ({})",
            self.ranges.cidr()
        ))
    }

    async fn allocate_port(&self, owner: &str, held: &mut Vec<String>) -> Result<u16, String> {
        let (lo, hi) = self.ranges.node_ports;
        let n = u32::from(hi - lo) + 1;
        let start = rand::random_range(0..n);
        for i in 0..n {
            let port = lo + ((start + i) % n) as u16;
            if self
                .reserve(&port_key(port), owner)
                .await
                .map_err(|e| e.message)?
            {
                held.push(port_key(port));
                return Ok(port);
            }
        }
        Err(format!(
            "Internal error: failed to allocate a nodePort: range is full ({lo}-{hi})"
        ))
    }

    /// Reserves the `kubernetes` Service's address for it (at bootstrap).
    pub async fn reserve_first(&self) -> Result<(), ApiError> {
        self.reserve(&ip_key(self.ranges.first()), "default/kubernetes")
            .await
            .map(|_| ())
    }

    /// Releases what a removed Service held.
    pub async fn release(&self, svc: &Value) {
        for ip in svc
            .pointer("/spec/clusterIPs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(ip) = ip.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()) {
                self.release_key(&ip_key(ip)).await;
            }
        }
        for port in svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(p) = port
                .get("nodePort")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
            {
                self.release_key(&port_key(p)).await;
            }
        }
    }

    /// Allocates for an update (after [`Allocator::keep_on_update`] and validation) as
    /// upstream: a Service that becomes NodePort or LoadBalancer gets nodePorts, and a
    /// nodePort newly asked for is reserved (422 if taken or out of range). What the old
    /// version held and the new one does not is in [`UpdateAllocation::freed`], for the
    /// caller to release once the update is stored.
    pub async fn admit_update(
        &self,
        old: &Value,
        new: &mut Value,
    ) -> Result<UpdateAllocation, ApiError> {
        let (name, owner) = name_and_owner(new);
        let ty = new
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_owned();
        let old_ports = node_ports(old);
        let mut held = Vec::new();
        if ty == "NodePort" || ty == "LoadBalancer" {
            let result = self
                .allocate_node_ports(new, &name, &owner, &old_ports, &mut held)
                .await;
            if let Err(e) = result {
                for key in held {
                    self.release_key(&key).await;
                }
                return Err(e);
            }
        }
        let new_ports = node_ports(new);
        let freed = old_ports
            .iter()
            .filter(|p| !new_ports.contains(p))
            .map(|p| port_key(*p))
            .collect();
        Ok(UpdateAllocation { held, freed })
    }

    /// Gives back what an update held (`held` when it was not stored, `freed` when it was).
    pub async fn release_keys(&self, keys: &[String]) {
        for key in keys {
            self.release_key(key).await;
        }
    }

    /// The nodePorts of a NodePort/LoadBalancer Service: ports without one get one; a port
    /// asking for one that `old_ports` (what the Service held before an update) does not
    /// have reserves it.
    async fn allocate_node_ports(
        &self,
        svc: &mut Value,
        name: &str,
        owner: &str,
        old_ports: &[u16],
        held: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let count = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..count {
            let requested = svc["spec"]["ports"][i]
                .get("nodePort")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let port = if requested == 0 {
                self.allocate_port(owner, held)
                    .await
                    .map_err(|e| invalid(name, &format!("spec.ports[{i}].nodePort"), e))?
            } else {
                let (lo, hi) = self.ranges.node_ports;
                let p = u16::try_from(requested).ok().filter(|p| (lo..=hi).contains(p)).ok_or_else(|| {
                    invalid(name, &format!("spec.ports[{i}].nodePort"), format!("Invalid value: {requested}: provided port is not in the valid range. The range of valid ports is {lo}-{hi}"))
                })?;
                if !old_ports.contains(&p) {
                    if !self.reserve(&port_key(p), owner).await? {
                        return Err(invalid(
                            name,
                            &format!("spec.ports[{i}].nodePort"),
                            format!("Invalid value: {p}: provided port is already allocated"),
                        ));
                    }
                    held.push(port_key(p));
                }
                p
            };
            svc["spec"]["ports"][i]["nodePort"] = json!(port);
        }
        Ok(())
    }

    /// Before an update is validated: keeps what it may not change (the ClusterIP once set,
    /// the nodePorts ports had) and drops what the new type has no use for.
    pub fn keep_on_update(&self, old: &Value, new: &mut Value) -> Result<(), ApiError> {
        default_spec(new);
        let name = new
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let old_ip = old
            .pointer("/spec/clusterIP")
            .cloned()
            .unwrap_or(Value::Null);
        match new.pointer("/spec/clusterIP") {
            None | Some(Value::Null) => {
                new["spec"]["clusterIP"] = old_ip.clone();
                if let Some(ips) = old.pointer("/spec/clusterIPs") {
                    new["spec"]["clusterIPs"] = ips.clone();
                }
            }
            Some(ip) if *ip == old_ip || ip == "" => {
                new["spec"]["clusterIP"] = old_ip.clone();
                if let Some(ips) = old.pointer("/spec/clusterIPs") {
                    new["spec"]["clusterIPs"] = ips.clone();
                }
            }
            Some(ip) => {
                return Err(invalid(
                    &name,
                    "spec.clusterIPs[0]",
                    format!("Invalid value: {ip}: may not change once set"),
                ));
            }
        }
        for key in ["ipFamilies", "ipFamilyPolicy"] {
            if new.pointer(&format!("/spec/{key}")).is_none() {
                if let Some(v) = old.pointer(&format!("/spec/{key}")) {
                    new["spec"][key] = v.clone();
                }
            }
        }
        // Ports keep the nodePort they were given when the update leaves it out.
        let old_ports = old
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut() {
                if p.get("nodePort").is_none() {
                    if let Some(old) = old_ports.iter().find(|o| {
                        o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol")
                    }) {
                        if let Some(np) = old.get("nodePort") {
                            p["nodePort"] = np.clone();
                        }
                    }
                }
            }
        }
        drop_type_dependent_fields(old, new);
        Ok(())
    }
}

/// A Service's name, and the owner its allocations are recorded under (`namespace/name`).
fn name_and_owner(svc: &Value) -> (String, String) {
    let name = svc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let namespace = svc
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let owner = format!("{namespace}/{name}");
    (name, owner)
}

/// What a Service update reserved, and what it gave up.
#[derive(Debug, Default)]
pub struct UpdateAllocation {
    /// Reserved for the new version: released if the update is not stored.
    pub held: Vec<String>,
    /// Held by the old version only: released once the update is stored.
    pub freed: Vec<String>,
}

/// Upstream's `dropTypeDependentFields`: a Service changing to a type that has no use for a
/// field loses it, unless the update itself set it anew (then validation answers).
fn drop_type_dependent_fields(old: &Value, new: &mut Value) {
    let ty = |svc: &Value| {
        svc.pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_owned()
    };
    let (old_ty, new_ty) = (ty(old), ty(new));
    if old_ty == new_ty {
        return;
    }
    let external = |t: &str| t == "NodePort" || t == "LoadBalancer";
    let old_ports = node_ports(old);
    if !external(&new_ty) {
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut() {
                let kept = p
                    .get("nodePort")
                    .and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok())
                    .is_some_and(|n| old_ports.contains(&n));
                if kept {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
                }
            }
        }
    }
    let mut drop_if_same = |field: &str, keep: bool| {
        if keep {
            return;
        }
        let same = new.pointer(&format!("/spec/{field}")) == old.pointer(&format!("/spec/{field}"));
        if same {
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove(field);
            }
        }
    };
    drop_if_same("externalTrafficPolicy", external(&new_ty));
    drop_if_same("healthCheckNodePort", new_ty == "LoadBalancer");
    drop_if_same("allocateLoadBalancerNodePorts", new_ty == "LoadBalancer");
    drop_if_same("loadBalancerClass", new_ty == "LoadBalancer");
}

/// The nodePorts a Service's ports have.
fn node_ports(svc: &Value) -> Vec<u16> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .filter_map(|p| u16::try_from(p).ok())
        .collect()
}

/// Upstream's Service defaults (pkg/apis/core/v1/defaults.go `SetDefaults_Service`).
fn default_spec(svc: &mut Value) {
    if !svc.get("spec").is_some_and(Value::is_object) {
        svc["spec"] = json!({});
    }
    let spec = &mut svc["spec"];
    if spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        spec["type"] = json!("ClusterIP");
    }
    if spec
        .get("sessionAffinity")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        spec["sessionAffinity"] = json!("None");
    }
    let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_owned();
    if ty != "ExternalName" && spec.get("internalTrafficPolicy").is_none() {
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
    if (ty == "NodePort" || ty == "LoadBalancer") && spec.get("externalTrafficPolicy").is_none() {
        spec["externalTrafficPolicy"] = json!("Cluster");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if p.get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                p["protocol"] = json!("TCP");
            }
            if p.get("targetPort").is_none() {
                if let Some(port) = p.get("port").cloned() {
                    p["targetPort"] = port;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = ServiceRanges::parse("10.43.0.0/16").unwrap();
        assert_eq!(r.first(), Ipv4Addr::new(10, 43, 0, 1));
        assert!(r.contains(Ipv4Addr::new(10, 43, 255, 254)));
        assert!(!r.contains(Ipv4Addr::new(10, 43, 255, 255)));
        assert!(!r.contains(Ipv4Addr::new(10, 43, 0, 0)));
        assert!(!r.contains(Ipv4Addr::new(10, 44, 0, 1)));
        assert!(ServiceRanges::parse("10.43.0.0/33").is_none());
        assert_eq!(
            ServiceRanges::parse("10.43.7.9/16").unwrap().cidr(),
            "10.43.0.0/16"
        );
    }

    #[test]
    fn defaults_as_upstream() {
        let mut svc = json!({"spec": {"ports": [{"port": 80}], "type": "NodePort"}});
        default_spec(&mut svc);
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(svc["spec"]["sessionAffinity"], "None");
        assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
    }
}
